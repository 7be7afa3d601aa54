package sys

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/imprint-dev/imprint/partition"
)

var _ partition.Runner = (*Exec)(nil)

// Exec is the one adapter that runs programs, for every package that
// declares a Runner: no standard input (so nothing can prompt), the
// standard output returned, the standard error kept in the *ExecError
// (which unwraps to *exec.ExitError, so ExitCode works through errors.As).
// RunChroot runs a program inside a target tree the same way.
type Exec struct {
	// Logger gets a debug line per command with its duration; nil: none.
	Logger *slog.Logger
	// Env is added to the process environment.
	Env []string
	// SearchDirs are tried when name is not found in $PATH; nil means
	// /usr/sbin, /sbin, /usr/bin, /bin (a ramdisk's PATH often lacks sbin).
	SearchDirs []string
}

// Cmd is a long-running build command (debootstrap, apt, hooks): its argv,
// its environment, whether it inherits the caller's, and its standard input.
type Cmd struct {
	Argv []string
	// Env is the environment; with Inherit it is added to the process's own.
	Env     []string
	Inherit bool
	Stdin   string
}

// ExecError is a failed command: its argv, its standard error and why.
type ExecError struct {
	Argv   []string
	Stderr string
	Err    error
}

func (e *ExecError) Error() string {
	s := fmt.Sprintf("%s: %v", strings.Join(e.Argv, " "), e.Err)
	if e.Stderr != "" {
		s += fmt.Sprintf(" (stderr: %q)", e.Stderr)
	}
	return s
}

func (e *ExecError) Unwrap() error { return e.Err }

// stderrLimit bounds the standard error kept in an ExecError.
const stderrLimit = 4096

// Run runs name with args and returns its standard output.
func (x *Exec) Run(ctx context.Context, name string, args ...string) ([]byte, error) {
	argv := append([]string{name}, args...)
	path, err := x.look(name)
	if err != nil {
		return nil, &ExecError{Argv: argv, Err: err}
	}
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Env = append(os.Environ(), "LC_ALL=C", "LVM_SUPPRESS_FD_WARNINGS=1")
	cmd.Env = append(cmd.Env, x.Env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = 5 * time.Second
	t0 := time.Now()
	err = cmd.Run()
	if x.Logger != nil {
		x.Logger.Debug("exec", "argv", argv, "duration", time.Since(t0), "error", err)
	}
	if err != nil {
		return stdout.Bytes(), &ExecError{Argv: argv, Stderr: limitStderr(stderr.String()), Err: err}
	}
	return stdout.Bytes(), nil
}

// limitStderr is a command's standard error as an ExecError keeps it.
func limitStderr(s string) string {
	s = strings.TrimSpace(s)
	if len(s) > stderrLimit {
		s = s[:stderrLimit] + "..."
	}
	return s
}

func (x *Exec) look(name string) (string, error) {
	p, err := exec.LookPath(name)
	if err == nil || strings.Contains(name, "/") {
		return p, err
	}
	dirs := x.SearchDirs
	if dirs == nil {
		dirs = []string{"/usr/sbin", "/sbin", "/usr/bin", "/bin"}
	}
	for _, d := range dirs {
		c := filepath.Join(d, name)
		if fi, serr := os.Stat(c); serr == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return c, nil
		}
	}
	if errors.Is(err, exec.ErrNotFound) {
		return "", err
	}
	return "", fmt.Errorf("%w: %v", exec.ErrNotFound, err)
}
