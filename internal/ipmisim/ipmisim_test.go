package ipmisim

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/imprint-dev/imprint/internal/testenv"
)

// TestPowerRunsStartCmd: power on through ipmitool runs the startcmd
// script (as the e2e machine's QEMU is started), power off ends it, and
// Stop leaves no process behind.
func TestPowerRunsStartCmd(t *testing.T) {
	testenv.RequireTool(t, "ipmi_sim", "ipmitool")
	dir := t.TempDir()
	pidfile := filepath.Join(dir, "machine.pid")
	script := filepath.Join(dir, "machine.sh")
	os.WriteFile(script, []byte("#!/bin/sh\necho $$ > "+pidfile+"\nexec sleep 3600\n"), 0o755)
	s, err := Start(Config{Dir: dir, StartCmd: script, PowerOffWait: time.Second, KillWait: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	ctx := context.Background()
	pid := func() int {
		b, _ := os.ReadFile(pidfile)
		n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
		if n > 0 && syscall.Kill(n, 0) == nil {
			return n
		}
		return 0
	}
	wait := func(want string, running bool) {
		t.Helper()
		for i := 0; i < 50; i++ {
			st, err := s.PowerStatus(ctx)
			if err == nil && st == want && (pid() != 0) == running {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		st, err := s.PowerStatus(ctx)
		t.Fatalf("power %q %v, machine pid %d; want %s", st, err, pid(), want)
	}
	wait("off", false)
	if _, err := s.Ipmitool(ctx, "chassis", "power", "on"); err != nil {
		t.Fatal(err)
	}
	wait("on", true)
	if _, err := s.Ipmitool(ctx, "chassis", "power", "off"); err != nil {
		t.Fatal(err)
	}
	wait("off", false)
	if _, err := s.Ipmitool(ctx, "chassis", "power", "on"); err != nil {
		t.Fatal(err)
	}
	wait("on", true)
	p := pid()
	s.Stop()
	for i := 0; i < 50 && syscall.Kill(p, 0) == nil; i++ {
		time.Sleep(100 * time.Millisecond)
	}
	if syscall.Kill(p, 0) == nil {
		syscall.Kill(p, syscall.SIGKILL)
		t.Errorf("the machine (pid %d) outlived its BMC", p)
	}
}
