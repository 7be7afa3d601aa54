package sys

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/imprint-dev/imprint/partition"
)

// A device-mapper disk (a multipath map) has no kernel partitions:
// BLKRRPART does not apply to it. Its partitions are dm maps kpartx makes
// (/dev/mapper/<name>-part<N>), with libdevmapper creating the nodes itself
// (DM_DISABLE_UDEV: the ramdisk has no udev).

// isDM reports whether the kernel name is a device-mapper device.
func isDM(kname string) bool { return strings.HasPrefix(kname, "dm-") }

// kpartx runs kpartx with args, without udev.
func kpartx(ctx context.Context, args ...string) error {
	cmd := exec.CommandContext(ctx, "kpartx", args...)
	cmd.Env = append(os.Environ(), "DM_DISABLE_UDEV=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("kpartx %s: %w (output: %q)", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// rereadDM (re)creates the partition maps of the dm disk dev from its
// partition table: `kpartx -u -p -part` (fuel-agent's and udev's naming).
func (d *Devices) rereadDM(ctx context.Context, dev string) error {
	return kpartx(ctx, "-u", "-p", "-part", dev)
}

// dmPartitionNode waits for kpartx's map of partition p of the dm disk dk
// and checks its size is the planned one.
func (d *Devices) dmPartitionNode(ctx context.Context, dk partition.Disk, p partition.Partition, timeout, poll time.Duration) (string, error) {
	node := partition.PartitionOf(dk.Device, p.Number)
	wantSize := (p.EndMiB - p.BeginMiB) * (1 << 20) / 512
	deadline := time.Now().Add(timeout)
	last := "no node"
	for {
		if kname, err := d.KernelName(node); err == nil {
			got, err := readTrim(filepath.Join(d.sysRoot(), "block", kname, "size"))
			n, perr := strconv.ParseInt(got, 10, 64)
			switch {
			case err != nil || perr != nil:
				last = fmt.Sprintf("%s: no size in sysfs", kname)
			case n != wantSize:
				last = fmt.Sprintf("%s (%s) is %d sectors, planned %d", node, kname, n, wantSize)
			default:
				return node, nil
			}
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("partition %d of %s: no partition map %s after %s: %s", p.Number, dk.Device, node, timeout, last)
		}
		if err := sleepCtx(ctx, poll); err != nil {
			return "", err
		}
	}
}
