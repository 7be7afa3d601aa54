package movefiles

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// Mounter mounts and unmounts filesystems (internal/sys.Mounter).
type Mounter interface {
	Mount(source, target, fstype string, bind bool, data string) error
	Unmount(target string) error
}

// Guard says whether a device may be touched (the job's device set).
type Guard interface {
	Check(dev, what string) error
}

// Deps are what Apply uses.
type Deps struct {
	Mounter Mounter
	Guard   Guard  // nil: no check
	TempDir string // where the filesystems are mounted ("": os.TempDir())
	Logger  *slog.Logger
}

// DeviceError names the device a move failed on.
type DeviceError struct {
	Device string
	Err    error
}

func (e *DeviceError) Error() string      { return e.Err.Error() }
func (e *DeviceError) Unwrap() error      { return e.Err }
func (e *DeviceError) DeviceName() string { return e.Device }

// Apply carries out moves in order. Each filesystem is mounted once, on
// its own directory, and everything is unmounted before Apply returns.
func Apply(ctx context.Context, moves []Move, deps Deps) (err error) {
	if len(moves) == 0 {
		return nil
	}
	log := deps.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	base, err := os.MkdirTemp(deps.TempDir, "imprint-movefiles-")
	if err != nil {
		return fmt.Errorf("move files: %w", err)
	}
	dirs := map[string]string{} // device -> mount dir
	var order []string
	defer func() {
		var errs []error
		for i := len(order) - 1; i >= 0; i-- {
			if e := deps.Mounter.Unmount(dirs[order[i]]); e != nil {
				errs = append(errs, fmt.Errorf("move files: unmount %s: %w", order[i], e))
			}
		}
		if len(errs) == 0 {
			os.RemoveAll(base)
		}
		err = errors.Join(append([]error{err}, errs...)...)
	}()
	mount := func(dev, fstype string) (string, error) {
		if d, ok := dirs[dev]; ok {
			return d, nil
		}
		if deps.Guard != nil {
			if err := deps.Guard.Check(dev, "move files"); err != nil {
				return "", &DeviceError{Device: dev, Err: fmt.Errorf("move files: %w", err)}
			}
		}
		d := filepath.Join(base, fmt.Sprint(len(order)))
		if err := os.Mkdir(d, 0o700); err != nil {
			return "", fmt.Errorf("move files: %w", err)
		}
		if err := deps.Mounter.Mount(dev, d, fstype, false, ""); err != nil {
			return "", &DeviceError{Device: dev, Err: fmt.Errorf("move files: mount %s (%s): %w", dev, fstype, err)}
		}
		dirs[dev] = d
		order = append(order, dev)
		return d, nil
	}
	for _, m := range moves {
		if err := ctx.Err(); err != nil {
			return err
		}
		from, err := mount(m.FromDevice, m.FromType)
		if err != nil {
			return err
		}
		to, err := mount(m.ToDevice, m.ToType)
		if err != nil {
			return err
		}
		st, err := MoveTree(ctx, filepath.Join(from, m.Path), to)
		if err != nil {
			return &DeviceError{Device: m.ToDevice, Err: fmt.Errorf("move files %s: %w", m, err)}
		}
		log.Info("moved files into their filesystem", "from", m.FromMount, "path", m.Path, "from_device", m.FromDevice,
			"to", m.ToMount, "to_device", m.ToDevice, "entries", st.Entries, "bytes", st.Bytes)
	}
	return nil
}

// Stats counts what MoveTree moved.
type Stats struct {
	Entries int   // files, directories, links, nodes
	Bytes   int64 // data bytes of regular files
}

// MoveTree moves the contents of directory src (any filesystem) into
// directory dst (another one), then removes them from src; src itself
// stays, empty, and its owner, mode, extended attributes and times are
// given to dst. A missing src, or an empty one, moves nothing. An entry
// dst already has is replaced (a run cut short and started again), a
// directory is merged.
func MoveTree(ctx context.Context, src, dst string) (Stats, error) {
	var st Stats
	fi, err := os.Lstat(src)
	if errors.Is(err, os.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return st, err
	}
	if !fi.IsDir() {
		return st, fmt.Errorf("%s is not a directory (%s)", src, fi.Mode().Type())
	}
	c := &copier{ctx: ctx, links: map[inode]string{}, st: &st}
	entries, err := os.ReadDir(src)
	if err != nil {
		return st, err
	}
	for _, e := range entries {
		if err := c.copy(filepath.Join(src, e.Name()), filepath.Join(dst, e.Name())); err != nil {
			return st, err
		}
	}
	if err := copyMeta(src, dst, false); err != nil {
		return st, err
	}
	unix.Sync() // the copies are on disk before the originals go
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(src, e.Name())); err != nil {
			return st, fmt.Errorf("remove the moved %s: %w", filepath.Join(src, e.Name()), err)
		}
	}
	return st, nil
}

type inode struct{ dev, ino uint64 }

type copier struct {
	ctx   context.Context
	links map[inode]string // first copy of a multiply linked file
	st    *Stats
}

func (c *copier) copy(src, dst string) error {
	if err := c.ctx.Err(); err != nil {
		return err
	}
	var s unix.Stat_t
	if err := unix.Lstat(src, &s); err != nil {
		return &os.PathError{Op: "lstat", Path: src, Err: err}
	}
	c.st.Entries++
	typ := s.Mode & unix.S_IFMT
	if typ == unix.S_IFDIR {
		if di, err := os.Lstat(dst); err == nil && !di.IsDir() {
			if err := os.Remove(dst); err != nil {
				return err
			}
		}
		if err := os.Mkdir(dst, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
			return err
		}
		entries, err := os.ReadDir(src)
		if err != nil {
			return err
		}
		for _, e := range entries {
			if err := c.copy(filepath.Join(src, e.Name()), filepath.Join(dst, e.Name())); err != nil {
				return err
			}
		}
		return copyMeta(src, dst, false)
	}
	// anything else replaces what dst has under that name
	if di, err := os.Lstat(dst); err == nil {
		if di.IsDir() {
			err = os.RemoveAll(dst)
		} else {
			err = os.Remove(dst)
		}
		if err != nil {
			return err
		}
	}
	if s.Nlink > 1 {
		key := inode{uint64(s.Dev), s.Ino}
		if first, ok := c.links[key]; ok {
			if err := os.Link(first, dst); err != nil {
				return err
			}
			return nil
		}
		c.links[key] = dst
	}
	switch typ {
	case unix.S_IFREG:
		n, err := copySparse(src, dst)
		if err != nil {
			return err
		}
		c.st.Bytes += n
	case unix.S_IFLNK:
		target, err := os.Readlink(src)
		if err != nil {
			return err
		}
		if err := os.Symlink(target, dst); err != nil {
			return err
		}
		return copyMeta(src, dst, true)
	case unix.S_IFCHR, unix.S_IFBLK, unix.S_IFIFO, unix.S_IFSOCK:
		if err := unix.Mknod(dst, s.Mode, int(s.Rdev)); err != nil {
			return &os.PathError{Op: "mknod", Path: dst, Err: err}
		}
	default:
		return fmt.Errorf("%s: unknown file type %#o", src, typ)
	}
	return copyMeta(src, dst, false)
}

// blockSize is the unit of hole detection: an all-zero block of a regular
// file is skipped (a hole in the copy), as cp --sparse=always does.
const blockSize = 64 << 10

// copySparse copies a regular file's data, leaving holes where the source
// has zeros, and returns the bytes of the file.
func copySparse(src, dst string) (int64, error) {
	in, err := os.Open(src)
	if err != nil {
		return 0, err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return 0, err
	}
	buf := make([]byte, blockSize)
	var off int64
	for {
		n, rerr := io.ReadFull(in, buf)
		if n > 0 {
			if isZero(buf[:n]) {
				off += int64(n)
			} else {
				if _, err := out.WriteAt(buf[:n], off); err != nil {
					out.Close()
					return 0, err
				}
				off += int64(n)
			}
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			out.Close()
			return 0, rerr
		}
	}
	if err := out.Truncate(off); err != nil {
		out.Close()
		return 0, err
	}
	return off, out.Close()
}

func isZero(b []byte) bool {
	var zero [blockSize]byte
	return bytes.Equal(b, zero[:len(b)])
}

// copyMeta gives dst src's owner, extended attributes (POSIX ACLs are
// system.posix_acl_* attributes), mode and times; symlink: owner, xattrs
// and times of the link itself.
func copyMeta(src, dst string, link bool) error {
	var s unix.Stat_t
	if err := unix.Lstat(src, &s); err != nil {
		return &os.PathError{Op: "lstat", Path: src, Err: err}
	}
	if err := unix.Lchown(dst, int(s.Uid), int(s.Gid)); err != nil {
		return &os.PathError{Op: "lchown", Path: dst, Err: err}
	}
	if !link {
		// after chown, which clears set-user/group-ID bits
		if err := unix.Fchmodat(unix.AT_FDCWD, dst, s.Mode&0o7777, 0); err != nil {
			return &os.PathError{Op: "chmod", Path: dst, Err: err}
		}
	}
	if err := copyXattrs(src, dst); err != nil {
		// Linux refuses user.* attributes on symlinks; they cannot have any.
		if !link || !(errors.Is(err, unix.EPERM) || errors.Is(err, unix.ENOTSUP)) {
			return err
		}
	}
	ts := []unix.Timespec{s.Atim, s.Mtim}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, dst, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return &os.PathError{Op: "utimes", Path: dst, Err: err}
	}
	return nil
}

func copyXattrs(src, dst string) error {
	sz, err := unix.Llistxattr(src, nil)
	if errors.Is(err, unix.ENOTSUP) || sz == 0 {
		return nil
	}
	if err != nil {
		return &os.PathError{Op: "listxattr", Path: src, Err: err}
	}
	buf := make([]byte, sz)
	sz, err = unix.Llistxattr(src, buf)
	if err != nil {
		return &os.PathError{Op: "listxattr", Path: src, Err: err}
	}
	for _, name := range strings.Split(strings.TrimRight(string(buf[:sz]), "\x00"), "\x00") {
		if name == "" {
			continue
		}
		vsz, err := unix.Lgetxattr(src, name, nil)
		if err != nil {
			return &os.PathError{Op: "getxattr " + name, Path: src, Err: err}
		}
		val := make([]byte, vsz)
		if vsz > 0 {
			if vsz, err = unix.Lgetxattr(src, name, val); err != nil {
				return &os.PathError{Op: "getxattr " + name, Path: src, Err: err}
			}
		}
		if err := unix.Lsetxattr(dst, name, val[:vsz], 0); err != nil {
			return &os.PathError{Op: "setxattr " + name, Path: dst, Err: err}
		}
	}
	return nil
}
