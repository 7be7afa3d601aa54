package imagebuild

import (
	"bytes"
	"strings"
	"testing"
)

func TestDetectImage(t *testing.T) {
	mbr, err := MBR([]DiskPart{{Start: 1 << 20, Size: 8 << 20}}, nil, 7)
	if err != nil {
		t.Fatal(err)
	}
	head := func(parts ...[2]any) []byte {
		b := make([]byte, 36<<10)
		for _, p := range parts {
			copy(b[p[0].(int):], p[1].([]byte))
		}
		return b
	}
	emptyMBR := make([]byte, 512)
	emptyMBR[510], emptyMBR[511] = 0x55, 0xaa
	for _, tt := range []struct {
		name string
		head []byte
		want ImageKind
	}{
		{"qcow2", head([2]any{0, []byte("QFI\xfb\x00\x00\x00\x03")}), KindQcow2},
		{"iso", head([2]any{0x8001, []byte("CD001")}), KindISO},
		{"hybrid iso", head([2]any{0, mbr}, [2]any{0x8001, []byte("CD001")}), KindISO},
		{"ext4", head([2]any{1080, []byte{0x53, 0xef}}), KindFS},
		{"mbr disk", head([2]any{0, mbr}), KindDisk},
		{"gpt disk", head([2]any{512, []byte("EFI PART")}), KindDisk},
		{"boot sector, no partitions", head([2]any{0, emptyMBR}), KindFS},
		{"gzip", []byte{0x1f, 0x8b, 8, 0}, KindFS},
		{"short", nil, KindFS},
	} {
		if got := DetectImage(tt.head); got != tt.want {
			t.Errorf("%s: DetectImage = %s, want %s", tt.name, got, tt.want)
		}
	}
}

func TestReadPartitionsMBR(t *testing.T) {
	mbr, err := MBR([]DiskPart{{Start: 1 << 20, Size: 8 << 20}, {Start: 9 << 20, Size: 4 << 20}}, nil, 7)
	if err != nil {
		t.Fatal(err)
	}
	mbr[446+16+4] = 0x05 // the second one becomes an extended partition: skipped
	parts, err := ReadPartitions(bytes.NewReader(append(mbr, make([]byte, 512)...)))
	if err != nil || len(parts) != 1 || parts[0] != (Partition{Number: 1, Start: 1 << 20, Size: 8 << 20}) {
		t.Errorf("ReadPartitions = %+v, %v", parts, err)
	}
	if _, err := ReadPartitions(bytes.NewReader(make([]byte, 1024))); err == nil || !strings.Contains(err.Error(), "no MBR or GPT") {
		t.Errorf("no table: %v", err)
	}
	mbr[446+4] = 0xee
	if _, err := ReadPartitions(bytes.NewReader(append(mbr, make([]byte, 512)...))); err == nil || !strings.Contains(err.Error(), "protective MBR without a GPT") {
		t.Errorf("protective MBR: %v", err)
	}
}
