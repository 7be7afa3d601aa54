package imagebuild

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// xfs cannot shrink (xfs_growfs only grows), so an xfs image is made
// minimal by copying its tree into a new filesystem just big enough for
// it. The size is computed from the superblock counters, not guessed:
//
//	content  = used(image) - used(empty filesystem of the image's size)
//	size     = content + used(empty filesystem of size) + margin(content)
//
// where used is (dblocks - fdblocks) × blocksize as xfs_db reads it from
// superblock 0, and the empty filesystems are probes: sparse files made
// with the very mkfs.xfs options of the image (log, allocation group
// headers and btree roots all depend on them and on the size). The size
// is iterated until the probe of the chosen size leaves room for the
// content.

// xfsImagePlaceholder in a shrink-xfs step's Argv is the file mkfs.xfs
// makes the filesystem on.
const xfsImagePlaceholder = "{image}"

// XFSMinSize is the smallest filesystem mkfs.xfs (xfsprogs ≥ 5.19) makes:
// "Filesystem must be larger than 300MB".
const XFSMinSize = 300 << 20

// XFSCounts are superblock 0's block counters.
type XFSCounts struct {
	BlockSize, DBlocks, FDBlocks int64
}

// Used is the space in use: the data of the files, the inodes,
// directories and btrees, the internal log and the AG headers.
func (c XFSCounts) Used() int64 { return (c.DBlocks - c.FDBlocks) * c.BlockSize }

// Size is the filesystem's size.
func (c XFSCounts) Size() int64 { return c.DBlocks * c.BlockSize }

// xfsDBArgv reads the counters of the xfs filesystem in file.
func xfsDBArgv(file string) []string {
	return []string{"xfs_db", "-r", "-c", "sb 0", "-c", "p blocksize dblocks fdblocks", file}
}

var xfsDBFieldRe = regexp.MustCompile(`(?m)^(blocksize|dblocks|fdblocks) = (\d+)\s*$`)

// ParseXFSDB reads the output of xfs_db -c 'sb 0' -c 'p blocksize dblocks
// fdblocks'.
func ParseXFSDB(out string) (XFSCounts, error) {
	var c XFSCounts
	seen := map[string]bool{}
	for _, m := range xfsDBFieldRe.FindAllStringSubmatch(out, -1) {
		n, err := strconv.ParseInt(m[2], 10, 64)
		if err != nil {
			return XFSCounts{}, fmt.Errorf("%s: %w", m[1], err)
		}
		switch m[1] {
		case "blocksize":
			c.BlockSize = n
		case "dblocks":
			c.DBlocks = n
		case "fdblocks":
			c.FDBlocks = n
		}
		seen[m[1]] = true
	}
	for _, f := range []string{"blocksize", "dblocks", "fdblocks"} {
		if !seen[f] {
			return XFSCounts{}, fmt.Errorf("no %s in the output %q", f, out)
		}
	}
	if c.BlockSize <= 0 || c.FDBlocks > c.DBlocks {
		return XFSCounts{}, fmt.Errorf("implausible counters %+v", c)
	}
	return c, nil
}

// xfsMargin is the room left beyond the content: xfs keeps a reserve
// pool of min(5%, 8192 blocks) = 32 MiB at 4 KiB blocks out of the free
// space once mounted, and per-AG reservations for the finobt, rmapbt and
// refcountbt (about 1–2% of an AG); a fresh copy lays out directories and
// inode chunks differently from the original; and the first boot writes
// before the image writer's xfs_growfs has run. So: 64 MiB plus 5% of
// the content.
func xfsMargin(content int64) int64 { return 64<<20 + content/20 }

// XFSShrinkSize is the size of a new xfs image for content bytes (files
// and their metadata) when an empty filesystem of about that size uses
// overhead bytes (log, AG headers): rounded up to a MiB, at least
// XFSMinSize.
func XFSShrinkSize(content, overhead int64) int64 {
	s := content + overhead + xfsMargin(content)
	s = (s + 1<<20 - 1) &^ (1<<20 - 1)
	return max(s, XFSMinSize)
}

// shrinkXFS replaces the xfs image s.Path with a minimal copy; see the
// comment at the top of this file.
func (e *Executor) shrinkXFS(ctx context.Context, s Step) error {
	file := s.Path
	log := e.Log.With("image", s.Mount, "file", file)
	t0 := time.Now()
	old, err := e.xfsCounts(ctx, file)
	if err != nil {
		return err
	}
	empty, err := e.xfsProbe(ctx, s.Argv, file+".probe", old.Size())
	if err != nil {
		return err
	}
	content := max(old.Used()-empty.Used(), 0)
	size := XFSShrinkSize(content, empty.Used())
	for i := 0; ; i++ {
		p, err := e.xfsProbe(ctx, s.Argv, file+".probe", size)
		if err != nil {
			return err
		}
		next := XFSShrinkSize(content, p.Used())
		if next <= size {
			break
		}
		if i == 5 {
			return fmt.Errorf("shrink xfs %q: no size found for %d bytes of content (last %d, next %d)", file, content, size, next)
		}
		size = next
	}
	log.Info("xfs image measured", "size", old.Size(), "used", old.Used(), "content", content, "new_size", size)
	if size >= old.Size() {
		log.Info("xfs image already minimal")
		return nil
	}

	small := file + ".small"
	if err := createSparse(small, size); err != nil {
		return fmt.Errorf("shrink xfs %q: %w", file, err)
	}
	defer removeIfExists(small) // renamed over file on success
	if _, err := e.run(ctx, Cmd{Argv: withImage(s.Argv, small)}, nil); err != nil {
		return fmt.Errorf("shrink xfs %q: mkfs: %w", file, err)
	}
	// both trees are mounted: xfsdump reads a mounted xfs, xfsrestore
	// writes into one
	src, dst := file+".src.d", small+".d"
	// the copy has the original's UUID, which xfs refuses to mount twice:
	// the original (discarded afterwards) is mounted nouuid
	if err := e.mountImage(ctx, file, src, "nouuid"); err != nil {
		return fmt.Errorf("shrink xfs %q: %w", file, err)
	}
	if err := e.mountImage(ctx, small, dst, ""); err != nil {
		return fmt.Errorf("shrink xfs %q: %w", file, err)
	}
	// xfsdump|xfsrestore rather than cp -a or tar: it is xfs's own
	// copy, inode by inode, and keeps what the generic tools lose or
	// bend: every attribute namespace (user, trusted, security and the
	// ACLs, which xfs keeps as attributes), the xfs inode flags (chattr,
	// xfs_io chattr: immutable, append, nodump, extent size hints),
	// project ids, holes of sparse files as holes, hard links, device
	// nodes, FIFOs and sockets. -J: no inventory under /var/lib/xfsdump
	// on the build host. Its dump format keeps whole seconds and no
	// symlink times: copyTimes puts the nanoseconds back.
	copyCmd := `set -o pipefail; xfsdump -J -l 0 -L imprint -M imprint - "$1" | xfsrestore -J - "$2"`
	if _, err := e.run(ctx, Cmd{Argv: []string{"bash", "-c", copyCmd, "xfs-copy", src, dst}}, nil); err != nil {
		return fmt.Errorf("shrink xfs %q: copy: %w", file, err)
	}
	n, kept, err := copyTimes(src, dst)
	if err != nil {
		return fmt.Errorf("shrink xfs %q: copy times: %w", file, err)
	}
	log.Info("xfs copy times set", "inodes", n, "immutable_kept_seconds", kept)
	for _, d := range []string{dst, src} {
		if err := e.pop(ctx, "umount "+d); err != nil {
			return fmt.Errorf("shrink xfs %q: %w", file, err)
		}
		if err := e.pop(ctx, "detach "+d); err != nil {
			return fmt.Errorf("shrink xfs %q: %w", file, err)
		}
		if err := e.pop(ctx, "remove "+d); err != nil {
			return fmt.Errorf("shrink xfs %q: %w", file, err)
		}
	}
	if _, err := e.run(ctx, Cmd{Argv: []string{"xfs_repair", "-n", small}}, nil); err != nil {
		return fmt.Errorf("shrink xfs %q: check the copy: %w", file, err)
	}
	got, err := e.xfsCounts(ctx, small)
	if err != nil {
		return err
	}
	if err := os.Rename(small, file); err != nil {
		return fmt.Errorf("shrink xfs %q: %w", file, err)
	}
	log.Info("xfs image shrunk", "from", old.Size(), "to", got.Size(), "used", got.Used(), "free", got.FDBlocks*got.BlockSize,
		"duration", time.Since(t0).Round(time.Millisecond))
	return nil
}

func (e *Executor) xfsCounts(ctx context.Context, file string) (XFSCounts, error) {
	out, err := e.run(ctx, Cmd{Argv: xfsDBArgv(file)}, nil)
	if err != nil {
		return XFSCounts{}, fmt.Errorf("read xfs counters of %q: %w", file, err)
	}
	c, err := ParseXFSDB(string(out))
	if err != nil {
		return XFSCounts{}, fmt.Errorf("read xfs counters of %q: %w", file, err)
	}
	return c, nil
}

// xfsProbe makes an empty filesystem of size with mkfs in the sparse file
// probe, reads its counters and removes it.
func (e *Executor) xfsProbe(ctx context.Context, mkfs []string, probe string, size int64) (XFSCounts, error) {
	if err := createSparse(probe, size); err != nil {
		return XFSCounts{}, fmt.Errorf("xfs probe of %d bytes: %w", size, err)
	}
	defer os.Remove(probe)
	if _, err := e.run(ctx, Cmd{Argv: withImage(mkfs, probe)}, nil); err != nil {
		return XFSCounts{}, fmt.Errorf("xfs probe of %d bytes: %w", size, err)
	}
	return e.xfsCounts(ctx, probe)
}

// mountImage attaches file to a loop device and mounts it on dir with the
// options data, with
// cleanups "remove DIR", "detach DIR" and "umount DIR".
func (e *Executor) mountImage(ctx context.Context, file, dir, data string) error {
	if err := os.Mkdir(dir, 0o700); err != nil {
		return err
	}
	e.push("remove "+dir, func(context.Context) error { return os.Remove(dir) })
	out, err := e.run(ctx, Cmd{Argv: []string{"losetup", "--find", "--show", file}}, nil)
	if err != nil {
		return err
	}
	dev := strings.TrimSpace(string(out))
	if !strings.HasPrefix(dev, "/dev/loop") {
		return fmt.Errorf("losetup --find --show %s: unexpected output %q", file, out)
	}
	e.push("detach "+dir, func(ctx context.Context) error {
		_, err := e.run(ctx, Cmd{Argv: []string{"losetup", "-d", dev}}, nil)
		return err
	})
	if err := e.Mounter.Mount(dev, dir, "xfs", false, data); err != nil {
		return fmt.Errorf("mount %s (%s) on %q: %w", dev, file, dir, err)
	}
	e.push("umount "+dir, func(ctx context.Context) error { return e.unmount(ctx, dir) })
	return nil
}

// copyTimes sets the access and modification times of every path under
// dst to those of the same path under src, to the nanosecond, symlinks
// included. Immutable and append-only files refuse (EPERM) and keep the
// whole seconds xfsrestore gave them: kept counts them.
func copyTimes(src, dst string) (n, kept int, err error) {
	err = filepath.WalkDir(dst, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dst, p)
		if err != nil {
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(filepath.Join(src, rel), &st); err != nil {
			return fmt.Errorf("%s in the copy: %w", rel, err)
		}
		ts := []unix.Timespec{st.Atim, st.Mtim}
		switch err := unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW); {
		case errors.Is(err, unix.EPERM):
			kept++
		case err != nil:
			return fmt.Errorf("set times of %q: %w", p, err)
		}
		n++
		return nil
	})
	return n, kept, err
}

func withImage(argv []string, file string) []string {
	out := make([]string, len(argv))
	for i, a := range argv {
		out[i] = strings.ReplaceAll(a, xfsImagePlaceholder, file)
	}
	return out
}

func createSparse(path string, size int64) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if err := f.Truncate(size); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	return f.Close()
}
