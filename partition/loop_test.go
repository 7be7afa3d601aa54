//go:build loop

package partition_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/imprint-dev/imprint/internal/sys"
	"github.com/imprint-dev/imprint/internal/testenv"
	"github.com/imprint-dev/imprint/internal/vmtest"
	"github.com/imprint-dev/imprint/partition"
)

const loopMiB = 1 << 20

func loopLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(loopTestWriter{t}, nil))
}

type loopTestWriter struct{ t *testing.T }

func (w loopTestWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func loopRequire(t *testing.T) {
	t.Helper()
	testenv.RequireRoot(t, "loop devices")
	testenv.RequireTool(t, "losetup", "sgdisk", "blkid", "wipefs", "dumpe2fs", "mke2fs", "mkfs.xfs", "mkswap", "mkfs.vfat", "lvm")
}

func loopRun(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// loopAttach attaches a loop device over file (optionally a window of it),
// detached at cleanup.
func loopAttach(t *testing.T, file string, off, size int64) string {
	t.Helper()
	args := []string{"--find", "--show"}
	if size > 0 {
		args = append(args, "--offset", strconv.FormatInt(off, 10), "--sizelimit", strconv.FormatInt(size, 10))
	}
	dev := strings.TrimSpace(loopRun(t, "losetup", append(args, file)...))
	t.Cleanup(func() { _ = exec.Command("losetup", "-d", dev).Run() })
	return dev
}

func loopDisk(t *testing.T, sizeMiB int64) (img, dev string) {
	t.Helper()
	img = filepath.Join(t.TempDir(), "disk.img")
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(sizeMiB * loopMiB); err != nil {
		t.Fatal(err)
	}
	f.Close()
	return img, loopAttach(t, img, 0, 0)
}

// offsetLoops is the loop tier's partition node resolver: the host kernel
// parses no partition tables, so each planned partition becomes a
// `losetup --offset --sizelimit` device over the disk's image.
type offsetLoops struct {
	t     *testing.T
	mu    sync.Mutex
	files map[string]string // disk device → image
	nodes map[string]string // "disk begin end" → loop device
}

func (o *offsetLoops) RereadPartitions(context.Context, string) error { return nil }

func (o *offsetLoops) PartitionNode(_ context.Context, d partition.Disk, p partition.Partition) (string, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	key := fmt.Sprintf("%s %d %d", d.Device, p.BeginMiB, p.EndMiB)
	if n, ok := o.nodes[key]; ok {
		return n, nil
	}
	img, ok := o.files[d.Device]
	if !ok {
		return "", fmt.Errorf("no image for %s", d.Device)
	}
	n := loopAttach(o.t, img, p.BeginMiB*loopMiB, p.SizeMiB()*loopMiB)
	o.nodes[key] = n
	return n, nil
}

// blkidAt is what `blkid -p` finds in the window of img, "" for nothing.
func blkidAt(t *testing.T, img string, off, size int64) string {
	t.Helper()
	cmd := exec.Command("blkid", "-p", "-O", strconv.FormatInt(off, 10), "-S", strconv.FormatInt(size, 10), "-o", "export", img)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.ExitCode() == 2 {
		return ""
	}
	if err != nil {
		return fmt.Sprintf("blkid error %v: %s", err, bytes.TrimSpace(out))
	}
	var typ, label string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if strings.HasPrefix(l, "TYPE=") {
			typ = l
		}
		if strings.HasPrefix(l, "LABEL=") {
			label = " " + l
		}
	}
	return typ + label
}

// writeMD12 writes an md 1.2 superblock (4 KiB into the device at off,
// with a valid checksum) as mdadm --create would: the host has no md
// driver to make a real one.
func writeMD12(t *testing.T, img string, off, sizeBytes int64) {
	t.Helper()
	const maxDev = 2
	sb := make([]byte, 256+2*maxDev)
	le := binary.LittleEndian
	le.PutUint32(sb[0:], 0xa92b4efc) // magic
	le.PutUint32(sb[4:], 1)          // major_version
	copy(sb[16:32], []byte("imprint-old-md-1"))
	copy(sb[32:64], "old:0")
	le.PutUint32(sb[72:], 1)                             // level raid1
	le.PutUint64(sb[80:], uint64(sizeBytes/512-2048-8))  // size
	le.PutUint32(sb[92:], 2)                             // raid_disks
	le.PutUint64(sb[128:], 2048)                         // data_offset
	le.PutUint64(sb[136:], uint64(sizeBytes/512-2048-8)) // data_size
	le.PutUint64(sb[144:], 8)                            // super_offset (sectors)
	le.PutUint32(sb[220:], maxDev)                       // max_dev
	le.PutUint16(sb[256:], 0)
	le.PutUint16(sb[258:], 1)
	var sum uint64
	for i := 0; i+4 <= len(sb); i += 4 {
		sum += uint64(le.Uint32(sb[i:]))
	}
	le.PutUint32(sb[216:], uint32((sum&0xffffffff)+(sum>>32)))
	f, err := os.OpenFile(img, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(sb, off+4096); err != nil {
		t.Fatal(err)
	}
}

// loopPlan is one disk with a Fuel-like layout: bios_grub, xfs, an ext4
// an image fills, swap, vfat configdrive, ext4.
func loopPlan(dev string) *partition.Plan {
	p := func(n int, b, e int64, purpose string, flags ...string) partition.Partition {
		return partition.Partition{Number: n, Device: fmt.Sprintf("%sp%d", dev, n), Disk: dev, BeginMiB: b, EndMiB: e, Purpose: purpose, Flags: flags}
	}
	parts := []partition.Partition{
		p(1, 1, 25, partition.PurposeBiosGrub, "bios_grub"),
		p(2, 26, 426, partition.PurposeFS),
		p(3, 427, 527, partition.PurposeFS),
		p(4, 528, 628, partition.PurposeFS),
		p(5, 629, 649, partition.PurposeConfigdrive),
		p(6, 650, 1150, partition.PurposeFS),
	}
	parts[4].Configdrive = true
	return &partition.Plan{
		Disks: []partition.Disk{{Device: dev, Name: filepath.Base(dev), SizeMiB: 1200, Label: "gpt", Partitions: parts, Bootloader: true}},
		FSs: []partition.FS{
			{Device: parts[1].Device, Mount: "/srv", Type: "xfs", Label: "data"},
			{Device: parts[2].Device, Mount: "/", Type: "ext4", Image: true},
			{Device: parts[3].Device, Mount: "swap", Type: "swap", Label: "swap"},
			{Device: parts[4].Device, Type: "vfat", Label: "config-2"},
			{Device: parts[5].Device, Mount: "/var", Type: "ext4", Label: "var"},
		},
		Configdrive: parts[4].Device,
		Bootloader:  []string{dev},
	}
}

// TestLoopApplyCleansOldSignatures lays a plan onto a loop disk dirtied
// beforehand with an old GPT and old xfs, ext4, swap, LVM and md
// signatures at the very offsets of the new partitions, twice, next to a
// loop disk the plan does not name.
func TestLoopApplyCleansOldSignatures(t *testing.T) {
	loopRequire(t)
	ctx := context.Background()
	img, dev := loopDisk(t, 1200)
	otherImg, otherDev := loopDisk(t, 64)
	loopRun(t, "mkfs.ext4", "-F", "-q", "-L", "bystander", otherDev)
	loopRun(t, "sgdisk", "-n", "1:2048:+10M", otherDev)
	otherSum := vmtest.FileSHA256(t, otherImg)

	plan := loopPlan(dev)
	parts := plan.Disks[0].Partitions

	// Dirt: an old GPT elsewhere, then old signatures at the new offsets.
	loopRun(t, "sgdisk", "-n", "1:4096:+300M", "-n", "2:0:+300M", "-t", "2:fd00", dev)
	dirt := func(i int, size int64, mk func(d string)) {
		d := loopAttach(t, img, parts[i].BeginMiB*loopMiB, size)
		mk(d)
		loopRun(t, "losetup", "-d", d)
	}
	dirt(1, 400*loopMiB, func(d string) { loopRun(t, "mkfs.ext4", "-F", "-q", "-L", "oldext4", d) })
	dirt(2, 400*loopMiB, func(d string) { loopRun(t, "mkfs.xfs", "-f", "-q", "-L", "oldxfs", d) })
	dirt(3, 100*loopMiB, func(d string) {
		loopRun(t, "lvm", "pvcreate", "--config", partition.DefaultLVMConfig, "-ff", "-y", d)
	})
	dirt(5, 500*loopMiB, func(d string) { loopRun(t, "mkswap", "-f", "-L", "oldswap", d) })
	writeMD12(t, img, parts[4].BeginMiB*loopMiB, parts[4].SizeMiB()*loopMiB)
	before := map[int]string{1: "TYPE=ext4 LABEL=oldext4", 2: "TYPE=xfs LABEL=oldxfs", 3: "TYPE=LVM2_member", 4: "TYPE=linux_raid_member LABEL=old:0", 5: "TYPE=swap LABEL=oldswap"}
	for i, want := range before {
		if got := blkidAt(t, img, parts[i].BeginMiB*loopMiB, parts[i].SizeMiB()*loopMiB); got != want {
			t.Fatalf("dirt at partition %d: blkid sees %q, want %q", i+1, got, want)
		}
	}

	nodes := &offsetLoops{t: t, files: map[string]string{dev: img}, nodes: map[string]string{}}
	deps := partition.ApplyDeps{
		Logger:  loopLogger(t),
		Runner:  &sys.Exec{},
		Devices: &sys.Devices{Nodes: nodes},
	}
	for round := 1; round <= 2; round++ {
		if err := partition.Apply(ctx, plan, deps); err != nil {
			t.Fatalf("Apply (round %d): %v", round, err)
		}
		loopCheckLayout(t, img, plan, nodes)
		if got := vmtest.FileSHA256(t, otherImg); got != otherSum {
			t.Fatalf("round %d: the disk the plan does not name changed (sha256 %s, was %s)", round, got, otherSum)
		}
	}
}

func loopCheckLayout(t *testing.T, img string, plan *partition.Plan, nodes *offsetLoops) {
	t.Helper()
	parts := plan.Disks[0].Partitions
	// The GPT, exact to the sector.
	out := loopRun(t, "sgdisk", "-p", img)
	var got [][4]string
	table := false
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) > 0 && f[0] == "Number" {
			table = true
			continue
		}
		if table && len(f) >= 6 {
			got = append(got, [4]string{f[0], f[1], f[2], f[5]})
		}
	}
	var want [][4]string
	for _, p := range parts {
		code := "8300"
		if p.Purpose == partition.PurposeBiosGrub {
			code = "EF02"
		}
		want = append(want, [4]string{strconv.Itoa(p.Number), strconv.FormatInt(p.BeginMiB*2048, 10), strconv.FormatInt(p.EndMiB*2048-1, 10), code})
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("sgdisk -p (-want +got):\n%s\n%s", diff, out)
	}
	if v := loopRun(t, "sgdisk", "-v", img); !strings.Contains(v, "No problems found") {
		t.Errorf("sgdisk -v:\n%s", v)
	}
	// Exactly the new signatures, nothing of the old ones.
	wantFS := []string{"", "TYPE=xfs LABEL=data", "", "TYPE=swap LABEL=swap", "TYPE=vfat LABEL=config-2", "TYPE=ext4 LABEL=var"}
	for i, p := range parts {
		if got := blkidAt(t, img, p.BeginMiB*loopMiB, p.SizeMiB()*loopMiB); got != wantFS[i] {
			t.Errorf("partition %d: blkid -p -O %d sees %q, want %q", p.Number, p.BeginMiB*loopMiB, got, wantFS[i])
		}
		node := nodes.nodes[fmt.Sprintf("%s %d %d", plan.Disks[0].Device, p.BeginMiB, p.EndMiB)]
		sigs := strings.TrimSpace(loopRun(t, "wipefs", "--no-act", "--noheadings", "-O", "TYPE", node))
		wantType := strings.TrimPrefix(strings.Fields(wantFS[i] + " x")[0], "TYPE=")
		ok := sigs == "" && wantFS[i] == ""
		if sigs != "" && wantFS[i] != "" {
			ok = true
			for _, l := range strings.Split(sigs, "\n") {
				ok = ok && strings.TrimSpace(l) == wantType
			}
		}
		if !ok {
			t.Errorf("partition %d (%s): wipefs lists %q, want only %q", p.Number, node, sigs, wantFS[i])
		}
	}
	d := loopRun(t, "dumpe2fs", "-h", fmt.Sprintf("%s?offset=%d", img, parts[5].BeginMiB*loopMiB))
	if !strings.Contains(d, "Filesystem volume name:   var") || !strings.Contains(d, "Filesystem state:         clean") {
		t.Errorf("dumpe2fs of the /var partition:\n%s", d)
	}
}

// A planned disk that is mounted is refused before anything is written.
func TestLoopApplyRefusesMounted(t *testing.T) {
	loopRequire(t)
	img, dev := loopDisk(t, 1200)
	loopRun(t, "mkfs.ext4", "-F", "-q", dev)
	mnt := t.TempDir()
	loopRun(t, "mount", "-t", "ext4", dev, mnt)
	t.Cleanup(func() { _ = exec.Command("umount", mnt).Run() })
	head := func() []byte {
		f, err := os.Open(img)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		b := make([]byte, 3*loopMiB)
		if _, err := io.ReadFull(f, b); err != nil {
			t.Fatal(err)
		}
		return b
	}
	h0 := head()
	deps := partition.ApplyDeps{Logger: loopLogger(t), Runner: &sys.Exec{}, Devices: &sys.Devices{Nodes: &offsetLoops{t: t, files: map[string]string{dev: img}, nodes: map[string]string{}}}}
	err := partition.Apply(context.Background(), loopPlan(dev), deps)
	var se *partition.StepError
	if !errors.As(err, &se) || se.Step != partition.StepSafety || se.Device != dev || !errors.Is(err, partition.ErrInUse) || !strings.Contains(err.Error(), "mounted on "+mnt) {
		t.Fatalf("Apply = %v, want a safety ErrInUse on %s naming %s", err, dev, mnt)
	}
	if !bytes.Equal(h0, head()) {
		t.Error("the mounted disk's first MiBs changed")
	}
}

// The production node path: a loop device without partscan has no
// partition table support, and the real Devices says so clearly.
func TestLoopRereadWithoutPartscanIsClear(t *testing.T) {
	loopRequire(t)
	_, dev := loopDisk(t, 64)
	err := (&sys.Devices{}).RereadPartitions(context.Background(), dev)
	if err == nil || !strings.Contains(err.Error(), "BLKRRPART") {
		t.Fatalf("RereadPartitions(%s) = %v, want a BLKRRPART error", dev, err)
	}
	d := partition.Disk{Device: dev}
	p := partition.Partition{Number: 1, Device: dev + "p1", BeginMiB: 1, EndMiB: 10}
	_, err = (&sys.Devices{NodeTimeout: 200 * time.Millisecond}).PartitionNode(context.Background(), d, p)
	if err == nil || !strings.Contains(err.Error(), "no device node after 200ms") {
		t.Fatalf("PartitionNode = %v, want a timeout naming the wait", err)
	}
}
