package bootstrap

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"time"
)

// initNameRe is dib-run-parts' name rule: README.md and backups never run.
var initNameRe = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// InitScriptsStep runs the init.d scripts of the elements `imprint
// build-ramdisk` added (Dir, default /etc/imprint/init.d), once each, in
// name order, with the console as their output; the first that fails
// fails the step (the ramdisk is not what its builder asked for).
type InitScriptsStep struct {
	Dir string
	// Shell runs scripts without a #! line (default /bin/sh: u-root's gosh
	// in the ramdisk).
	Shell string
	Out   io.Writer // the console
	Log   *slog.Logger
}

// Name implements Step.
func (*InitScriptsStep) Name() string { return "init.d" }

// Scripts lists the scripts Run runs, in order.
func (s *InitScriptsStep) Scripts() ([]string, error) {
	ents, err := os.ReadDir(s.Dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s.Dir, err)
	}
	var out []string
	for _, e := range ents {
		if e.Type().IsRegular() && initNameRe.MatchString(e.Name()) {
			out = append(out, filepath.Join(s.Dir, e.Name()))
		}
	}
	sort.Strings(out)
	return out, nil
}

// Run implements Step.
func (s *InitScriptsStep) Run(ctx context.Context) error {
	scripts, err := s.Scripts()
	if err != nil {
		return err
	}
	for _, p := range scripts {
		name := filepath.Base(p)
		s.Log.Info("init.d script start", "script", name)
		t0 := time.Now()
		cmd := exec.CommandContext(ctx, p)
		if !hasShebang(p) {
			// diskimage-builder's ramdisk init.d fragments are shell without
			// a #! line (its init sources them): run them with the shell
			cmd = exec.CommandContext(ctx, s.shell(), p)
		}
		cmd.Stdout, cmd.Stderr = s.Out, s.Out
		cmd.Dir = "/"
		if err := cmd.Run(); err != nil {
			s.Log.Error("init.d script failed", "script", name, "err", err)
			return fmt.Errorf("init.d script %s: %w", p, err)
		}
		s.Log.Info("init.d script done", "script", name, "duration", time.Since(t0).Round(time.Millisecond))
	}
	return nil
}

func (s *InitScriptsStep) shell() string {
	if s.Shell != "" {
		return s.Shell
	}
	return "/bin/sh"
}

func hasShebang(p string) bool {
	f, err := os.Open(p)
	if err != nil {
		return true // let exec report it
	}
	defer f.Close()
	b := make([]byte, 2)
	n, _ := io.ReadFull(f, b)
	return n == 2 && string(b) == "#!"
}
