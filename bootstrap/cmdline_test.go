package bootstrap

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseCmdline(t *testing.T) {
	got := ParseCmdline(`BOOT_IMAGE=/vmlinuz console=ttyS0,115200n8 quiet imprint.token=abc x="a b" "y=c d" imprint.token=def` + "\n")
	want := []Param{
		{"BOOT_IMAGE", "/vmlinuz", true},
		{"console", "ttyS0,115200n8", true},
		{"quiet", "", false},
		{"imprint.token", "abc", true},
		{"x", "a b", true},
		{"y", "c d", true},
		{"imprint.token", "def", true},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ParseCmdline (-want +got):\n%s", diff)
	}
	if v, ok := Lookup(got, "imprint.token"); !ok || v != "def" {
		t.Errorf("Lookup(imprint.token) = %q, %v; want the last, \"def\"", v, ok)
	}
	if _, ok := Lookup(got, "absent"); ok {
		t.Errorf("Lookup(absent) found")
	}
}

func TestNetFromCmdline(t *testing.T) {
	tests := []struct {
		cmdline string
		off     bool
		links   int // 0: no document (DHCPv4 on every NIC)
		wantErr string
	}{
		{"console=ttyS0", false, 0, ""},
		{"ip=dhcp", false, 0, ""},
		{"ip=10.0.0.2::10.0.0.1:255.255.255.0", false, 1, ""},
		{"ip=dhcp imprint.ip=10.0.0.2/24", false, 1, ""},
		{"bond=bond0:eth0,eth1:mode=active-backup ip=bond0:dhcp", false, 3, ""},
		{"ip=off", true, 0, ""},
		{"imprint.ip=bogus:", false, 0, `imprint.ip="bogus:"`},
	}
	for _, tt := range tests {
		got, err := NetFromCmdline(ParseCmdline(tt.cmdline))
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("NetFromCmdline(%q) error = %v, want %q", tt.cmdline, err, tt.wantErr)
			}
			continue
		}
		links := 0
		if got.Doc != nil {
			links = len(got.Doc.Links)
		}
		if err != nil || got.Off != tt.off || links != tt.links {
			t.Errorf("NetFromCmdline(%q) = off %v, %d links, %v; want off %v, %d links", tt.cmdline, got.Off, links, err, tt.off, tt.links)
		}
	}
}
