package provision

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestBootModeRules(t *testing.T) {
	tests := []struct {
		name string
		set  any // nil: key absent
		want []string
	}{
		{"absent: as booted", nil, nil},
		{"uefi", "uefi", nil},
		{"bios", "bios", nil},
		{"both", "both", nil},
		{"upper case", "UEFI", []string{`ks_meta.boot_mode: "UEFI" is not a boot mode: want bios, uefi, both, or leave it out to use the mode the ramdisk was booted in`}},
		{"legacy", "legacy", []string{`ks_meta.boot_mode: "legacy" is not a boot mode: want bios, uefi, both, or leave it out to use the mode the ramdisk was booted in`}},
		{"not a string", []any{"uefi"}, []string{`ks_meta.boot_mode: must be a string, got array`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := generic(t, readFixture(t, "provision_fuel90_ubuntu_1disk.json"))
			if tt.set != nil {
				obj(t, m, "ks_meta")["boot_mode"] = tt.set
			}
			got := problemLines(t, encode(t, m))
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("problems (-want +got):\n%s", diff)
			}
		})
	}
}

func TestResolveBootMode(t *testing.T) {
	tests := []struct {
		doc    string
		booted bool
		want   string
		esp    bool
		bios   bool
	}{
		{"", false, BootModeBIOS, false, true},
		{"", true, BootModeUEFI, true, false},
		{"bios", true, BootModeBIOS, false, true},
		{"uefi", false, BootModeUEFI, true, false},
		{"both", false, BootModeBoth, true, true},
		{"both", true, BootModeBoth, true, true},
	}
	for _, tt := range tests {
		got := ResolveBootMode(tt.doc, tt.booted)
		if got != tt.want || BootModeWantsESP(got) != tt.esp || BootModeWantsBIOS(got) != tt.bios {
			t.Errorf("ResolveBootMode(%q, %v) = %q (esp %v, bios %v), want %q (esp %v, bios %v)",
				tt.doc, tt.booted, got, BootModeWantsESP(got), BootModeWantsBIOS(got), tt.want, tt.esp, tt.bios)
		}
	}
}
