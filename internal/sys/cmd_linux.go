package sys

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// RunCmd runs c in its own process group (cancelling the context sends
// SIGTERM to the whole group, SIGKILL 15 s later), logging its output lines
// at Debug and returning its combined output's last 64 KiB; the error
// carries the argv and the output's tail and unwraps to *exec.ExitError.
// It is the image builder's way of running commands (Run is the steps').
func (x *Exec) RunCmd(ctx context.Context, c Cmd) ([]byte, error) {
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
	if x.Logger != nil {
		lw = &lineLogger{log: x.Logger.With("cmd", filepath.Base(c.Argv[0]))}
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
