package partition

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/partition/gpt"
	"github.com/google/go-cmp/cmp"

	"github.com/imprint-dev/imprint/internal/testenv"
)

// readFakeGPT reads back the GPT of an image file with go-diskfs.
func readFakeGPT(t *testing.T, img string) *gpt.Table {
	t.Helper()
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tbl, err := gpt.Read(file.New(f, true), 512, 512)
	if err != nil {
		t.Fatalf("read GPT of %s: %v", img, err)
	}
	return tbl
}

type gptRow struct {
	Number     int
	Start, End uint64
	Type       string
	Name       string
	Attrs      uint64
}

func gptRows(tbl *gpt.Table) []gptRow {
	var out []gptRow
	for _, p := range tbl.Partitions {
		if p.Type == gpt.Unused {
			continue
		}
		out = append(out, gptRow{p.Index, p.Start, p.End, string(p.Type), p.Name, p.Attributes})
	}
	return out
}

func TestGPTTableExactBoundaries(t *testing.T) {
	d := Disk{Device: "/dev/sda", Label: "gpt", Partitions: []Partition{
		{Number: 1, Device: "/dev/sda1", BeginMiB: 1, EndMiB: 25, Flags: []string{"bios_grub"}},
		{Number: 2, Device: "/dev/sda2", BeginMiB: 26, EndMiB: 226, Flags: []string{"legacy_boot"}, Name: "uefi"},
		{Number: 3, Device: "/dev/sda3", BeginMiB: 227, EndMiB: 427, TypeGUID: "0fc63daf-8483-4772-8e79-3d69d8477de4"},
		{Number: 4, Device: "/dev/sda4", BeginMiB: 428, EndMiB: 1000, Purpose: PurposePV},
		{Number: 5, Device: "/dev/sda5", BeginMiB: 1001, EndMiB: 1022, Purpose: PurposeRaid},
	}}
	for _, tt := range []struct {
		sector int
		want   []gptRow
	}{
		{512, []gptRow{
			{1, 2048, 51199, gptTypeBIOSBoot, "primary", 0},
			{2, 53248, 462847, gptTypeLinuxFS, "uefi", 4},
			{3, 464896, 874495, gptTypeLinuxFS, "primary", 0},
			{4, 876544, 2047999, gptTypeLinuxLVM, "primary", 0},
			{5, 2050048, 2093055, gptTypeLinuxRAID, "primary", 0},
		}},
		{4096, []gptRow{
			{1, 256, 6399, gptTypeBIOSBoot, "primary", 0},
			{2, 6656, 57855, gptTypeLinuxFS, "uefi", 4},
			{3, 58112, 109311, gptTypeLinuxFS, "primary", 0},
			{4, 109568, 255999, gptTypeLinuxLVM, "primary", 0},
			{5, 256256, 261631, gptTypeLinuxRAID, "primary", 0},
		}},
	} {
		tbl, err := GPTTable(d, 1024<<20, tt.sector)
		if err != nil {
			t.Fatalf("GPTTable(sector %d): %v", tt.sector, err)
		}
		if diff := cmp.Diff(tt.want, gptRows(tbl)); diff != "" {
			t.Errorf("GPTTable(sector %d) (-want +got):\n%s", tt.sector, diff)
		}
	}
}

func TestGPTTableErrors(t *testing.T) {
	p := func(n int, b, e int64) Partition {
		return Partition{Number: n, Device: "/dev/vda" + strconv.Itoa(n), BeginMiB: b, EndMiB: e}
	}
	for _, tt := range []struct {
		name   string
		parts  []Partition
		size   int64
		substr string
	}{
		{"past the backup GPT", []Partition{p(1, 1, 100)}, 100 << 20, "after the last usable sector"},
		{"overlap", []Partition{p(1, 1, 10), p(2, 9, 20)}, 100 << 20, "inside the previous partition"},
		{"begins at 0", []Partition{p(1, 0, 10)}, 100 << 20, "before the first usable sector"},
		{"empty", []Partition{p(1, 5, 5)}, 100 << 20, "is empty"},
		{"duplicate number", []Partition{p(1, 1, 5), p(1, 6, 9)}, 100 << 20, "used twice"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := GPTTable(Disk{Device: "/dev/vda", Partitions: tt.parts}, tt.size, 512)
			if err == nil || !strings.Contains(err.Error(), tt.substr) {
				t.Fatalf("GPTTable = %v, want error containing %q", err, tt.substr)
			}
		})
	}
	if _, err := GPTTable(Disk{Device: "/dev/vda", Label: "msdos"}, 100<<20, 512); err == nil {
		t.Error("msdos label accepted")
	}
}

// sgdiskRows parses `sgdisk -p` partition lines: number, start, end, code.
func sgdiskRows(out []byte) [][4]string {
	var rows [][4]string
	sc := bufio.NewScanner(bytes.NewReader(out))
	table := false
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) > 0 && f[0] == "Number" {
			table = true
			continue
		}
		if table && len(f) >= 6 {
			rows = append(rows, [4]string{f[0], f[1], f[2], f[5]})
		}
	}
	return rows
}

// The GPT Apply writes to an image file is exact to the sector, as sgdisk
// (an independent implementation) reads it.
func TestWriteGPTImageSgdisk(t *testing.T) {
	testenv.RequireTool(t, "sgdisk")
	dv := newFakeDevices(t)
	dv.addDisk("/dev/sda", 4096)
	dv.addDisk("/dev/sdb", 4096)
	r := &fakeRunner{rules: append([]fakeRule(nil), emptyLVM...)}
	blkidOK(r)
	if err := Apply(context.Background(), applySamplePlan(), ApplyDeps{Runner: r, Devices: dv}); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("sgdisk", "-p", dv.image("/dev/sda")).CombinedOutput()
	if err != nil {
		t.Fatalf("sgdisk -p: %v\n%s", err, out)
	}
	want := [][4]string{
		{"1", "2048", "51199", "EF02"},
		{"2", "53248", "462847", "8300"},
		{"3", "464896", "874495", "8300"},
		{"4", "876544", "4972543", "8E00"},
		{"5", "4974592", "7022591", "FD00"},
	}
	if diff := cmp.Diff(want, sgdiskRows(out)); diff != "" {
		t.Errorf("sgdisk -p (-want +got):\n%s\n%s", diff, out)
	}
	v, err := exec.Command("sgdisk", "-v", dv.image("/dev/sda")).CombinedOutput()
	if err != nil || !strings.Contains(string(v), "No problems found") {
		t.Errorf("sgdisk -v: %v\n%s", err, v)
	}
}

func TestGPTTableRefusesBadTypeGUID(t *testing.T) {
	d := Disk{Device: "/dev/sda", Label: "gpt", Partitions: []Partition{
		{Number: 1, Device: "/dev/sda1", BeginMiB: 1, EndMiB: 25, TypeGUID: GUIDBIOSBoot},
		{Number: 2, Device: "/dev/sda2", BeginMiB: 26, EndMiB: 100, TypeGUID: "fake_guid"},
	}}
	_, err := GPTTable(d, 200<<20, 512)
	if err == nil || !strings.Contains(err.Error(), `partition "/dev/sda2": type GUID "fake_guid" is not a GUID`) {
		t.Fatalf("GPTTable = %v, want a refusal naming /dev/sda2 and fake_guid", err)
	}
	d.Partitions[1].TypeGUID = "7ec6f557-3bc5-4aca-b293-16ef5df639d1" // lower case is a GUID
	tbl, err := GPTTable(d, 200<<20, 512)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(tbl.Partitions[1].Type); got != "7EC6F557-3BC5-4ACA-B293-16EF5DF639D1" {
		t.Errorf("type = %q", got)
	}
}
