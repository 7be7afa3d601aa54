package bootstrap

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// MultipathStep makes the dm-multipath maps of disks seen over several
// paths, once the block devices have settled: `multipath` with the
// ramdisk's /etc/multipath.conf (WWIDs from sysfs, find_multipaths yes:
// only WWIDs with two paths or more) and libdevmapper creating the nodes
// itself (no udev). The inventory then lists the map (mapper/<name>) and
// not its paths. Without the multipath binary it does nothing.
type MultipathStep struct {
	Binary  string // default /sbin/multipath
	SysRoot string // default /sys
	// Settle bounds the wait for /sys/block to stop changing (SCSI scans
	// are asynchronous); 0 means 10s.
	Settle time.Duration
	Log    *slog.Logger
}

// Name implements Step.
func (s *MultipathStep) Name() string { return "multipath" }

// Run implements Step.
func (s *MultipathStep) Run(ctx context.Context) error {
	bin := or(s.Binary, "/sbin/multipath")
	if !fileExists(bin) {
		s.Log.Info("no multipath tools in this ramdisk")
		return nil
	}
	settle := s.Settle
	if settle == 0 {
		settle = 10 * time.Second
	}
	blocks := func() []string {
		ents, _ := os.ReadDir(filepath.Join(or(s.SysRoot, "/sys"), "block"))
		var out []string
		for _, e := range ents {
			out = append(out, e.Name())
		}
		return out
	}
	// Wait until the block devices stay the same for a second.
	deadline := time.Now().Add(settle)
	prev, since := blocks(), time.Now()
	for time.Since(since) < time.Second && time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
		if cur := blocks(); !slices.Equal(cur, prev) {
			prev, since = cur, time.Now()
		}
	}
	// user_friendly_names keeps its bindings (mpatha ...) there.
	if err := os.MkdirAll("/etc/multipath", 0o755); err != nil {
		return err
	}
	run := func(args ...string) (string, error) {
		cmd := exec.CommandContext(ctx, bin, args...)
		cmd.Env = append(os.Environ(), "DM_DISABLE_UDEV=1")
		out, err := cmd.CombinedOutput()
		if err != nil {
			return "", fmt.Errorf("%s %s: %w (output: %q)", bin, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
		}
		return strings.TrimSpace(string(out)), nil
	}
	if _, err := run("-v2"); err != nil {
		return err
	}
	out, err := run("-ll")
	if err != nil {
		return err
	}
	if out == "" {
		s.Log.Info("no multipath disks", "block_devices", len(prev))
		return nil
	}
	s.Log.Info("multipath maps", "maps", out)
	return nil
}
