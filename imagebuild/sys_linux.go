package imagebuild

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/imprint-dev/imprint/internal/mountinfo"
)

// ExecRunner runs commands with os/exec, each in its own process group
// (cancelling the context sends SIGTERM to the whole group, SIGKILL 15 s
// later), logging their output lines at Debug and keeping the last 64 KiB.
type ExecRunner struct {
	Log *slog.Logger
}

var _ Runner = ExecRunner{}

// Run runs c; the error carries the argv and the output's tail.
func (r ExecRunner) Run(ctx context.Context, c Cmd) ([]byte, error) {
	if len(c.Argv) == 0 {
		return nil, fmt.Errorf("empty command")
	}
	cmd := exec.CommandContext(ctx, c.Argv[0], c.Argv[1:]...)
	if c.Inherit {
		cmd.Env = append(os.Environ(), c.Env...)
	} else {
		cmd.Env = append([]string{}, c.Env...)
	}
	if c.Stdin != "" {
		cmd.Stdin = strings.NewReader(c.Stdin)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM) }
	cmd.WaitDelay = 15 * time.Second
	tail := &tailBuffer{max: 64 << 10}
	var w io.Writer = tail
	var lw *lineLogger
	if r.Log != nil {
		lw = &lineLogger{log: r.Log.With("cmd", filepath.Base(c.Argv[0]))}
		w = io.MultiWriter(tail, lw)
	}
	cmd.Stdout, cmd.Stderr = w, w
	err := cmd.Run()
	if lw != nil {
		lw.flush()
	}
	out := tail.Bytes()
	if err != nil {
		t := out
		if len(t) > 2048 {
			t = t[len(t)-2048:]
		}
		return out, fmt.Errorf("%s: %w (output: %q)", strings.Join(c.Argv, " "), err, t)
	}
	return out, nil
}

type tailBuffer struct {
	b   []byte
	max int
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if len(t.b) > 2*t.max {
		t.b = append([]byte(nil), t.b[len(t.b)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) Bytes() []byte {
	if len(t.b) > t.max {
		return t.b[len(t.b)-t.max:]
	}
	return t.b
}

type lineLogger struct {
	log *slog.Logger
	buf []byte
}

func (l *lineLogger) Write(p []byte) (int, error) {
	l.buf = append(l.buf, p...)
	for {
		i := bytes.IndexByte(l.buf, '\n')
		if i < 0 {
			break
		}
		l.log.Debug("output", "line", string(bytes.TrimRight(l.buf[:i], "\r")))
		l.buf = l.buf[i+1:]
	}
	return len(p), nil
}

func (l *lineLogger) flush() {
	if len(l.buf) > 0 {
		l.log.Debug("output", "line", string(l.buf))
		l.buf = nil
	}
}

// SysMounter mounts with mount(2). MountInfo is the mountinfo file
// (/proc/self/mountinfo when empty).
type SysMounter struct {
	MountInfo string
}

var _ Mounter = SysMounter{}

// Mount mounts source on target with the filesystem options data; bind
// makes a bind mount.
func (SysMounter) Mount(source, target, fstype string, bind bool, data string) error {
	if bind {
		return syscall.Mount(source, target, "", syscall.MS_BIND, data)
	}
	return syscall.Mount(source, target, fstype, 0, data)
}

// Unmount unmounts target (never lazily).
func (SysMounter) Unmount(target string) error { return syscall.Unmount(target, 0) }

// MountedUnder lists the mount points at or below dir.
func (m SysMounter) MountedUnder(dir string) ([]string, error) {
	mi := m.MountInfo
	if mi == "" {
		mi = "/proc/self/mountinfo"
	}
	data, err := os.ReadFile(mi)
	if err != nil {
		return nil, err
	}
	return mountedUnder(string(data), dir), nil
}

// mountedUnder parses a mountinfo table for mount points at or below dir.
func mountedUnder(table, dir string) []string {
	dir = filepath.Clean(dir)
	var out []string
	sc := bufio.NewScanner(strings.NewReader(table))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 5 {
			continue
		}
		mp := mountinfo.Unescape(f[4])
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			out = append(out, mp)
		}
	}
	return out
}

// SysProcs finds processes through /proc (Proc, /proc when empty).
type SysProcs struct {
	Proc string
}

var _ Procs = SysProcs{}

// InRoot lists the processes whose /proc/PID/root is root or below it.
func (p SysProcs) InRoot(root string) ([]int, error) {
	proc := p.Proc
	if proc == "" {
		proc = "/proc"
	}
	root = filepath.Clean(root)
	entries, err := os.ReadDir(proc)
	if err != nil {
		return nil, err
	}
	self := os.Getpid()
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		r, err := os.Readlink(filepath.Join(proc, e.Name(), "root"))
		if err != nil {
			continue // gone, or a kernel thread
		}
		if r == root || strings.HasPrefix(r, root+"/") {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// Signal sends sig to pid.
func (SysProcs) Signal(pid int, sig syscall.Signal) error { return syscall.Kill(pid, sig) }
