package imagewriter

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// alignment of O_DIRECT buffers, offsets and lengths: covers 512-byte and
// 4 KiB logical sectors.
const alignment = 4096

// target is the opened destination.
type target struct {
	path      string
	direct    *os.File // O_DIRECT when supported, else the same as buffered
	buffered  *os.File // for unaligned pieces (the tail, a short first MiB)
	isDirect  bool
	isBlock   bool
	wholeDisk bool  // a block device that is not a partition
	size      int64 // device size; for files the size at open
	zeroed    bool  // known to read back as zeroes (fresh file, or asserted)
	// canZeroOut: zero runs may be handed to the device (or the file's
	// filesystem) as write-zeroes; cleared on the first refusal.
	canZeroOut bool
	// punch zeroes n bytes at off (fallocate by default; tests replace it).
	punch func(off, n int64) error
}

// ErrNotATarget is returned (wrapped) for a target that is neither a block
// device nor an allowed regular file.
var ErrNotATarget = errors.New("not a block device")

// openTarget opens and checks the destination. It refuses anything but a
// block device (or, when allowed, a regular file), and block devices that
// are mounted, hold mounted partitions or are held by md/dm/LVM.
func openTarget(path string, opts *Options) (*target, error) {
	st, err := os.Stat(path)
	fresh := false
	switch {
	case errors.Is(err, os.ErrNotExist) && opts.AllowRegularFile:
		fresh = true
	case err != nil:
		return nil, fmt.Errorf("target %q: %w", path, err)
	case st.Mode()&os.ModeDevice != 0 && st.Mode()&os.ModeCharDevice == 0:
		// block device
	case st.Mode().IsRegular():
		if !opts.AllowRegularFile {
			return nil, fmt.Errorf("target %q: is a regular file, %w (regular files need AllowRegularFile)", path, ErrNotATarget)
		}
		fresh = st.Size() == 0
	default:
		return nil, fmt.Errorf("target %q: is a %s, %w", path, kindOf(st.Mode()), ErrNotATarget)
	}
	t := &target{path: path, zeroed: opts.TargetZeroed || fresh}
	t.canZeroOut = !t.zeroed && !opts.NoZeroOffload
	flags := os.O_WRONLY
	if fresh {
		flags |= os.O_CREATE
	}
	isBlock := st != nil && st.Mode()&os.ModeDevice != 0
	if isBlock {
		t.isBlock = true
		rdev := st.Sys().(*syscall.Stat_t).Rdev
		if err := checkNotInUse(path, rdev); err != nil {
			return nil, err
		}
		_, perr := os.Stat(fmt.Sprintf("/sys/dev/block/%d:%d/partition", major(rdev), minor(rdev)))
		t.wholeDisk = perr != nil
		// O_EXCL on a block device fails with EBUSY while the kernel has it
		// claimed (mounted, in an md array, a dm/LVM member).
		flags |= syscall.O_EXCL
	}
	buffered, err := os.OpenFile(path, flags, 0o644)
	if err != nil {
		return nil, fmt.Errorf("target %q: open: %w", path, err)
	}
	t.buffered = buffered
	if t.size, err = sizeOf(buffered, isBlock); err != nil {
		buffered.Close()
		return nil, fmt.Errorf("target %q: size: %w", path, err)
	}
	t.direct = buffered
	if !opts.NoDirect {
		// A second descriptor with O_DIRECT for the aligned bulk. Some
		// filesystems (tmpfs) refuse O_DIRECT: fall back to buffered writes.
		dflags := os.O_WRONLY | syscall.O_DIRECT
		if d, err := os.OpenFile(path, dflags, 0); err == nil {
			t.direct, t.isDirect = d, true
		} else if !errors.Is(err, syscall.EINVAL) {
			buffered.Close()
			return nil, fmt.Errorf("target %q: open O_DIRECT: %w", path, err)
		}
	}
	t.punch = func(off, n int64) error {
		// On a block device the kernel turns PUNCH_HOLE|KEEP_SIZE into a
		// zeroout with BLKDEV_ZERO_NOFALLBACK: REQ_OP_WRITE_ZEROES, which
		// the device guarantees reads back as zeroes, or EOPNOTSUPP where
		// it would have to be emulated. On a regular file it frees the
		// blocks; a hole reads back as zeroes.
		return unix.Fallocate(int(t.buffered.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, n)
	}
	return t, nil
}

// zeroOut has the target zero n bytes at off itself. It reports false
// (and stops offering) when the device or filesystem cannot: the caller
// then writes the zeroes.
func (t *target) zeroOut(off, n int64) (bool, error) {
	if !t.canZeroOut {
		return false, nil
	}
	err := t.punch(off, n)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, unix.EOPNOTSUPP), errors.Is(err, unix.EINVAL), errors.Is(err, unix.ENOTTY),
		errors.Is(err, unix.ENOSYS), errors.Is(err, unix.ENODEV):
		t.canZeroOut = false
		return false, nil
	}
	return false, fmt.Errorf("zero %d bytes of %q at %d (write-zeroes): %w", n, t.path, off, err)
}

func kindOf(m os.FileMode) string {
	switch {
	case m.IsDir():
		return "directory"
	case m&os.ModeCharDevice != 0:
		return "character device"
	case m&os.ModeNamedPipe != 0:
		return "named pipe"
	case m&os.ModeSocket != 0:
		return "socket"
	case m&os.ModeSymlink != 0:
		return "symlink"
	}
	return "special file"
}

func major(dev uint64) uint64 { return (dev >> 8) & 0xfff }
func minor(dev uint64) uint64 { return (dev & 0xff) | ((dev >> 12) & 0xfff00) }

func sizeOf(f *os.File, isBlock bool) (int64, error) {
	if !isBlock {
		st, err := f.Stat()
		if err != nil {
			return 0, err
		}
		return st.Size(), nil
	}
	var size uint64
	const blkGetSize64 = 0x80081272
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, f.Fd(), blkGetSize64, uintptr(unsafe.Pointer(&size))); e != 0 {
		return 0, e
	}
	return int64(size), nil
}

// checkNotInUse refuses a block device that is mounted, has a mounted
// partition, or is held by another device (md, dm, LVM).
func checkNotInUse(path string, rdev uint64) error {
	sys := fmt.Sprintf("/sys/dev/block/%d:%d", major(rdev), minor(rdev))
	devs := map[string]string{fmt.Sprintf("%d:%d", major(rdev), minor(rdev)): filepath.Base(path)}
	holders, _ := os.ReadDir(filepath.Join(sys, "holders"))
	for _, h := range holders {
		return fmt.Errorf("target %q: is held by %s (md/dm/LVM): refusing to write", path, h.Name())
	}
	// Partitions of a whole disk: subdirectories with a "dev" file.
	if ents, err := os.ReadDir(sys); err == nil {
		for _, e := range ents {
			b, err := os.ReadFile(filepath.Join(sys, e.Name(), "dev"))
			if err != nil {
				continue
			}
			devs[strings.TrimSpace(string(b))] = e.Name()
			if hs, _ := os.ReadDir(filepath.Join(sys, e.Name(), "holders")); len(hs) > 0 {
				return fmt.Errorf("target %q: partition %s is held by %s (md/dm/LVM): refusing to write", path, e.Name(), hs[0].Name())
			}
		}
	}
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return fmt.Errorf("target %q: cannot check mounts: %w", path, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		if name, ok := devs[fields[2]]; ok {
			return fmt.Errorf("target %q: %s is mounted at %s: refusing to write", path, name, fields[4])
		}
	}
	// Also refuse an active swap area on it.
	if b, err := os.ReadFile("/proc/swaps"); err == nil {
		for _, line := range strings.Split(string(b), "\n")[1:] {
			fs := strings.Fields(line)
			if len(fs) == 0 {
				continue
			}
			if st, err := os.Stat(fs[0]); err == nil {
				if s, ok := st.Sys().(*syscall.Stat_t); ok && st.Mode()&os.ModeDevice != 0 {
					if _, hit := devs[strconv.FormatUint(major(s.Rdev), 10)+":"+strconv.FormatUint(minor(s.Rdev), 10)]; hit {
						return fmt.Errorf("target %q: %s is in use as swap: refusing to write", path, fs[0])
					}
				}
			}
		}
	}
	return nil
}

func (t *target) Close() error {
	var err error
	if t.direct != nil && t.direct != t.buffered {
		err = t.direct.Close()
	}
	if t.buffered != nil {
		err = errors.Join(err, t.buffered.Close())
	}
	return err
}

// writeAt writes p at off, through O_DIRECT for the aligned part and the
// buffered descriptor for an unaligned remainder. If the first O_DIRECT
// write is refused with EINVAL, it falls back to buffered for good.
func (t *target) writeAt(p []byte, off int64) error {
	if t.isDirect && off%alignment == 0 {
		n := len(p) &^ (alignment - 1)
		if n > 0 && uintptr(unsafe.Pointer(&p[0]))%alignment == 0 {
			_, err := t.direct.WriteAt(p[:n], off)
			if errors.Is(err, syscall.EINVAL) {
				t.isDirect = false
			} else if err != nil {
				return fmt.Errorf("write %q at %d: %w", t.path, off, err)
			} else {
				p, off = p[n:], off+int64(n)
			}
		}
	}
	if len(p) == 0 {
		return nil
	}
	if _, err := t.buffered.WriteAt(p, off); err != nil {
		return fmt.Errorf("write %q at %d: %w", t.path, off, err)
	}
	return nil
}

// sync makes everything written so far durable.
func (t *target) sync() error {
	if err := syscall.Fdatasync(int(t.buffered.Fd())); err != nil {
		return fmt.Errorf("fdatasync %q: %w", t.path, err)
	}
	return nil
}

// scrub zeroes the first hold bytes and, on a whole disk, the last MiB
// (where a backup GPT lives), then syncs, so that an interrupted or failed
// write leaves nothing bootable or mountable behind.
func (t *target) scrub(hold int) error {
	zero := make([]byte, hold)
	n := int64(hold)
	if !t.isBlock && t.size < n {
		n = t.size // do not grow a file just to zero it
	}
	if t.isBlock && t.size < n {
		n = t.size
	}
	if n > 0 {
		if _, err := t.buffered.WriteAt(zero[:n], 0); err != nil {
			return fmt.Errorf("zero start of %q: %w", t.path, err)
		}
	}
	if t.isBlock && t.wholeDisk && t.size > int64(hold) {
		end := int64(1 << 20)
		if end > t.size-int64(hold) {
			end = t.size - int64(hold)
		}
		if _, err := t.buffered.WriteAt(make([]byte, end), t.size-end); err != nil {
			return fmt.Errorf("zero backup GPT area of %q: %w", t.path, err)
		}
	}
	return t.sync()
}

// alignedBuffer returns a zeroed buffer of n bytes whose start is aligned for
// O_DIRECT, from an anonymous mapping (outside the Go heap).
func alignedBuffer(n int) ([]byte, func(), error) {
	b, err := syscall.Mmap(-1, 0, n, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		return nil, nil, fmt.Errorf("allocate %d-byte buffer: %w", n, err)
	}
	return b, func() { syscall.Munmap(b) }, nil
}
