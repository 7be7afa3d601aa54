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
	if out, err := run("-v2"); err != nil {
		s.Log.Warn("multipath failed; grouping the paths by their sysfs WWID instead", "err", err)
	} else if out != "" {
		s.Log.Info("multipath", "output", out)
	}
	// Whatever multipath did not make (without udev's database it may
	// leave paths alone): the same grouping from sysfs, with dmsetup.
	maps, err := GroupMultipath(s.paths(), s.mapperNames())
	if err != nil {
		return err
	}
	for _, m := range maps {
		cmd := exec.CommandContext(ctx, "dmsetup", "create", m.Name, "--uuid", m.UUID, "--table", m.Table)
		cmd.Env = append(os.Environ(), "DM_DISABLE_UDEV=1")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("dmsetup create %s over %v: %w (output: %q)", m.Name, m.Paths, err, strings.TrimSpace(string(out)))
		}
		s.Log.Info("multipath map created", "name", "/dev/mapper/"+m.Name, "uuid", m.UUID, "paths", m.Paths, "table", m.Table)
	}
	if out, err := run("-ll"); err == nil && out != "" {
		s.Log.Info("multipath maps", "maps", out)
	} else if len(maps) == 0 {
		s.Log.Info("no multipath disks", "block_devices", len(prev))
	}
	return nil
}

// paths describes every SCSI, NVMe and virtio disk from sysfs.
func (s *MultipathStep) paths() []MPPath {
	sys := filepath.Join(or(s.SysRoot, "/sys"), "block")
	ents, _ := os.ReadDir(sys)
	var out []MPPath
	for _, e := range ents {
		n := e.Name()
		if !strings.HasPrefix(n, "sd") && !strings.HasPrefix(n, "nvme") && !strings.HasPrefix(n, "vd") {
			continue
		}
		read := func(p string) string {
			b, _ := os.ReadFile(filepath.Join(sys, n, p))
			return strings.TrimSpace(string(b))
		}
		wwid := read("device/wwid")
		if wwid == "" {
			wwid = read("wwid")
		}
		var sectors int64
		fmt.Sscan(read("size"), &sectors)
		holders, _ := os.ReadDir(filepath.Join(sys, n, "holders"))
		out = append(out, MPPath{Name: n, Dev: read("dev"), WWID: wwid, Sectors: sectors, Held: len(holders) > 0})
	}
	return out
}

// mapperNames is the dm maps that exist (their names are taken).
func (s *MultipathStep) mapperNames() map[string]bool {
	out := map[string]bool{}
	ents, _ := os.ReadDir("/dev/mapper")
	for _, e := range ents {
		out[e.Name()] = true
	}
	return out
}
