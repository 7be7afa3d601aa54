//go:build loop

package movefiles

import (
	"bytes"
	"context"
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/imprint-dev/imprint/internal/sys"
	"github.com/imprint-dev/imprint/internal/testenv"
	"github.com/imprint-dev/imprint/partition"
)

// loopFS makes an ext4 filesystem of size MiB on a loop device.
func loopFS(t *testing.T, name string, mib int) string {
	t.Helper()
	backing := filepath.Join(t.TempDir(), name+".img")
	if err := os.WriteFile(backing, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(backing, int64(mib)<<20); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mkfs.ext4", "-q", "-F", backing).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v: %s", err, out)
	}
	out, err := exec.Command("losetup", "--find", "--show", backing).CombinedOutput()
	if err != nil {
		t.Fatalf("losetup: %v: %s", err, out)
	}
	dev := strings.TrimSpace(string(out))
	t.Cleanup(func() { exec.Command("losetup", "-d", dev).Run() })
	return dev
}

// aclXattr encodes a POSIX access ACL (user::rw-, user:uid:r--,
// group::r--, mask::r--, other::---) as the kernel stores it.
func aclXattr(uid uint32) []byte {
	var b bytes.Buffer
	binary.Write(&b, binary.LittleEndian, uint32(2))
	for _, e := range []struct {
		tag, perm uint16
		id        uint32
	}{{1, 6, 0xffffffff}, {2, 4, uid}, {4, 4, 0xffffffff}, {0x10, 4, 0xffffffff}, {0x20, 0, 0xffffffff}} {
		binary.Write(&b, binary.LittleEndian, e)
	}
	return b.Bytes()
}

// TestLoopApply fills a "root image" filesystem with a var/log tree holding
// every kind of file and metadata, moves it into a second filesystem with
// Apply as the agent does (Plan, then Apply mounting both loop devices),
// runs it again (nothing left to move, nothing changes), and checks the
// destination entry by entry and the source emptied.
func TestLoopApply(t *testing.T) {
	testenv.RequireLoop(t, "mkfs.ext4", "mount")
	root, logs := loopFS(t, "root", 64), loopFS(t, "log", 64)
	m := sys.Mounter{}
	mnt := t.TempDir()
	if err := m.Mount(root, mnt, "ext4", false, ""); err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(mnt, "var", "log")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(src, "apt"), 0o755))
	must(os.Chmod(src, 0o751))
	must(os.Chown(src, 0, 4))
	must(os.WriteFile(filepath.Join(src, "apt", "history.log"), []byte("Start-Date: 2026-12-07\n"), 0o640))
	must(os.Chown(filepath.Join(src, "apt", "history.log"), 0, 4))
	must(os.Mkdir(filepath.Join(src, "journal"), 0o2755))
	must(os.Chown(filepath.Join(src, "journal"), 0, 101))
	must(os.Chmod(filepath.Join(src, "journal"), 0o2755|os.ModeSetgid))
	// setuid file owned by someone else
	must(os.WriteFile(filepath.Join(src, "suid"), []byte("x"), 0o755))
	must(os.Chown(filepath.Join(src, "suid"), 1234, 1234))
	must(os.Chmod(filepath.Join(src, "suid"), 0o4755|os.ModeSetuid))
	// hard links, one of them in a subdirectory
	must(os.WriteFile(filepath.Join(src, "a"), []byte("linked"), 0o644))
	must(os.Link(filepath.Join(src, "a"), filepath.Join(src, "apt", "a-link")))
	// sparse: 8 MiB with 4 KiB of data in the middle
	f, err := os.Create(filepath.Join(src, "lastlog"))
	must(err)
	_, err = f.WriteAt(bytes.Repeat([]byte{7}, 4096), 4<<20)
	must(err)
	must(f.Truncate(8 << 20))
	f.Close()
	// symlink, device node, FIFO
	must(os.Symlink("../run/log", filepath.Join(src, "runlog")))
	must(unix.Mknod(filepath.Join(src, "null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))))
	must(unix.Mkfifo(filepath.Join(src, "fifo"), 0o620))
	must(os.Chmod(filepath.Join(src, "fifo"), 0o620|os.ModeNamedPipe))
	// ACL and a user attribute
	must(unix.Setxattr(filepath.Join(src, "apt", "history.log"), "system.posix_acl_access", aclXattr(1000), 0))
	must(unix.Setxattr(filepath.Join(src, "apt"), "user.imprint", []byte("kept"), 0))
	var st0 unix.Stat_t
	must(unix.Stat(filepath.Join(src, "apt", "history.log"), &st0))
	mtime := st0.Mtim
	// elsewhere in the image: untouched
	must(os.WriteFile(filepath.Join(mnt, "var", "keep"), []byte("root's"), 0o644))
	must(m.Unmount(mnt))

	plan := Plan([]partition.FS{
		{Device: root, Mount: "/", Type: "ext4", Image: true},
		{Device: logs, Mount: "/var/log", Type: "ext4"},
	})
	if len(plan) != 1 || plan[0].Path != "var/log" {
		t.Fatalf("plan %+v", plan)
	}
	for run := 1; run <= 2; run++ {
		if err := Apply(context.Background(), plan, Deps{Mounter: m, TempDir: t.TempDir()}); err != nil {
			t.Fatalf("Apply run %d: %v", run, err)
		}
	}

	must(m.Mount(root, mnt, "ext4", false, ""))
	left, err := os.ReadDir(src)
	must(err)
	if len(left) != 0 {
		t.Errorf("the root image still holds %d entries under var/log", len(left))
	}
	var s unix.Stat_t
	must(unix.Stat(src, &s))
	if s.Mode&0o7777 != 0o751 {
		t.Errorf("the mount point lost its mode: %o", s.Mode&0o7777)
	}
	if b, err := os.ReadFile(filepath.Join(mnt, "var", "keep")); err != nil || string(b) != "root's" {
		t.Errorf("var/keep: %q %v", b, err)
	}
	must(m.Unmount(mnt))

	must(m.Mount(logs, mnt, "ext4", false, ""))
	defer m.Unmount(mnt)
	stat := func(rel string) unix.Stat_t {
		t.Helper()
		var s unix.Stat_t
		must(unix.Lstat(filepath.Join(mnt, rel), &s))
		return s
	}
	if s := stat("."); s.Mode&0o7777 != 0o751 || s.Gid != 4 {
		t.Errorf("filesystem root: mode %o gid %d, want the source directory's 751 gid 4", s.Mode&0o7777, s.Gid)
	}
	if b, _ := os.ReadFile(filepath.Join(mnt, "apt", "history.log")); string(b) != "Start-Date: 2026-12-07\n" {
		t.Errorf("apt/history.log: %q", b)
	}
	if s := stat("apt/history.log"); s.Gid != 4 || s.Mtim != mtime {
		t.Errorf("apt/history.log: gid %d mtime %v, want 4 %v", s.Gid, s.Mtim, mtime)
	}
	if s := stat("journal"); s.Mode&0o7777 != 0o2755 || s.Gid != 101 {
		t.Errorf("journal: mode %o gid %d", s.Mode&0o7777, s.Gid)
	}
	if s := stat("suid"); s.Mode&0o7777 != 0o4755 || s.Uid != 1234 {
		t.Errorf("suid: mode %o uid %d", s.Mode&0o7777, s.Uid)
	}
	if a, b := stat("a"), stat("apt/a-link"); a.Ino != b.Ino || a.Nlink != 2 {
		t.Errorf("hard link not kept: inodes %d %d, nlink %d", a.Ino, b.Ino, a.Nlink)
	}
	if s := stat("lastlog"); s.Size != 8<<20 || s.Blocks*512 > 64<<10 {
		t.Errorf("lastlog: %d bytes in %d blocks, want 8 MiB sparse", s.Size, s.Blocks)
	}
	if l, err := os.Readlink(filepath.Join(mnt, "runlog")); l != "../run/log" {
		t.Errorf("symlink: %q %v", l, err)
	}
	if s := stat("null"); s.Mode&unix.S_IFMT != unix.S_IFCHR || s.Rdev != unix.Mkdev(1, 3) {
		t.Errorf("device node: mode %o rdev %d", s.Mode, s.Rdev)
	}
	if s := stat("fifo"); s.Mode&unix.S_IFMT != unix.S_IFIFO || s.Mode&0o777 != 0o620 {
		t.Errorf("fifo: mode %o", s.Mode)
	}
	buf := make([]byte, 256)
	if n, err := unix.Getxattr(filepath.Join(mnt, "apt", "history.log"), "system.posix_acl_access", buf); err != nil || !bytes.Equal(buf[:n], aclXattr(1000)) {
		t.Errorf("ACL: %x %v", buf[:max(n, 0)], err)
	}
	if n, err := unix.Getxattr(filepath.Join(mnt, "apt"), "user.imprint", buf); err != nil || string(buf[:n]) != "kept" {
		t.Errorf("user.imprint: %q %v", buf[:max(n, 0)], err)
	}
}
