package bootstrap

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestInitScriptsStep runs real scripts: in name order, README and
// backups skipped, output to the console writer; the first failure stops
// the step, naming the script.
func TestInitScriptsStep(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "order")
	for name, body := range map[string]string{
		"20-second":    "echo second >>" + log + "; echo second-ran",
		"25-noshebang": "",
		"10-first":     "echo first >>" + log + "; echo first-ran",
		"README.md":    "echo never >>" + log,
		"30-x.bak":     "echo never >>" + log,
	} {
		data := "#!/bin/sh\n" + body + "\n"
		if name == "25-noshebang" {
			data = "echo third >>" + log + "\n" // a diskimage-builder fragment: shell without #!
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	var out, logs bytes.Buffer
	s := &InitScriptsStep{Dir: dir, Out: &out, Log: slog.New(slog.NewTextHandler(&logs, nil))}
	if err := s.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(log); string(b) != "first\nsecond\nthird\n" {
		t.Errorf("ran %q, want first, second, third only", b)
	}
	if out.String() != "first-ran\nsecond-ran\n" {
		t.Errorf("console output %q", out.String())
	}
	if !strings.Contains(logs.String(), "init.d script done") || !strings.Contains(logs.String(), "script=20-second") {
		t.Errorf("log lacks the scripts: %s", logs.String())
	}

	os.WriteFile(filepath.Join(dir, "15-fail"), []byte("#!/bin/sh\nexit 4\n"), 0o755)
	os.Remove(log)
	err := s.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "15-fail: exit status 4") {
		t.Errorf("err = %v, want the failing script named", err)
	}
	if b, _ := os.ReadFile(log); string(b) != "first\n" {
		t.Errorf("ran %q after a failure, want only first", b)
	}

	// no directory: nothing to run
	if err := (&InitScriptsStep{Dir: filepath.Join(dir, "none"), Log: slog.New(slog.DiscardHandler)}).Run(context.Background()); err != nil {
		t.Errorf("missing dir: %v", err)
	}
}
