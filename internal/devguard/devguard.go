// Package devguard is the one check between imprint and a block device it
// may write: the set of devices a prepared job may touch (the listed,
// matched disks, their planned partitions, and the md and dm devices the plan
// itself creates), and the test every open for writing and every command
// argument that names a device passes before it runs.
//
// A device is named in many spellings: "/dev/sdb", "logdev=/dev/sdb",
// "--device=/dev/sdb", "-Jdevice=/dev/sdb,size=8", a symlink that resolves
// into /dev, or a block device node made somewhere else. Args finds each of
// them; Check refuses any that is not in the set.
package devguard

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
)

// ErrNotPlanned is the class of every refusal: the device is not one the
// job's plan names.
var ErrNotPlanned = errors.New("device not named by the plan")

// Error is a refusal; it names the device and what tried to reach it.
type Error struct {
	Device string // the device as named
	What   string // "open for writing", "mkfs.xfs argument", ...
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s: %q: %v", e.What, e.Device, ErrNotPlanned)
}

// Unwrap makes errors.Is(err, ErrNotPlanned) true.
func (e *Error) Unwrap() error { return ErrNotPlanned }

// DeviceName is the device the refusal is about.
func (e *Error) DeviceName() string { return e.Device }

// FS is what the guard learns about paths on the running system. OS is the
// real one; tests give a fake so no table depends on the host's /dev.
type FS interface {
	// EvalSymlinks resolves path as filepath.EvalSymlinks does.
	EvalSymlinks(path string) (string, error)
	// Rdev is the device number of the block device node at path (after
	// symlinks); ok is false when path is not a block device node.
	Rdev(path string) (rdev uint64, ok bool)
}

// OS is FS on the running system.
type OS struct{}

// EvalSymlinks implements FS.
func (OS) EvalSymlinks(p string) (string, error) { return filepath.EvalSymlinks(p) }

// Rdev implements FS.
func (OS) Rdev(p string) (uint64, bool) {
	st, err := os.Stat(p)
	if err != nil || st.Mode()&fs.ModeDevice == 0 || st.Mode()&fs.ModeCharDevice != 0 {
		return 0, false
	}
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, false
	}
	return uint64(sys.Rdev), true
}

// Set is the devices one job may write. It is safe for concurrent use; the
// steps add what they learn on the way (the node the kernel gave a planned
// partition, an old md array found living only on the planned disks).
type Set struct {
	fs FS

	mu      sync.Mutex
	allowed map[string]string // path → why it may be written
	rdevs   map[uint64]string // device number → path, for nodes seen
}

// New returns an empty set over fsys (nil: OS).
func New(fsys FS) *Set {
	if fsys == nil {
		fsys = OS{}
	}
	return &Set{fs: fsys, allowed: map[string]string{}, rdevs: map[uint64]string{}}
}

// Allow adds dev (a /dev path) with the reason it may be written. Empty
// names are ignored.
func (s *Set) Allow(dev, why string) {
	if dev == "" {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.allowed[dev]; !ok {
		s.allowed[dev] = why
	}
	if r, ok := s.fs.Rdev(dev); ok {
		if _, seen := s.rdevs[r]; !seen {
			s.rdevs[r] = dev
		}
	}
}

// Devices lists the set, sorted, each with its reason ("path (why)").
func (s *Set) Devices() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.allowed))
	for d, why := range s.allowed {
		out = append(out, d+" ("+why+")")
	}
	sort.Strings(out)
	return out
}

// Contains reports whether dev, exactly as spelt, is in the set.
func (s *Set) Contains(dev string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.allowed[dev]
	return ok
}

// Check refuses path unless it is a device of the set: as spelt, through
// the symlinks it resolves, or by the device number of the node it is.
// what says who asks ("open for writing", "grub-install target").
func (s *Set) Check(path, what string) error {
	if s == nil {
		return &Error{Device: path, What: what + " (no device set: nothing may be written)"}
	}
	if s.Contains(path) {
		return nil
	}
	if real, err := s.fs.EvalSymlinks(path); err == nil && real != path && s.Contains(real) {
		return nil
	}
	if r, ok := s.fs.Rdev(path); ok {
		s.mu.Lock()
		_, known := s.rdevs[r]
		s.mu.Unlock()
		if known {
			return nil
		}
	}
	return &Error{Device: path, What: what}
}

// Args checks every device an argv names, in any spelling, and returns the
// first refusal. name is the program, for the message.
func (s *Set) Args(name string, args []string) error {
	for _, d := range s.Named(args) {
		if err := s.Check(d, name+" argument"); err != nil {
			return err
		}
	}
	return nil
}

// delims end a device path inside an argument ("logdev=/dev/sdb,size=8").
const delims = ",;:= \t\n'\"()[]{}<>|&"

// Named returns every path the arguments name that is, or may be, a block
// device: each "/dev/..." anywhere in an argument (after "=", "," or as
// the whole argument), and each other absolute path that resolves into
// /dev or is a block device node.
func (s *Set) Named(args []string) []string {
	var out []string
	for _, a := range args {
		rest := a
		for {
			i := strings.Index(rest, "/dev/")
			if i < 0 {
				break
			}
			tok := rest[i:]
			if j := strings.IndexAny(tok[len("/dev/"):], delims); j >= 0 {
				tok = tok[:len("/dev/")+j]
			}
			out = append(out, tok)
			rest = rest[i+len(tok):]
		}
		// Other absolute paths: each piece after "=" or ",".
		for _, piece := range strings.FieldsFunc(a, func(r rune) bool { return strings.ContainsRune(",= ", r) }) {
			if !strings.HasPrefix(piece, "/") || strings.HasPrefix(piece, "/dev/") {
				continue
			}
			if real, err := s.fs.EvalSymlinks(piece); err == nil && (real == "/dev" || strings.HasPrefix(real, "/dev/")) {
				out = append(out, piece)
				continue
			}
			if _, ok := s.fs.Rdev(piece); ok {
				out = append(out, piece)
			}
		}
	}
	return out
}

// OpenFile opens path for writing after Check: the one way a step opens a
// device it writes.
func (s *Set) OpenFile(path string, flag int, perm os.FileMode, what string) (*os.File, error) {
	if err := s.Check(path, what); err != nil {
		return nil, err
	}
	return os.OpenFile(path, flag, perm)
}

// Runner runs a program and returns its output (the shape of the steps'
// runners).
type Runner interface {
	Run(ctx context.Context, name string, args ...string) ([]byte, error)
}

// GuardedRunner runs a command only when every device its arguments name is
// in Set.
type GuardedRunner struct {
	Set    *Set
	Runner Runner
}

// Run implements Runner.
func (g GuardedRunner) Run(ctx context.Context, name string, args ...string) ([]byte, error) {
	if err := g.Set.Args(name, args); err != nil {
		return nil, err
	}
	return g.Runner.Run(ctx, name, args...)
}
