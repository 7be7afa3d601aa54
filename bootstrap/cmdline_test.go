package bootstrap

import (
	"net/netip"
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

func TestParseIP(t *testing.T) {
	pfx := netip.MustParsePrefix
	addr := netip.MustParseAddr
	tests := []struct {
		in      string
		want    NetConfig
		wantErr string
	}{
		{in: "dhcp", want: NetConfig{Mode: NetDHCP}},
		{in: "on", want: NetConfig{Mode: NetDHCP}},
		{in: "off", want: NetConfig{Mode: NetOff}},
		{in: "none", want: NetConfig{Mode: NetOff}},
		{in: "10.0.2.15::10.0.2.2:255.255.255.0:node1:eth0:off:10.0.2.3",
			want: NetConfig{Mode: NetStatic, Addr: pfx("10.0.2.15/24"), Gateway: addr("10.0.2.2"),
				Hostname: "node1", Device: "eth0", DNS: []netip.Addr{addr("10.0.2.3")}}},
		{in: "192.168.1.7::192.168.1.1:255.255.252.0", want: NetConfig{Mode: NetStatic, Addr: pfx("192.168.1.7/22"), Gateway: addr("192.168.1.1")}},
		{in: "10.1.2.3/16:::::eno1", want: NetConfig{Mode: NetStatic, Addr: pfx("10.1.2.3/16"), Device: "eno1"}},
		{in: "10.1.2.3", want: NetConfig{Mode: NetStatic, Addr: pfx("10.1.2.3/24")}},
		{in: ":::::eth1:dhcp", want: NetConfig{Mode: NetDHCP, Device: "eth1"}},
		{in: "rarp", wantErr: "rarp is not supported"},
		{in: "::10.0.0.1:255.255.255.0", wantErr: "client-ip: required"},
		{in: "10.0.2.15:::not-a-netmask", wantErr: `netmask "not-a-netmask"`},
		{in: "10.0.2.15:::255.0.255.0", wantErr: "not contiguous"},
		{in: "10.0.2.15/24:::255.255.255.0", wantErr: "also set"},
		{in: "fe80::1", wantErr: `client-ip "fe80"`},
		{in: "10.0.2.15::gw:::::bad-dns", wantErr: `gw-ip "gw"`},
		{in: "a:b:c:d:e:f:g:h:i:j:k", wantErr: "11 fields"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseIP(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseIP(%q) error = %v, want it to contain %q", tt.in, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseIP(%q): %v", tt.in, err)
			}
			if diff := cmp.Diff(tt.want, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b }),
				cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); diff != "" {
				t.Errorf("ParseIP(%q) (-want +got):\n%s", tt.in, diff)
			}
		})
	}
}

func TestParseIPCollectsEveryProblem(t *testing.T) {
	_, err := ParseIP("10.0.2.15::gw:bad-mask::::dns?")
	for _, s := range []string{"netmask", "gw-ip", "dns0-ip"} {
		if err == nil || !strings.Contains(err.Error(), s) {
			t.Errorf("error %v lacks %q", err, s)
		}
	}
}

func TestNetFromCmdline(t *testing.T) {
	tests := []struct {
		cmdline    string
		wantMode   NetMode
		wantSource string
		wantErr    string
	}{
		{"console=ttyS0", NetDHCP, "", ""},
		{"ip=10.0.0.2::10.0.0.1:255.255.255.0", NetStatic, "ip", ""},
		{"ip=dhcp imprint.ip=10.0.0.2/24", NetStatic, "imprint.ip", ""},
		{"ip=off", NetOff, "ip", ""},
		{"imprint.ip=bogus:", NetDHCP, "", `imprint.ip="bogus:"`},
	}
	for _, tt := range tests {
		got, err := NetFromCmdline(ParseCmdline(tt.cmdline))
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("NetFromCmdline(%q) error = %v, want %q", tt.cmdline, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got.Mode != tt.wantMode || got.Source != tt.wantSource {
			t.Errorf("NetFromCmdline(%q) = %v from %q, %v; want %v from %q", tt.cmdline, got.Mode, got.Source, err, tt.wantMode, tt.wantSource)
		}
	}
}
