package inventory

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	diskfs "github.com/diskfs/go-diskfs"
	"github.com/diskfs/go-diskfs/partition/gpt"
	"github.com/diskfs/go-diskfs/partition/mbr"
	"github.com/google/go-cmp/cmp"

	"github.com/imprint-dev/imprint/internal/logtest"
	"github.com/imprint-dev/imprint/internal/testenv"
)

const mib = 1 << 20

// sparse makes a sparse file of size bytes in dir.
func sparse(t *testing.T, dir, name string, size int64) string {
	t.Helper()
	p := filepath.Join(dir, name)
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return p
}

func run(t *testing.T, name string, args ...string) {
	t.Helper()
	testenv.RequireTool(t, name)
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

func probeFile(t *testing.T, p string) []string {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	sigs, err := ProbeSignatures(f, st.Size())
	if err != nil {
		t.Fatalf("ProbeSignatures(%s): %v", p, err)
	}
	return sigs
}

// Filesystems made by the real tools on image files.
func TestProbeSignaturesFilesystems(t *testing.T) {
	tests := []struct {
		name string
		size int64
		tool string
		args []string // the image path is appended
		want []string
	}{
		{"ext2", 16 * mib, "mkfs.ext2", []string{"-F", "-q"}, []string{SigExt2}},
		{"ext3", 16 * mib, "mkfs.ext3", []string{"-F", "-q"}, []string{SigExt3}},
		{"ext4", 16 * mib, "mkfs.ext4", []string{"-F", "-q"}, []string{SigExt4}},
		{"xfs", 300 * mib, "mkfs.xfs", []string{"-f", "-q"}, []string{SigXFS}},
		{"swap", 16 * mib, "mkswap", []string{"-L", "swap0"}, []string{SigSwap}},
		{"vfat16", 32 * mib, "mkfs.vfat", []string{"-F", "16"}, []string{SigVFAT}},
		{"vfat32", 64 * mib, "mkfs.vfat", []string{"-F", "32"}, []string{SigVFAT}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := sparse(t, t.TempDir(), "img", tt.size)
			run(t, tt.tool, append(tt.args, p)...)
			if diff := cmp.Diff(tt.want, probeFile(t, p)); diff != "" {
				t.Errorf("ProbeSignatures(%s image) mismatch (-want +got):\n%s", tt.name, diff)
			}
		})
	}
}

func TestProbeSignaturesISO9660(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "meta_data.json"), []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(dir, "cd.iso")
	run(t, "xorriso", "-as", "mkisofs", "-quiet", "-V", "config-2", "-o", img, src)
	if diff := cmp.Diff([]string{SigISO9660}, probeFile(t, img)); diff != "" {
		t.Errorf("ProbeSignatures(iso) mismatch (-want +got):\n%s", diff)
	}
}

// GPT written by go-diskfs: both headers; with the primary zeroed, the
// backup alone still shows (an old table that could come back).
func TestProbeSignaturesGPT(t *testing.T) {
	for _, sector := range []int{512, 4096} {
		p := filepath.Join(t.TempDir(), "disk.img")
		d, err := diskfs.Create(p, 64*mib, diskfs.SectorSize(sector))
		if err != nil {
			t.Fatal(err)
		}
		spm := uint64(mib / sector)
		table := &gpt.Table{LogicalSectorSize: sector, PhysicalSectorSize: sector, ProtectiveMBR: true, Partitions: []*gpt.Partition{
			{Index: 1, Start: spm, End: 33*spm - 1, Type: gpt.LinuxFilesystem, Name: "root"},
		}}
		if err := d.Partition(table); err != nil {
			t.Fatal(err)
		}
		d.Close()
		if diff := cmp.Diff([]string{SigGPT, SigGPTBackup}, probeFile(t, p)); diff != "" {
			t.Errorf("sector %d: ProbeSignatures(gpt image) mismatch (-want +got):\n%s", sector, diff)
		}
		f, err := os.OpenFile(p, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteAt(make([]byte, 2*sector), 0); err != nil {
			t.Fatal(err)
		}
		f.Close()
		if diff := cmp.Diff([]string{SigGPTBackup}, probeFile(t, p)); diff != "" {
			t.Errorf("sector %d: ProbeSignatures(primary wiped) mismatch (-want +got):\n%s", sector, diff)
		}
	}
}

func TestProbeSignaturesMBR(t *testing.T) {
	p := filepath.Join(t.TempDir(), "disk.img")
	d, err := diskfs.Create(p, 64*mib, diskfs.SectorSize512)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Partition(&mbr.Table{LogicalSectorSize: 512, PhysicalSectorSize: 512, Partitions: []*mbr.Partition{
		{Bootable: true, Type: mbr.Linux, Start: 2048, Size: 65536},
	}}); err != nil {
		t.Fatal(err)
	}
	d.Close()
	if diff := cmp.Diff([]string{SigMBR}, probeFile(t, p)); diff != "" {
		t.Errorf("ProbeSignatures(mbr image) mismatch (-want +got):\n%s", diff)
	}
}

// Synthetic LVM and md metadata where pvcreate and mdadm would put it (both
// need a real block device; the loop tier runs the tools themselves).
func TestProbeSignaturesSynthetic(t *testing.T) {
	const size = 64 * mib
	lvm := func(sector int64) func([]byte) {
		return func(b []byte) {
			copy(b[sector*512:], "LABELONE")
			binary.LittleEndian.PutUint64(b[sector*512+8:], uint64(sector))
			copy(b[sector*512+24:], "LVM2 001")
		}
	}
	md := func(off int64, major uint32, order binary.ByteOrder) func([]byte) {
		return func(b []byte) {
			order.PutUint32(b[off:], 0xa92b4efc)
			order.PutUint32(b[off+4:], major)
		}
	}
	tests := []struct {
		name  string
		write func([]byte)
		want  []string
	}{
		{"lvm label in sector 1", lvm(1), []string{SigLVM2}},
		{"lvm label in sector 3", lvm(3), []string{SigLVM2}},
		{"md 0.90 at the end", md(size-65536, 0, binary.LittleEndian), []string{SigRAIDMember}},
		{"md 0.90 big-endian", md(size-65536, 0, binary.BigEndian), []string{SigRAIDMember}},
		{"md 1.0 at the end", md(size-8192, 1, binary.LittleEndian), []string{SigRAIDMember}},
		{"md 1.1 at 0", md(0, 1, binary.LittleEndian), []string{SigRAIDMember}},
		{"md 1.2 at 4 KiB", md(4096, 1, binary.LittleEndian), []string{SigRAIDMember}},
		{"md magic with a wrong version", md(4096, 7, binary.LittleEndian), nil},
		{"nothing", func([]byte) {}, nil},
	}
	for _, tt := range tests {
		b := make([]byte, size)
		tt.write(b)
		got, err := ProbeSignatures(bytes.NewReader(b), size)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("%s: ProbeSignatures mismatch (-want +got):\n%s", tt.name, diff)
		}
	}
}

// Several signatures on one device are all reported: an md 1.0 superblock
// left at the end under a new ext4 is exactly what teardown must see.
func TestProbeSignaturesStacked(t *testing.T) {
	const size = 64 * mib
	p := sparse(t, t.TempDir(), "img", size)
	run(t, "mkfs.ext4", "-F", "-q", p)
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	sb := make([]byte, 8)
	binary.LittleEndian.PutUint32(sb, 0xa92b4efc)
	binary.LittleEndian.PutUint32(sb[4:], 1)
	if _, err := f.WriteAt(sb, size-8192); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if diff := cmp.Diff([]string{SigExt4, SigRAIDMember}, probeFile(t, p)); diff != "" {
		t.Errorf("ProbeSignatures(ext4 over md 1.0) mismatch (-want +got):\n%s", diff)
	}
}

type failingReader struct{}

func (failingReader) ReadAt([]byte, int64) (int, error) { return 0, errors.New("input/output error") }

func TestProbeSignaturesReadError(t *testing.T) {
	_, err := ProbeSignatures(failingReader{}, 64*mib)
	if err == nil || !strings.Contains(err.Error(), "input/output error") {
		t.Fatalf("ProbeSignatures on a failing device: %v, want the I/O error", err)
	}
	// A device smaller than the probed offsets is not an error.
	sigs, err := ProbeSignatures(bytes.NewReader(make([]byte, 700)), 700)
	if err != nil || len(sigs) != 0 {
		t.Fatalf("ProbeSignatures(700 zero bytes) = %v, %v; want none, nil", sigs, err)
	}
}

// Through CollectDisks: the disk and its partitions are probed through the
// disk's own node (no partition nodes exist without udev).
func TestCollectDisksSignatures(t *testing.T) {
	root := buildTree(t, "server-nvme")
	dev := t.TempDir()
	const diskSize = 1953525168 * 512
	p := sparse(t, dev, "nvme1n1", diskSize)
	d, err := diskfs.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Partition(&gpt.Table{LogicalSectorSize: 512, PhysicalSectorSize: 512, ProtectiveMBR: true, Partitions: []*gpt.Partition{
		{Index: 1, Start: 2048, End: 1953525134, Type: gpt.LinuxFilesystem, Name: "data"},
	}}); err != nil {
		t.Fatal(err)
	}
	d.Close()
	run(t, "mkfs.ext4", "-F", "-q", "-E", "offset=1048576", p, "64M")
	sparse(t, dev, "nvme0n1", 1953525168*512)

	disks, err := CollectDisks(context.Background(), Options{SysRoot: root, DevRoot: dev, Log: logtest.New(t)})
	if err != nil {
		t.Fatal(err)
	}
	if len(disks) != 2 {
		t.Fatalf("CollectDisks: %d disks, want 2", len(disks))
	}
	if disks[0].ProbeError != "" || disks[0].Signatures != nil {
		t.Errorf("nvme0n1 (blank): signatures %v, probe error %q; want none", disks[0].Signatures, disks[0].ProbeError)
	}
	n1 := disks[1]
	if diff := cmp.Diff([]string{SigGPT, SigGPTBackup}, n1.Signatures); diff != "" || n1.ProbeError != "" {
		t.Errorf("nvme1n1 signatures mismatch (-want +got):\n%s (probe error %q)", diff, n1.ProbeError)
	}
	if diff := cmp.Diff([]string{SigExt4}, n1.Partitions[0].Signatures); diff != "" {
		t.Errorf("nvme1n1p1 signatures mismatch (-want +got):\n%s", diff)
	}
}
