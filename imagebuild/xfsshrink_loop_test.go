//go:build loop

package imagebuild

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/imprint-dev/imprint/imagewriter"
	"github.com/imprint-dev/imprint/internal/logtest"
	"github.com/imprint-dev/imprint/internal/sys"
	"github.com/imprint-dev/imprint/internal/testenv"
)

func xfsPrereqs(t *testing.T) {
	t.Helper()
	testenv.RequireLoop(t, "mkfs.xfs", "xfs_db", "xfs_repair", "xfs_growfs", "xfsdump", "xfsrestore", "xfs_io", "bash")
}

// TestLoopShrinkXFS shrinks a 4 GiB xfs image holding every kind of file
// and checks the copy is minimal, clean, the same tree, and grows.
func TestLoopShrinkXFS(t *testing.T) {
	xfsPrereqs(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	dir := t.TempDir()
	file := filepath.Join(dir, "var.img")
	if err := createSparse(file, 4<<30); err != nil {
		t.Fatal(err)
	}
	mkfs := mkfsArgv("xfs", "var", "0b0e1f0c-7a57-4e55-9d1c-6e3d2f0b9a11", xfsImagePlaceholder)
	runT(t, withImage(mkfs, file)...)
	var before manifest
	withMounted(t, file, func(mnt string) {
		populateXFS(t, mnt)
		before = takeManifest(t, mnt)
	})

	log, _ := logtest.Capture(t)
	deps := SystemDeps(log)
	ex := &Executor{Runner: deps.Runner, Mounter: deps.Mounter, Procs: deps.Procs, Log: log}
	step := Step{Name: "shrink xfs /var", Op: OpShrinkXFS, Path: file, Mount: "/var", Argv: mkfs}
	t0 := time.Now()
	if err := ex.Run(ctx, Plan{Steps: []Step{step}}); err != nil {
		t.Fatalf("shrink: %v", err)
	}
	t.Logf("shrink took %s", time.Since(t0).Round(time.Millisecond))
	checkShrunkXFS(t, ctx, file, 4<<30, before, "var", "0b0e1f0c-7a57-4e55-9d1c-6e3d2f0b9a11")
	noLeftovers(t, dir, "var.img")
}

// checkShrunkXFS checks the shrunk xfs image file: smaller than a quarter
// of origSize, xfs_repair -n clean, label and uuid kept, the tree of
// before; then written to an 8 GiB device and grown as the
// image writer grows it, it fills the device.
func checkShrunkXFS(t *testing.T, ctx context.Context, file string, origSize int64, before manifest, label, uuid string) {
	t.Helper()
	checkShrunkXFSTree(t, ctx, file, origSize, before, label, uuid, "")
}

func checkShrunkXFSTree(t *testing.T, ctx context.Context, file string, origSize int64, before manifest, label, uuid, xflagsUnder string) {
	t.Helper()
	fi, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("xfs image: configured %d MiB, shrunk to %d MiB", origSize>>20, fi.Size()>>20)
	if fi.Size() > origSize/4 {
		t.Errorf("xfs image is %d bytes, not much smaller than %d", fi.Size(), origSize)
	}
	if out, err := exec.Command("xfs_repair", "-n", file).CombinedOutput(); err != nil {
		t.Errorf("xfs_repair -n: %v\n%s", err, out)
	}
	// minimal: above mkfs.xfs's minimum, what is free is the margin
	out, err := exec.Command("xfs_db", "-r", "-c", "sb 0", "-c", "p blocksize dblocks fdblocks", file).CombinedOutput()
	if err != nil {
		t.Fatalf("xfs_db %s: %v %s", file, err, out)
	}
	sc, err := ParseXFSDB(string(out))
	if err != nil {
		t.Fatal(err)
	}
	free := sc.FDBlocks * sc.BlockSize
	t.Logf("shrunk xfs: %d MiB used, %d MiB free", sc.Used()>>20, free>>20)
	if sc.Size() > XFSMinSize && (free < 64<<20 || free > xfsMargin(sc.Used())+8<<20) {
		t.Errorf("shrunk xfs has %d bytes free, want the margin %d", free, xfsMargin(sc.Used()))
	}
	out, err = exec.Command("xfs_db", "-r", "-c", "label", "-c", "uuid", file).CombinedOutput()
	if err != nil || !strings.Contains(string(out), `label = "`+label+`"`) || !strings.Contains(string(out), "UUID = "+uuid) {
		t.Errorf("xfs_db label, uuid: %v %s", err, out)
	}
	withMounted(t, file, func(mnt string) {
		// mounted, xfs sets its reserve pool and per-AG reservations aside:
		// the margin leaves room to write still
		var sfs syscall.Statfs_t
		must0(t, syscall.Statfs(mnt, &sfs))
		avail := int64(sfs.Bavail) * sfs.Bsize
		t.Logf("mounted: %d MiB available", avail>>20)
		if avail < 16<<20 {
			t.Errorf("mounted shrunk xfs has %d bytes available", avail)
		}
		if diff := cmp.Diff(before, takeManifestXFlags(t, mnt, xflagsUnder)); diff != "" {
			t.Errorf("tree after the shrink (-before +after):\n%s", diff)
		} else {
			t.Logf("same tree: %d entries", len(before))
		}
	})

	// the image writer's way: write it to a bigger device, grow it there
	big := filepath.Join(t.TempDir(), "disk.img")
	devSize := int64(DefaultImageSize) // a disk of the size the image was built at, as a node has
	if err := createSparse(big, devSize); err != nil {
		t.Fatal(err)
	}
	runT(t, "dd", "if="+file, "of="+big, "bs=4M", "conv=notrunc,sparse", "status=none")
	dev := attachT(t, big)
	if err := imagewriter.Grow(ctx, &sys.Exec{}, "xfs", dev); err != nil {
		t.Fatalf("grow: %v", err)
	}
	out, err = exec.Command("xfs_db", "-r", "-c", "sb 0", "-c", "p blocksize dblocks fdblocks", dev).CombinedOutput()
	if err != nil {
		t.Fatalf("xfs_db %s: %v %s", dev, err, out)
	}
	c, err := ParseXFSDB(string(out))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("grown on a %d MiB device: %d MiB, %d MiB free", devSize>>20, c.Size()>>20, c.FDBlocks*c.BlockSize>>20)
	if c.Size() != devSize {
		t.Errorf("grown filesystem is %d bytes, the device %d", c.Size(), devSize)
	}
	if out, err := exec.Command("xfs_repair", "-n", dev).CombinedOutput(); err != nil {
		t.Errorf("xfs_repair -n after the grow: %v\n%s", err, out)
	}
}

// populateXFS makes one of every kind of file: hard links, a sparse
// file, user and trusted attributes, an ACL, device nodes, a FIFO, a
// symlink, an immutable file and an extent size hint.
func populateXFS(t *testing.T, mnt string) {
	t.Helper()
	p := func(s string) string { return filepath.Join(mnt, s) }
	for _, d := range []string{"d/sub", "acl"} {
		if err := os.MkdirAll(p(d), 0o750); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(p("d/file"), []byte("hello xfs\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	for _, l := range []string{"d/link1", "d/sub/link2"} {
		if err := os.Link(p("d/file"), p(l)); err != nil {
			t.Fatal(err)
		}
	}
	// 256 MiB with 2 data blocks: copied as data it would not fit
	f, err := os.Create(p("d/sparse"))
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte("start"), 0)
	f.WriteAt([]byte("end"), 256<<20-3)
	f.Close()
	// data blocks (zeros, but allocated), so the size is computed above
	// mkfs.xfs's minimum
	if err := os.WriteFile(p("d/big"), make([]byte, 400<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	must0(t, syscall.Setxattr(p("d/file"), "user.imprint", []byte("kept"), 0))
	must0(t, syscall.Setxattr(p("d/file"), "trusted.imprint", []byte{0, 1, 2, 255}, 0))
	must0(t, syscall.Setxattr(p("d/sub"), "user.dir", []byte("on a directory"), 0))
	// POSIX ACL user::rw- user:65534:r-- group::r-- mask::r-- other::---,
	// and a default ACL on a directory (the binary xattr format)
	acl := posixACL([][3]uint32{{0x01, 6, ^uint32(0)}, {0x02, 4, 65534}, {0x04, 4, ^uint32(0)}, {0x10, 4, ^uint32(0)}, {0x20, 0, ^uint32(0)}})
	if err := os.WriteFile(p("acl/file"), []byte("acl"), 0o640); err != nil {
		t.Fatal(err)
	}
	must0(t, syscall.Setxattr(p("acl/file"), "system.posix_acl_access", acl, 0))
	must0(t, syscall.Setxattr(p("acl"), "system.posix_acl_default", acl, 0))
	must0(t, syscall.Mknod(p("d/null"), syscall.S_IFCHR|0o666, int(mkdev(1, 3))))
	must0(t, syscall.Mknod(p("d/loopblk"), syscall.S_IFBLK|0o660, int(mkdev(7, 200))))
	must0(t, syscall.Mkfifo(p("d/fifo"), 0o600))
	must0(t, os.Symlink("sub/../file", p("d/symlink")))
	must0(t, os.Chown(p("d/file"), 1000, 1001))
	must0(t, os.Lchown(p("d/symlink"), 1002, 1003))
	if err := os.WriteFile(p("d/immutable"), []byte("cannot change"), 0o644); err != nil {
		t.Fatal(err)
	}
	// an immutable file's times cannot be set after xfsrestore: whole
	// seconds, which is what xfsdump keeps
	sec := time.Unix(time.Now().Unix(), 0)
	must0(t, os.Chtimes(p("d/immutable"), sec, sec))
	runT(t, "xfs_io", "-c", "chattr +i", p("d/immutable"))
	runT(t, "xfs_io", "-c", "extsize 1m", p("d/sub"))
	old := time.Date(2001, 2, 3, 4, 5, 6, 7, time.UTC)
	must0(t, os.Chtimes(p("d/big"), old, old))
}

func posixACL(entries [][3]uint32) []byte {
	b := []byte{2, 0, 0, 0} // version 2
	for _, e := range entries {
		b = append(b, byte(e[0]), byte(e[0]>>8), byte(e[1]), byte(e[1]>>8))
		b = append(b, byte(e[2]), byte(e[2]>>8), byte(e[2]>>16), byte(e[2]>>24))
	}
	return b
}

func mkdev(major, minor uint64) uint64 {
	return (minor & 0xff) | (major&0xfff)<<8 | (minor&^0xff)<<12 | (major&^0xfff)<<32
}

// manifest is one line per path: type, mode, owner, size, link count,
// device number, mtime, symlink target, every attribute, the blocks of
// files under 1 MiB of data (holes stay holes), the xfs inode flags and
// extent size hint, and a digest of the content.
type manifest []string

func takeManifest(t *testing.T, root string) manifest { return takeManifestXFlags(t, root, "") }

// takeManifestXFlags reads the xfs inode flags (with xfs_io: one process
// a file) only of the paths under xflagsUnder ("" for all).
func takeManifestXFlags(t *testing.T, root, xflagsUnder string) manifest {
	t.Helper()
	var m manifest
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		var st syscall.Stat_t
		if err := syscall.Lstat(p, &st); err != nil {
			return err
		}
		line := fmt.Sprintf("%s mode=%o uid=%d gid=%d nlink=%d", rel, st.Mode, st.Uid, st.Gid, st.Nlink)
		switch st.Mode & syscall.S_IFMT {
		case syscall.S_IFREG:
			line += fmt.Sprintf(" size=%d mtime=%d.%09d", st.Size, st.Mtim.Sec, st.Mtim.Nsec)
			if st.Size > 1<<20 && st.Blocks*512 < 1<<20 {
				line += " sparse"
			}
			line += " md5=" + fileMD5(t, p)
		case syscall.S_IFDIR:
			line += fmt.Sprintf(" mtime=%d.%09d", st.Mtim.Sec, st.Mtim.Nsec)
		case syscall.S_IFLNK:
			target, _ := os.Readlink(p)
			line += " -> " + target + fmt.Sprintf(" mtime=%d.%09d", st.Mtim.Sec, st.Mtim.Nsec)
		case syscall.S_IFCHR, syscall.S_IFBLK:
			line += fmt.Sprintf(" rdev=%x", st.Rdev)
		}
		if st.Mode&syscall.S_IFMT != syscall.S_IFLNK { // Listxattr would follow it
			line += xattrs(t, p)
		}
		if (st.Mode&syscall.S_IFMT == syscall.S_IFREG || st.Mode&syscall.S_IFMT == syscall.S_IFDIR) && strings.HasPrefix(rel, xflagsUnder) {
			out, err := exec.Command("xfs_io", "-r", "-c", "lsattr", "-c", "extsize", p).CombinedOutput()
			if err != nil {
				return fmt.Errorf("xfs_io %s: %v %s", p, err, out)
			}
			// "FLAGS PATH\n[EXTSIZE] PATH\n"
			f := strings.Fields(string(out))
			line += " xflags=" + f[0] + " extsize=" + f[2]
		}
		m = append(m, line)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(m)
	return m
}

func xattrs(t *testing.T, p string) string {
	buf := make([]byte, 64<<10)
	n, err := syscall.Listxattr(p, buf)
	if err != nil {
		t.Fatalf("listxattr %s: %v", p, err)
	}
	var names []string
	for _, nm := range strings.Split(string(buf[:n]), "\x00") {
		if nm != "" {
			names = append(names, nm)
		}
	}
	sort.Strings(names)
	var b strings.Builder
	for _, nm := range names {
		v := make([]byte, 64<<10)
		vn, err := syscall.Getxattr(p, nm, v)
		if err != nil {
			t.Fatalf("getxattr %s %s: %v", p, nm, err)
		}
		fmt.Fprintf(&b, " %s=%s", nm, hex.EncodeToString(v[:vn]))
	}
	return b.String()
}

func fileMD5(t *testing.T, p string) string {
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := md5.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func withMounted(t *testing.T, file string, fn func(mnt string)) {
	t.Helper()
	dev := attachT(t, file)
	mnt := t.TempDir()
	runT(t, "mount", "-t", "xfs", dev, mnt)
	defer func() {
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v %s", mnt, err, out)
		}
		if out, err := exec.Command("losetup", "-d", dev).CombinedOutput(); err != nil {
			t.Errorf("losetup -d %s: %v %s", dev, err, out)
		}
	}()
	fn(mnt)
}

// attachT attaches file to a loop device, detached at the end of the
// test (a no-op if detached before).
func attachT(t *testing.T, file string) string {
	t.Helper()
	out, err := exec.Command("losetup", "--find", "--show", file).CombinedOutput()
	if err != nil {
		t.Fatalf("losetup %s: %v %s", file, err, out)
	}
	dev := strings.TrimSpace(string(out))
	t.Cleanup(func() {
		if b, _ := exec.Command("losetup", "-j", file).CombinedOutput(); strings.Contains(string(b), dev+":") {
			exec.Command("losetup", "-d", dev).Run()
		}
	})
	return dev
}

func runT(t *testing.T, argv ...string) {
	t.Helper()
	if out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(argv, " "), err, out)
	}
}

// observingRunner calls before with each command before it runs it.
type observingRunner struct {
	Runner
	before func(Cmd)
}

func (r observingRunner) RunCmd(ctx context.Context, c Cmd) ([]byte, error) {
	r.before(c)
	return r.Runner.RunCmd(ctx, c)
}

// TestLoopBuildImageXFS builds an image with an xfs root holding hard
// links, attributes, an ACL, a sparse file and device nodes made in the
// chroot, and checks the shrunk image against the tree as it was just
// before the copy.
func TestLoopBuildImageXFS(t *testing.T) {
	loopPrereqs(t)
	xfsPrereqs(t)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	out, work, elem := t.TempDir(), t.TempDir(), filepath.Join(t.TempDir(), "xfsfixture")
	t.Cleanup(func() {
		if l := leftovers(t, work); len(l) > 0 {
			t.Errorf("left behind: %v", l)
		}
	})
	writeHook(t, elem, "post-install.d", "10-fixture", `d=/root/xfs-fixture; mkdir -p $d/sub
echo hello > $d/file; ln $d/file $d/link1; ln $d/file $d/sub/link2
setfattr -n user.imprint -v kept $d/file; setfattr -n trusted.imprint -v 0x0001ff $d/file
setfacl -m u:nobody:r $d/file; setfacl -d -m g:nogroup:rx $d/sub
truncate -s 256M $d/sparse; echo end >> $d/sparse
mknod $d/null c 1 3; mknod $d/blk b 7 200; mkfifo $d/fifo; ln -s sub/../file $d/symlink
chown -h nobody:nogroup $d/symlink
# data blocks, so the size is computed above mkfs.xfs's minimum
dd if=/dev/zero of=$d/zeros bs=1M count=300 status=none`)
	cfg := loopConfig(t, out)
	cfg.ImageData["/"] = Image{Container: "gzip", Format: "xfs", URI: "file://" + out + "/loop-test.img.gz"}
	cfg.Packages = append(cfg.Packages, "attr", "acl")
	bo := loopOptions(t, work, elem)
	bo.Options.ImageSize = 4 << 30
	log, _ := logtest.Capture(t)
	deps := SystemDeps(log)
	var before manifest
	var uuid string
	deps.Runner = observingRunner{Runner: deps.Runner, before: func(c Cmd) {
		if len(c.Argv) == 6 && c.Argv[0] == "bash" && c.Argv[3] == "xfs-copy" {
			src := c.Argv[4]
			t0 := time.Now()
			before = takeManifestXFlags(t, src, "root/xfs-fixture")
			t.Logf("manifest of the tree before the copy: %d entries in %s", len(before), time.Since(t0).Round(time.Millisecond))
			fstab, _ := os.ReadFile(filepath.Join(src, "etc/fstab"))
			for _, l := range strings.Split(string(fstab), "\n") {
				if f := strings.Fields(l); len(f) > 2 && f[1] == "/" && f[2] == "xfs" {
					uuid = strings.TrimPrefix(f[0], "UUID=")
				}
			}
		}
	}}
	t0 := time.Now()
	if _, err := Build(ctx, cfg, bo, deps); err != nil {
		t.Fatalf("Build: %v", err)
	}
	t.Logf("xfs image built in %s", time.Since(t0).Round(time.Second))
	if len(before) < 1000 || uuid == "" {
		t.Fatalf("the copy was not observed: %d entries, uuid %q", len(before), uuid)
	}
	raw := filepath.Join(t.TempDir(), "root.img")
	if b, err := exec.Command("sh", "-c", "gzip -dc "+filepath.Join(out, "loop-test.img.gz")+" > "+raw).CombinedOutput(); err != nil {
		t.Fatalf("gunzip: %v %s", err, b)
	}
	var fixture []string
	for _, l := range before {
		if strings.HasPrefix(l, "root/xfs-fixture") {
			fixture = append(fixture, l)
		}
	}
	for _, w := range []string{"root/xfs-fixture/file ", "nlink=3", "user.imprint=6b657074", "trusted.imprint=0001ff", "system.posix_acl_access=", "system.posix_acl_default=", " sparse ", "rdev=7c8", "-> sub/../file"} {
		if !strings.Contains(strings.Join(fixture, "\n"), w) {
			t.Errorf("fixture lacks %q (the hook did not make it):\n%s", w, strings.Join(fixture, "\n"))
		}
	}
	checkShrunkXFSTree(t, ctx, raw, bo.Options.ImageSize, before, "root", uuid, "root/xfs-fixture")
}
