package sys

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

// chrootPath is where commands are looked up inside a target tree.
var chrootPath = []string{"/usr/sbin", "/usr/bin", "/sbin", "/bin"}

// RunChroot runs name inside root through chroot(2) in the child (no chroot
// binary needed: the ramdisk has none), with a fixed environment
// (PATH=/usr/sbin:/usr/bin:/sbin:/bin, LC_ALL=C, HOME=/root) so the
// target's tools behave the same whatever the agent's environment. Like
// Run, it returns the standard output; a failure is an *ExecError with the
// argv ("chroot ROOT NAME ARGS...") and the standard error.
func (x *Exec) RunChroot(ctx context.Context, root, name string, args ...string) ([]byte, error) {
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
		return nil, &ExecError{Argv: argv, Err: fmt.Errorf("%w: %s not found under %s in the target", exec.ErrNotFound, name, strings.Join(chrootPath, ", "))}
	}
	cmd := exec.CommandContext(ctx, inside, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: root}
	cmd.Dir = "/"
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C", "LANG=C", "LANGUAGE=C", "HOME=/root"}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = 10 * time.Second
	t0 := time.Now()
	err := cmd.Run()
	if x.Logger != nil {
		x.Logger.Debug("exec", "argv", argv, "duration", time.Since(t0), "error", err)
	}
	if err != nil {
		return stdout.Bytes(), &ExecError{Argv: argv, Stderr: limitStderr(stderr.String()), Err: err}
	}
	return stdout.Bytes(), nil
}
