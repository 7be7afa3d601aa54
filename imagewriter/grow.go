package imagewriter

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
)

// Step is one external command of a grow plan.
type Step struct {
	Name string
	Args []string
	// OKExit lists exit codes that mean success besides 0 (e2fsck exits 1
	// when it corrected errors).
	OKExit []int
}

func (s Step) String() string { return strings.Join(append([]string{s.Name}, s.Args...), " ") }

// GrowPlan returns the commands that grow the filesystem of the given format
// on dev to fill it: ext2/3/4 are checked (e2fsck -fy, which resize2fs
// requires), resized, and checked again (e2fsck -fy); xfs can only grow while
// mounted, so it is mounted on mountDir, grown and unmounted. Other formats
// give no steps.
func GrowPlan(format, dev, mountDir string) []Step {
	switch format {
	case "ext2", "ext3", "ext4":
		return []Step{
			{Name: "e2fsck", Args: []string{"-fy", dev}, OKExit: []int{1}},
			{Name: "resize2fs", Args: []string{dev}},
			{Name: "e2fsck", Args: []string{"-fy", dev}, OKExit: []int{1}},
		}
	case "xfs":
		return []Step{
			{Name: "mount", Args: []string{"-t", "xfs", dev, mountDir}},
			{Name: "xfs_growfs", Args: []string{mountDir}},
			{Name: "umount", Args: []string{mountDir}},
		}
	}
	return nil
}

// Grow runs GrowPlan for format on dev through runner. For xfs it makes (and
// removes) a temporary mount point and always unmounts after a mount.
func Grow(ctx context.Context, runner Runner, format, dev string) error {
	mountDir := ""
	if format == "xfs" {
		d, err := os.MkdirTemp("", "imprint-growfs-")
		if err != nil {
			return fmt.Errorf("grow %s on %q: %w", format, dev, err)
		}
		defer os.Remove(d)
		mountDir = d
	}
	steps := GrowPlan(format, dev, mountDir)
	mounted := false
	defer func() {
		if mounted {
			runner.Run(context.WithoutCancel(ctx), "umount", mountDir)
		}
	}()
	for _, s := range steps {
		out, err := runner.Run(ctx, s.Name, s.Args...)
		if err != nil && !okExit(err, s.OKExit) {
			return fmt.Errorf("grow %s on %q: %s: %w (output: %q)", format, dev, s, err, tail(out, 512))
		}
		switch s.Name {
		case "mount":
			mounted = true
		case "umount":
			mounted = false
		}
	}
	return nil
}

func okExit(err error, ok []int) bool {
	var ec interface{ ExitCode() int }
	if !errors.As(err, &ec) {
		return false
	}
	for _, c := range ok {
		if ec.ExitCode() == c {
			return true
		}
	}
	return false
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return strings.TrimSpace(string(b))
}
