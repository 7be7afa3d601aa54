package pxe

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestDHCPBootDnsmasq(t *testing.T) {
	got, err := DHCPBoot{Controller: "http://[fd00:6::1]:8080/"}.Dnsmasq()
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"dhcp-vendorclass=set:efihttp,HTTPClient",
		"dhcp-userclass=set:ipxe,iPXE",
		"dhcp-option-force=tag:efihttp,60,HTTPClient",
		"dhcp-boot=tag:efihttp,tag:!ipxe,http://[fd00:6::1]:8080/boot/ipxe.efi",
		"dhcp-option-force=tag:efihttp,tag:!ipxe,option:bootfile-name,http://[fd00:6::1]:8080/boot/ipxe.efi",
		"dhcp-boot=tag:ipxe,http://[fd00:6::1]:8080/ipxe?mac=${net0/mac}",
		"dhcp-option=option6:bootfile-url,http://[fd00:6::1]:8080/ipxe?mac=${net0/mac}",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("dnsmasq options (-want +got):\n%s", diff)
	}
	for _, bad := range []string{"", "10.0.3.1:8080", "tftp://10.0.3.1/x", "http://10.0.3.1:8080/?a=b", "http://u:p@10.0.3.1", "http://10.0.3.1/a,b"} {
		if _, err := (DHCPBoot{Controller: bad}).Dnsmasq(); err == nil || !strings.HasPrefix(err.Error(), "controller: ") {
			t.Errorf("controller %q: %v, want a controller: error", bad, err)
		}
	}
}
