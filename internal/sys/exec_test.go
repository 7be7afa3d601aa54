package sys

import (
	"context"
	"errors"
	"os/exec"
	"strings"
	"testing"
)

func TestExecStdoutAndNoStdin(t *testing.T) {
	x := &Exec{}
	out, err := x.Run(context.Background(), "sh", "-c", "cat; echo out")
	if err != nil || string(out) != "out\n" {
		t.Fatalf("Run = %q, %v", out, err)
	}
}

func TestExecErrorCarriesArgvAndStderr(t *testing.T) {
	_, err := (&Exec{}).Run(context.Background(), "sh", "-c", "echo 'mkfs.xfs: /dev/sdz1 appears to contain a partition table' >&2; exit 1", "arg0")
	var ee *ExecError
	if !errors.As(err, &ee) {
		t.Fatalf("Run = %v, want an *ExecError", err)
	}
	for _, s := range []string{"sh -c", "exit status 1", "appears to contain a partition table"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q lacks %q", err, s)
		}
	}
}

func TestExecNotFound(t *testing.T) {
	_, err := (&Exec{SearchDirs: []string{t.TempDir()}}).Run(context.Background(), "imprint-no-such-tool")
	if !errors.Is(err, exec.ErrNotFound) || !strings.Contains(err.Error(), "imprint-no-such-tool") {
		t.Fatalf("Run = %v, want exec.ErrNotFound naming the tool", err)
	}
}
