package bootloader

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Exec runs commands with os/exec, with fuel-agent's environment
// (PATH=/bin:/usr/bin:/sbin:/usr/sbin, LC_ALL=C) so chrooted tools behave
// the same whatever the caller's environment.
type Exec struct{}

var _ Runner = Exec{}

// Run runs name; a failure's error carries the argv and the standard error.
func (Exec) Run(ctx context.Context, name string, args ...string) ([]byte, error) {
	path := name
	if !strings.Contains(name, "/") {
		// The agent's own PATH may lack the sbin directories.
		if p, err := exec.LookPath(name); err == nil {
			path = p
		} else {
			for _, d := range chrootPath {
				if fi, err := os.Stat(filepath.Join(d, name)); err == nil && fi.Mode().IsRegular() {
					path = filepath.Join(d, name)
					break
				}
			}
		}
	}
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Env = []string{"PATH=/bin:/usr/bin:/sbin:/usr/sbin", "LC_ALL=C", "LANG=C", "LANGUAGE=C", "HOME=/root"}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Run(); err != nil {
		return stdout.Bytes(), fmt.Errorf("%s: %w (stderr: %q)", strings.Join(append([]string{name}, args...), " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.Bytes(), nil
}

// chrootPath is where commands are looked up inside a target.
var chrootPath = []string{"/usr/sbin", "/usr/bin", "/sbin", "/bin"}

// RunChroot runs name inside root through chroot(2) in the child (no chroot
// binary needed: the ramdisk has none).
func (Exec) RunChroot(ctx context.Context, root, name string, args ...string) ([]byte, error) {
	argv := append([]string{"chroot", root, name}, args...)
	inside := ""
	for _, d := range chrootPath {
		p := filepath.Join(d, name)
		if fi, err := os.Stat(filepath.Join(root, p)); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			inside = p
			break
		}
	}
	if inside == "" {
		return nil, fmt.Errorf("%s: %s not found under %s in the target", strings.Join(argv, " "), name, strings.Join(chrootPath, ", "))
	}
	cmd := exec.CommandContext(ctx, inside, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: root}
	cmd.Dir = "/"
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C", "LANG=C", "LANGUAGE=C", "HOME=/root"}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Run(); err != nil {
		return stdout.Bytes(), fmt.Errorf("%s: %w (stderr: %q)", strings.Join(argv, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.Bytes(), nil
}

// syncFS flushes every filesystem (sync(2)).
func syncFS() { syscall.Sync() }

// SysMounter mounts with mount(2).
type SysMounter struct{}

var _ Mounter = SysMounter{}

// Mount implements Mounter.
func (SysMounter) Mount(source, target, fstype string) error {
	if err := syscall.Mount(source, target, fstype, 0, ""); err != nil {
		return &os.PathError{Op: "mount " + source, Path: target, Err: err}
	}
	return nil
}

// Bind implements Mounter: a plain (non-recursive) bind, so one plain
// umount undoes it.
func (SysMounter) Bind(source, target string) error {
	if err := syscall.Mount(source, target, "", syscall.MS_BIND, ""); err != nil {
		return &os.PathError{Op: "bind " + source, Path: target, Err: err}
	}
	return nil
}

// Unmount implements Mounter: a plain umount(2), retried for a few seconds
// while busy (a process started in the chroot may still be exiting).
func (SysMounter) Unmount(target string) error {
	var err error
	for i := 0; i < 10; i++ {
		if err = syscall.Unmount(target, 0); err != syscall.EBUSY {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if err != nil {
		return &os.PathError{Op: "umount", Path: target, Err: err}
	}
	return nil
}
