package sys

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
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

// dmPartitionsOf lists the kpartx partition maps of the dm disk name: its
// holders whose dm uuid is "part<N>-<the disk's uuid>", with the start
// `dmsetup table` gives their linear target.
func (d *Devices) dmPartitionsOf(name string) ([]partition.ExistingPartition, error) {
	uuid, err := readTrim(d.classBlock(name, "dm", "uuid"))
	if err != nil || uuid == "" {
		return nil, nil
	}
	ents, err := os.ReadDir(d.classBlock(name, "holders"))
	if err != nil {
		return nil, nil
	}
	var out []partition.ExistingPartition
	for _, e := range ents {
		hu, _ := readTrim(d.classBlock(e.Name(), "dm", "uuid"))
		num, ok := strings.CutSuffix(hu, "-"+uuid)
		if !ok || !strings.HasPrefix(num, "part") {
			continue
		}
		n, err := strconv.Atoi(strings.TrimPrefix(num, "part"))
		if err != nil {
			continue
		}
		dmName, _ := readTrim(d.classBlock(e.Name(), "dm", "name"))
		table, err := exec.Command("dmsetup", "table", dmName).Output()
		if err != nil {
			return nil, fmt.Errorf("dmsetup table %s: %w", dmName, err)
		}
		// "0 409600 linear 253:0 2048"
		f := strings.Fields(string(table))
		if len(f) < 5 || f[2] != "linear" {
			return nil, fmt.Errorf("partition map %s: table %q is not one linear target", dmName, strings.TrimSpace(string(table)))
		}
		size, err1 := strconv.ParseInt(f[1], 10, 64)
		start, err2 := strconv.ParseInt(f[4], 10, 64)
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("partition map %s: table %q", dmName, strings.TrimSpace(string(table)))
		}
		out = append(out, partition.ExistingPartition{Name: e.Name(), Number: n, StartBytes: start * 512, SizeBytes: size * 512})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Number < out[j].Number })
	return out, nil
}
