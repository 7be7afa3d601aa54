package bootstrap

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestRunSteps(t *testing.T) {
	var ran []string
	step := func(name string, err error) Step {
		return StepFunc(name, func(context.Context) error { ran = append(ran, name); return err })
	}
	boom := errors.New("boom")
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	err := RunSteps(context.Background(), log, []Step{
		step("a", nil), Optional(step("b", errors.New("soft"))), step("c", boom), step("d", nil),
	})
	var se *StepError
	if !errors.As(err, &se) || se.Step != "c" || !errors.Is(err, boom) {
		t.Errorf("RunSteps error = %v, want StepError for c wrapping boom", err)
	}
	if diff := cmp.Diff([]string{"a", "b", "c"}, ran); diff != "" {
		t.Errorf("ran (-want +got):\n%s", diff)
	}
	for _, s := range []string{`msg="step done" step=a duration=`, `msg="step failed, continuing" step=b`, `msg="step failed" step=c`} {
		if !strings.Contains(logs.String(), s) {
			t.Errorf("log lacks %q:\n%s", s, logs.String())
		}
	}
}

func TestRootFSType(t *testing.T) {
	dir := t.TempDir()
	tests := map[string]string{
		"initramfs": "1 1 0:2 / / rw - rootfs rootfs rw,size=498k\n22 1 0:20 / /proc rw,nosuid - proc proc rw\n",
		"disk":      "27 1 254:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw\n29 27 0:5 / /dev rw shared:2 - devtmpfs udev rw\n",
		"stacked":   "1 1 0:2 / / rw - rootfs rootfs rw\n30 1 0:40 / / rw - overlay overlay rw\n",
	}
	want := map[string]string{"initramfs": "rootfs", "disk": "ext4", "stacked": "overlay"}
	for name, content := range tests {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(content), 0o644)
		got, err := rootFSType(p)
		if err != nil || got != want[name] {
			t.Errorf("rootFSType(%s) = %q, %v; want %q", name, got, err, want[name])
		}
	}
}

// CheckRamdisk on the test machine (not PID 1's child, not an initramfs,
// not confirmed) refuses, naming every reason.
func TestCheckRamdiskRefuses(t *testing.T) {
	err := CheckRamdisk(false, "/proc")
	if !errors.Is(err, ErrNotRamdisk) {
		t.Fatalf("CheckRamdisk = %v, want ErrNotRamdisk", err)
	}
	for _, s := range []string{"--i-am-the-ramdisk", "not init (PID 1)"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error lacks %q: %v", s, err)
		}
	}
}
