package provision

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestOSNetworkRules(t *testing.T) {
	const want = "want ramdisk, document, or leave it out to pass the ramdisk's network on"
	tests := []struct {
		name    string
		set     any // nil: key absent
		ramdisk bool
		want    []string
	}{
		{"absent: the ramdisk's", nil, true, nil},
		{"ramdisk", "ramdisk", true, nil},
		{"document: opt-out", "document", false, nil},
		{"upper case", "Document", true, []string{`ks_meta.os_network: "Document" is not a network source: ` + want}},
		{"boolean-ish", "false", true, []string{`ks_meta.os_network: "false" is not a network source: ` + want}},
		{"a boolean", false, true, []string{`ks_meta.os_network: "false" is not a network source: ` + want}},
		{"not a string", []any{"document"}, true, []string{`ks_meta.os_network: must be a string, got array`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := generic(t, readFixture(t, "provision_fuel90_ubuntu_1disk.json"))
			if tt.set != nil {
				obj(t, m, "ks_meta")["os_network"] = tt.set
			}
			got := problemLines(t, encode(t, m))
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("problems (-want +got):\n%s", diff)
			}
			if tt.want == nil {
				d, err := Parse(encode(t, m))
				if err != nil {
					t.Fatal(err)
				}
				if d.UsesRamdiskNetwork() != tt.ramdisk {
					t.Errorf("UsesRamdiskNetwork() = %v, want %v", d.UsesRamdiskNetwork(), tt.ramdisk)
				}
			}
		})
	}
}
