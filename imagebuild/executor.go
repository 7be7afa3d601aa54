package imagebuild

import (
	"context"
	"errors"
	"fmt"
	"github.com/imprint-dev/imprint/imagewriter"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/imprint-dev/imprint/internal/sys"
)

// Cmd is one external command.
type Cmd = sys.Cmd

// Runner runs a command and returns its combined output (or its tail). A
// non-zero exit is an error that unwraps to *exec.ExitError or provides
// ExitCode() int. internal/sys.Exec is the real one.
type Runner interface {
	RunCmd(ctx context.Context, c Cmd) ([]byte, error)
}

// Mounter mounts and unmounts filesystems.
type Mounter interface {
	// Mount mounts source on target; data are the filesystem's options
	// ("" for none).
	Mount(source, target, fstype string, bind bool, data string) error
	Unmount(target string) error
	// MountedUnder lists the mount points at or below dir.
	MountedUnder(dir string) ([]string, error)
}

// Procs finds and signals processes.
type Procs interface {
	// InRoot lists the processes whose root directory is root or below it.
	InRoot(root string) ([]int, error)
	Signal(pid int, sig syscall.Signal) error
}

// StepError is a build failure: the step that failed and why.
type StepError struct {
	Step string
	Err  error
}

func (e *StepError) Error() string { return fmt.Sprintf("build image: step %q: %v", e.Step, e.Err) }
func (e *StepError) Unwrap() error { return e.Err }

// ErrMountedBelow is returned when a tree to remove has a mount below it.
var ErrMountedBelow = errors.New("something is mounted below it")

// Executor performs a Plan. It is used once.
type Executor struct {
	Runner  Runner
	Mounter Mounter
	Procs   Procs
	Log     *slog.Logger
	// Config is the build config (for the metadata).
	Config Config
	// GzipMember and Workers tune Compress (0: defaults).
	GzipMember, Workers int
	// KillGrace is how long chroot processes get between SIGTERM and
	// SIGKILL (default 10s).
	KillGrace time.Duration

	loops      map[string]string // mount point → loop device
	cleanups   []cleanup
	sums       map[string]Sums
	containers map[string]string // mount point → container used
	os         MetadataOS
	roots      []string // chroots to clear of processes on cleanup
}

type cleanup struct {
	key string
	fn  func(ctx context.Context) error
}

// Run performs the steps of p in order. Whatever fails (or a cancelled
// ctx), everything that was mounted, attached or started is undone before
// Run returns; the error is a *StepError naming the step.
func (e *Executor) Run(ctx context.Context, p Plan) (err error) {
	if e.Log == nil {
		e.Log = slog.New(slog.DiscardHandler)
	}
	if e.KillGrace == 0 {
		e.KillGrace = 10 * time.Second
	}
	e.loops, e.sums, e.containers = map[string]string{}, map[string]Sums{}, map[string]string{}
	defer func() {
		if cerr := e.cleanupAll(context.WithoutCancel(ctx)); cerr != nil {
			e.Log.Error("cleanup", "err", cerr)
			if err == nil {
				err = &StepError{Step: "cleanup", Err: cerr}
			}
		}
	}()
	for _, s := range p.Steps {
		if err := ctx.Err(); err != nil {
			return &StepError{Step: s.Name, Err: fmt.Errorf("not started: %w", context.Cause(ctx))}
		}
		if s.SkipIfExists != "" {
			if _, err := os.Stat(s.SkipIfExists); err == nil {
				e.Log.Debug("step skipped", "step", s.Name, "exists", s.SkipIfExists)
				continue
			}
		}
		t0 := time.Now()
		log := e.Log.With("step", s.Name)
		log.Debug("step start", "op", s.Op)
		var err error
		attempts := max(s.Attempts, 1)
		for a := 1; a <= attempts; a++ {
			err = e.step(ctx, s)
			if err == nil || ctx.Err() != nil || a == attempts {
				break
			}
			log.Warn("step failed, retrying", "attempt", a, "of", attempts, "err", err)
			select {
			case <-time.After(2 * time.Second):
			case <-ctx.Done():
			}
		}
		if err != nil && s.Optional && ctx.Err() == nil {
			log.Warn("optional step failed", "duration", time.Since(t0).Round(time.Millisecond), "err", err)
			continue
		}
		if err != nil {
			log.Error("step failed", "duration", time.Since(t0).Round(time.Millisecond), "err", err)
			return &StepError{Step: s.Name, Err: err}
		}
		log.Info("step done", "duration", time.Since(t0).Round(time.Millisecond))
		switch s.Name {
		case "debootstrap":
			e.Log.Info("Running deboostrap completed")
		case "apt-get install":
			e.Log.Info("Running apt-get install completed")
		}
	}
	return nil
}

// Sums returns the sums of the compressed images by mount point.
func (e *Executor) Sums() map[string]Sums { return e.sums }

var placeholderRe = regexp.MustCompile(`\{loop:([^}]*)\}`)

func (e *Executor) resolve(s string) (string, error) {
	var err error
	out := placeholderRe.ReplaceAllStringFunc(s, func(m string) string {
		mp := placeholderRe.FindStringSubmatch(m)[1]
		dev, ok := e.loops[mp]
		if !ok {
			err = fmt.Errorf("no loop device attached for %q", mp)
		}
		return dev
	})
	return out, err
}

func (e *Executor) resolveAll(in []string) ([]string, error) {
	out := make([]string, len(in))
	for i, s := range in {
		r, err := e.resolve(s)
		if err != nil {
			return nil, err
		}
		out[i] = r
	}
	return out, nil
}

// command is the command of a run or chroot step, its {loop:...}
// placeholders resolved.
func (e *Executor) command(s Step) (Cmd, error) {
	argv, err := e.resolveAll(s.Argv)
	if err != nil {
		return Cmd{}, err
	}
	env, err := e.resolveAll(s.Env)
	if err != nil {
		return Cmd{}, err
	}
	return Cmd{Argv: argv, Env: env, Stdin: s.Stdin}, nil
}

func (e *Executor) push(key string, fn func(ctx context.Context) error) {
	e.cleanups = append(e.cleanups, cleanup{key: key, fn: fn})
}

// pop runs and removes the cleanup registered under key.
func (e *Executor) pop(ctx context.Context, key string) error {
	for i := len(e.cleanups) - 1; i >= 0; i-- {
		if e.cleanups[i].key == key {
			c := e.cleanups[i]
			if err := c.fn(ctx); err != nil {
				return err
			}
			e.cleanups = append(e.cleanups[:i], e.cleanups[i+1:]...)
			return nil
		}
	}
	return fmt.Errorf("%s: not done by this build", key)
}

// cleanupAll kills what runs in the chroots, then undoes the cleanup stack
// in reverse, continuing past failures.
func (e *Executor) cleanupAll(ctx context.Context) error {
	if len(e.cleanups) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	var errs []error
	for _, r := range e.roots {
		if err := e.kill(ctx, r); err != nil {
			errs = append(errs, err)
		}
	}
	for i := len(e.cleanups) - 1; i >= 0; i-- {
		c := e.cleanups[i]
		e.Log.Info("cleanup", "undo", c.key)
		if err := c.fn(ctx); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", c.key, err))
		}
	}
	e.cleanups = nil
	return errors.Join(errs...)
}

func (e *Executor) run(ctx context.Context, c Cmd, okExit []int) ([]byte, error) {
	out, err := e.Runner.RunCmd(ctx, c)
	if err != nil && okExit != nil {
		var ec interface{ ExitCode() int }
		if errors.As(err, &ec) {
			for _, code := range okExit {
				if ec.ExitCode() == code {
					return out, nil
				}
			}
		}
	}
	return out, err
}

func (e *Executor) step(ctx context.Context, s Step) error {
	switch s.Op {
	case OpTruncate:
		f, err := os.OpenFile(s.Path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return err
		}
		e.push("remove "+s.Path, func(context.Context) error { return removeIfExists(s.Path) })
		if err := f.Truncate(s.Size); err != nil {
			f.Close()
			return err
		}
		return f.Close()
	case OpLoopAttach:
		out, err := e.run(ctx, Cmd{Argv: []string{"losetup", "--find", "--show", s.Path}}, nil)
		if err != nil {
			return err
		}
		dev := strings.TrimSpace(string(out))
		if !strings.HasPrefix(dev, "/dev/loop") {
			return fmt.Errorf("losetup --find --show %s: unexpected output %q", s.Path, out)
		}
		e.loops[s.Mount] = dev
		e.Log.Info("loop device attached", "image", s.Mount, "device", dev, "file", s.Path)
		e.push("detach "+s.Mount, func(ctx context.Context) error {
			_, err := e.run(ctx, Cmd{Argv: []string{"losetup", "-d", dev}}, nil)
			if err == nil {
				delete(e.loops, s.Mount)
			}
			return err
		})
		return nil
	case OpLoopDetach:
		return e.pop(ctx, "detach "+s.Mount)
	case OpRun:
		c, err := e.command(s)
		if err != nil {
			return err
		}
		c.Inherit = true
		_, err = e.run(ctx, c, s.OKExit)
		return err
	case OpChroot:
		if !slices.Contains(e.roots, s.Path) {
			e.roots = append(e.roots, s.Path)
		}
		c, err := e.command(s)
		if err != nil {
			return err
		}
		c.Argv = append([]string{"chroot", s.Path}, c.Argv...)
		_, err = e.run(ctx, c, s.OKExit)
		return err
	case OpMkdir:
		return os.MkdirAll(s.Path, s.Mode.Perm())
	case OpMount:
		src, err := e.resolve(s.Source)
		if err != nil {
			return err
		}
		if err := os.MkdirAll(s.Path, 0o755); err != nil {
			return err
		}
		if err := e.Mounter.Mount(src, s.Path, s.FSType, s.FSType == "bind", ""); err != nil {
			return fmt.Errorf("mount %s on %q: %w", src, s.Path, err)
		}
		target := s.Path
		e.push("umount "+target, func(ctx context.Context) error { return e.unmount(ctx, target) })
		return nil
	case OpUnmount:
		return e.pop(ctx, "umount "+s.Path)
	case OpWrite:
		return writeFile(s.Path, []byte(s.Data), s.Mode)
	case OpCopy:
		data, err := os.ReadFile(s.Source)
		if err != nil {
			return err
		}
		return writeFile(s.Path, data, s.Mode)
	case OpRemove:
		matches, err := filepath.Glob(s.Path)
		if err != nil {
			return err
		}
		for _, m := range matches {
			fi, err := os.Lstat(m)
			if err != nil {
				continue
			}
			if fi.IsDir() {
				return fmt.Errorf("remove %q: is a directory", m)
			}
			if err := removeIfExists(m); err != nil {
				return err
			}
		}
		return nil
	case OpRemoveAll:
		return e.removeAll(s.Path)
	case OpRename:
		return os.Rename(s.Source, s.Path)
	case OpPin:
		return e.pin(s)
	case OpKill:
		return e.kill(ctx, s.Path)
	case OpShrinkFile:
		return e.fitFile(ctx, s.Path)
	case OpShrinkXFS:
		return e.shrinkXFS(ctx, s)
	case OpCompress:
		return e.compress(ctx, s)
	case OpReadOS:
		return e.readOS(s.Path)
	case OpMetadata:
		return e.metadata(s.Path)
	case OpTar:
		return e.tar(ctx, s)
	case OpDiskImage:
		return e.diskImage(ctx, s)
	case OpGrubCfg:
		return e.grubCfg(s)
	}
	return fmt.Errorf("unknown op %q", s.Op)
}

func (e *Executor) unmount(ctx context.Context, target string) error {
	var err error
	for attempt := 0; attempt < 10; attempt++ {
		err = e.Mounter.Unmount(target)
		if err == nil || !errors.Is(err, syscall.EBUSY) {
			break
		}
		// something still holds it: clear the chroots and try again (never lazily)
		for _, r := range e.roots {
			e.kill(ctx, r)
		}
		select {
		case <-time.After(time.Second):
		case <-ctx.Done():
			return err
		}
	}
	if err != nil {
		return fmt.Errorf("umount %q: %w", target, err)
	}
	return nil
}

func (e *Executor) removeAll(dir string) error {
	mounts, err := e.Mounter.MountedUnder(dir)
	if err != nil {
		return err
	}
	if len(mounts) > 0 {
		return fmt.Errorf("remove %q: %w (%s)", dir, ErrMountedBelow, strings.Join(mounts, ", "))
	}
	return os.RemoveAll(dir)
}

// kill terminates every process whose root is inside root: SIGTERM, then
// SIGKILL after KillGrace.
func (e *Executor) kill(ctx context.Context, root string) error {
	pids, err := e.Procs.InRoot(root)
	if err != nil || len(pids) == 0 {
		return err
	}
	e.Log.Warn("killing processes left in the chroot", "root", root, "pids", pids)
	for _, p := range pids {
		e.Procs.Signal(p, syscall.SIGTERM)
	}
	deadline := time.Now().Add(e.KillGrace)
	for time.Now().Before(deadline) {
		select {
		case <-time.After(200 * time.Millisecond):
		case <-ctx.Done():
			deadline = time.Now()
		}
		if pids, _ = e.Procs.InRoot(root); len(pids) == 0 {
			return nil
		}
	}
	for _, p := range pids {
		e.Procs.Signal(p, syscall.SIGKILL)
	}
	time.Sleep(200 * time.Millisecond)
	if pids, _ = e.Procs.InRoot(root); len(pids) > 0 {
		return fmt.Errorf("processes %v survive SIGKILL in %q", pids, root)
	}
	return nil
}

func (e *Executor) pin(s Step) error {
	r := *s.Repo
	var ri ReleaseInfo
	found := ""
	for _, n := range ReleaseListNames(r) {
		data, err := os.ReadFile(filepath.Join(s.Source, n))
		if err == nil {
			ri, found = ParseRelease(string(data)), n
			break
		}
	}
	if found == "" {
		e.Log.Warn("no Release file for repo, pinning by suite", "repo", r.Name, "lists", s.Source)
	}
	return writeFile(s.Path, []byte(Preferences(r, ri)), 0o644)
}

var (
	blockCountRe = regexp.MustCompile(`(?m)^Block count:\s+(\d+)`)
	blockSizeRe  = regexp.MustCompile(`(?m)^Block size:\s+(\d+)`)
)

// fitFile truncates an ext image file to its filesystem's size (after
// resize2fs -M).
func (e *Executor) fitFile(ctx context.Context, file string) error {
	out, err := e.run(ctx, Cmd{Argv: []string{"dumpe2fs", "-h", file}}, nil)
	if err != nil {
		return err
	}
	n, size, err := ParseDumpe2fs(string(out))
	if err != nil {
		return fmt.Errorf("dumpe2fs -h %s: %w", file, err)
	}
	return os.Truncate(file, n*size)
}

// ParseDumpe2fs returns the block count and block size of dumpe2fs -h
// output.
func ParseDumpe2fs(out string) (blocks, size int64, err error) {
	c, s := blockCountRe.FindStringSubmatch(out), blockSizeRe.FindStringSubmatch(out)
	if c == nil || s == nil {
		return 0, 0, errors.New("no Block count or Block size in the output")
	}
	blocks, _ = strconv.ParseInt(c[1], 10, 64)
	size, _ = strconv.ParseInt(s[1], 10, 64)
	return blocks, size, nil
}

func (e *Executor) compress(ctx context.Context, s Step) error {
	in, err := os.Open(s.Source)
	if err != nil {
		return err
	}
	defer in.Close()
	if err := os.MkdirAll(filepath.Dir(s.Path), 0o755); err != nil {
		return err
	}
	part := s.Path + ".part"
	out, err := os.OpenFile(part, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	t0 := time.Now()
	sums, err := Compress(ctx, out, in, s.Data, e.GzipMember, e.Workers)
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(part, s.Path)
	}
	if err == nil && sums.Frames != nil {
		err = writeManifest(s.Path+imagewriter.FrameManifestSuffix, sums.Frames)
	}
	if err != nil {
		os.Remove(part)
		return fmt.Errorf("compress %s to %q: %w", s.Source, s.Path, err)
	}
	e.sums[s.Mount] = sums
	e.containers[s.Mount] = s.Data
	e.Log.Info("image compressed", "image", s.Mount, "file", s.Path, "container", s.Data,
		"raw_size", sums.RawSize, "container_size", sums.ContainerSize, "duration", time.Since(t0).Round(time.Millisecond))
	return nil
}

// writeManifest writes a multi-frame zstd image's manifest beside it.
func writeManifest(path string, m *imagewriter.FrameManifest) error {
	b, err := m.Marshal()
	if err != nil {
		return err
	}
	if err := os.WriteFile(path+".part", b, 0o644); err != nil {
		return err
	}
	return os.Rename(path+".part", path)
}

func (e *Executor) readOS(root string) error {
	osr, err := os.ReadFile(filepath.Join(root, "etc/os-release"))
	if err != nil {
		if osr, err = os.ReadFile(filepath.Join(root, "usr/lib/os-release")); err != nil {
			return err
		}
	}
	dv, _ := os.ReadFile(filepath.Join(root, "etc/debian_version"))
	e.os = ParseOS(string(osr), string(dv))
	return nil
}

func (e *Executor) metadata(path string) error {
	m := Metadata{OS: e.os, Packages: e.Config.Packages, Repos: MetadataRepos(e.Config.Repos)}
	if m.Packages == nil {
		m.Packages = []string{}
	}
	images, _ := OutputPaths(e.Config)
	for _, mp := range slices.Sorted(maps.Keys(e.Config.ImageData)) {
		img := e.Config.ImageData[mp]
		sum, ok := e.sums[mp]
		if !ok {
			return fmt.Errorf("image %q was not compressed", mp)
		}
		c := img.Container
		if s := e.containerOf(mp); s != "" {
			c = s
		}
		m.Images = append(m.Images, MetadataImage{
			Container: c, ContainerMD5: sum.ContainerMD5, ContainerName: filepath.Base(images[mp]),
			ContainerSize: sum.ContainerSize, Format: img.Format, RawMD5: sum.RawMD5, RawSize: sum.RawSize,
		})
	}
	data, err := m.Marshal()
	if err != nil {
		return err
	}
	return writeFileAtomic(path, data, 0o644)
}

// containerOf is the container image mp was really compressed with.
func (e *Executor) containerOf(mp string) string { return e.containers[mp] }

func (e *Executor) tar(ctx context.Context, s Step) error {
	part := s.Path + ".part"
	if err := os.MkdirAll(filepath.Dir(s.Path), 0o755); err != nil {
		return err
	}
	_, err := e.run(ctx, Cmd{Argv: []string{"tar", "--numeric-owner", "--xattrs", "--xattrs-include=*", "--exclude=./lost+found",
		"-C", s.Source, "-cf", part, "."}}, nil)
	if err != nil {
		os.Remove(part)
		return err
	}
	return os.Rename(part, s.Path)
}

func writeFile(path string, data []byte, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	if mode == 0 {
		mode = 0o644
	}
	if err := os.WriteFile(path, data, mode); err != nil {
		return err
	}
	return os.Chmod(path, mode)
}

func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	part := path + ".part"
	if err := os.WriteFile(part, data, mode); err != nil {
		return err
	}
	return os.Rename(part, path)
}

func removeIfExists(p string) error {
	if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}
