package inventory

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"
	"unicode/utf16"

	"github.com/google/go-cmp/cmp"
)

// loadOption encodes an EFI_LOAD_OPTION as firmware stores it, for the
// fixture NVRAM.
func loadOption(active bool, desc string, nodes ...[]byte) []byte {
	var b []byte
	attr := uint32(0)
	if active {
		attr = 1
	}
	var dp []byte
	for _, n := range nodes {
		dp = append(dp, n...)
	}
	dp = append(dp, 0x7f, 0xff, 4, 0)
	b = binary.LittleEndian.AppendUint32(b, attr)
	b = binary.LittleEndian.AppendUint16(b, uint16(len(dp)))
	for _, c := range utf16.Encode([]rune(desc)) {
		b = binary.LittleEndian.AppendUint16(b, c)
	}
	b = append(b, 0, 0)
	return append(b, dp...)
}

func dpNode(typ, sub byte, data []byte) []byte {
	n := []byte{typ, sub, 0, 0}
	binary.LittleEndian.PutUint16(n[2:], uint16(4+len(data)))
	return append(n, data...)
}

func hdNode(part uint32, guid []byte) []byte {
	d := make([]byte, 38)
	binary.LittleEndian.PutUint32(d, part)
	binary.LittleEndian.PutUint64(d[4:], 2048)
	binary.LittleEndian.PutUint64(d[12:], 409600)
	copy(d[20:36], guid)
	d[36], d[37] = 2, 2 // GPT, GUID signature
	return dpNode(4, 1, d)
}

func fileNode(p string) []byte {
	var d []byte
	for _, c := range utf16.Encode([]rune(p)) {
		d = binary.LittleEndian.AppendUint16(d, c)
	}
	return dpNode(4, 4, append(d, 0, 0))
}

func TestCollectFirmware(t *testing.T) {
	root := t.TempDir()
	if got := collectFirmware(Options{SysRoot: root}.withDefaults()); !cmp.Equal(got, Firmware{BootMode: "bios"}) {
		t.Errorf("no /sys/firmware/efi: %+v, want bios", got)
	}
	vars := filepath.Join(root, "firmware", "efi", "efivars")
	if err := os.MkdirAll(vars, 0o755); err != nil {
		t.Fatal(err)
	}
	if got := collectFirmware(Options{SysRoot: root}.withDefaults()); got.BootMode != "uefi" || got.Error == "" {
		t.Errorf("efivarfs not mounted: %+v, want uefi with an error", got)
	}
	put := func(name string, data []byte) {
		t.Helper()
		b := append([]byte{7, 0, 0, 0}, data...)
		if err := os.WriteFile(filepath.Join(vars, name+"-"+efiGlobal), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// GUID 0b1c5a2d-6e3f-4a51-9d2e-1234567890ab in EFI byte order.
	guid := []byte{0x2d, 0x5a, 0x1c, 0x0b, 0x3f, 0x6e, 0x51, 0x4a, 0x9d, 0x2e, 0x12, 0x34, 0x56, 0x78, 0x90, 0xab}
	put("SecureBoot", []byte{1})
	put("SetupMode", []byte{0})
	put("BootCurrent", []byte{1, 0})
	put("BootOrder", []byte{1, 0, 4, 0, 0x0a, 0})
	put("Boot0001", loadOption(true, "UEFI PXEv4 (MAC:525400123456)",
		dpNode(2, 1, make([]byte, 8)), dpNode(1, 1, []byte{0, 3}), dpNode(3, 11, append([]byte{0x52, 0x54, 0, 0x12, 0x34, 0x56}, make([]byte, 27)...)), dpNode(3, 12, make([]byte, 23))))
	put("Boot0004", loadOption(true, "debian (vda)", hdNode(2, guid), fileNode(`\EFI\debian\shimx64.efi`)))
	put("Boot000A", loadOption(false, "old", hdNode(1, guid)))
	put("Boot000G", []byte{1}) // not an entry number: ignored
	put("Timeout", []byte{0, 0})

	got := collectFirmware(Options{SysRoot: root}.withDefaults())
	yes, no := true, false
	want := Firmware{
		BootMode: "uefi", SecureBoot: &yes, SetupMode: &no, BootCurrent: "0001", BootOrder: []string{"0001", "0004", "000A"},
		BootEntries: []BootEntry{
			{Num: "0001", Description: "UEFI PXEv4 (MAC:525400123456)", Active: true, DevicePath: "Node(2,1)/Node(1,1)/MAC(525400123456)/IPv4()", Network: true},
			{Num: "0004", Description: "debian (vda)", Active: true, DevicePath: `HD(2,GPT,0b1c5a2d-6e3f-4a51-9d2e-1234567890ab)/File(\EFI\debian\shimx64.efi)`,
				PartUUID: "0b1c5a2d-6e3f-4a51-9d2e-1234567890ab", File: `\EFI\debian\shimx64.efi`},
			{Num: "000A", Description: "old", DevicePath: "HD(1,GPT,0b1c5a2d-6e3f-4a51-9d2e-1234567890ab)", PartUUID: "0b1c5a2d-6e3f-4a51-9d2e-1234567890ab"},
		},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("firmware (-want +got):\n%s", diff)
	}
}

func TestParseLoadOptionRejects(t *testing.T) {
	for name, b := range map[string][]byte{
		"short":            {1, 0},
		"no terminator":    {1, 0, 0, 0, 4, 0, 'a', 0},
		"path too long":    {1, 0, 0, 0, 40, 0, 0, 0, 0x7f, 0xff, 4, 0},
		"node length zero": {1, 0, 0, 0, 4, 0, 0, 0, 4, 1, 0, 0},
	} {
		if _, err := ParseLoadOption(b); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}
