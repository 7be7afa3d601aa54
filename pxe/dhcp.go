package pxe

import (
	"fmt"
	"net/url"
	"strings"
)

// DHCP vendor and user classes a boot DHCP server tells clients apart by.
const (
	// ClassHTTPClient is the vendor class (option 60; DHCPv6 option 16)
	// of UEFI HTTP boot clients ("HTTPClient:Arch:00016:..."); a server
	// answers them with the same class and a boot file URL, else the
	// firmware treats the offer as a plain address.
	ClassHTTPClient = "HTTPClient"
	// UserClassIPXE is the user class (option 77; DHCPv6 option 15) iPXE
	// sends.
	UserClassIPXE = "iPXE"
)

// DHCPBoot is what a node's DHCP server must answer for it to boot from
// the controller over HTTP only (no TFTP): UEFI HTTP boot firmware gets
// the controller's iPXE EFI binary (Controller.IPXEEFI,
// /boot/ipxe.efi), and iPXE, whichever way it started, gets the
// controller's per-MAC script (/ipxe?mac=${net0/mac}; iPXE expands the
// setting), over DHCPv4 (boot file name) and DHCPv6 (option 59,
// bootfile-url), so the controller may sit on an IPv6 address.
type DHCPBoot struct {
	// Controller is the controller's base URL as nodes reach it:
	// http://10.0.3.1:8080 or http://[fd00:6::1]:8080.
	Controller string
}

// Validate checks the controller URL.
func (d DHCPBoot) Validate() error {
	u, err := url.Parse(d.Controller)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.User != nil {
		return fmt.Errorf("controller: %q is not an http(s)://host[:port] URL", d.Controller)
	}
	if strings.ContainsAny(d.Controller, " \t\n\",") {
		return fmt.Errorf("controller: %q contains a space, quote or comma", d.Controller)
	}
	return nil
}

// ScriptURL is iPXE's boot file: the controller's per-MAC script.
func (d DHCPBoot) ScriptURL() string {
	return strings.TrimRight(d.Controller, "/") + "/ipxe?mac=${net0/mac}"
}

// EFIURL is UEFI HTTP boot's boot file: iPXE's EFI binary.
func (d DHCPBoot) EFIURL() string { return strings.TrimRight(d.Controller, "/") + "/boot/ipxe.efi" }

// Dnsmasq returns the dnsmasq options (long form without "--", one
// per element, as on its command line or in dnsmasq.conf) that make a
// dnsmasq with a dhcp-range on the nodes' segment answer as DHCPBoot says.
func (d DHCPBoot) Dnsmasq() ([]string, error) {
	if err := d.Validate(); err != nil {
		return nil, err
	}
	return []string{
		"dhcp-vendorclass=set:efihttp," + ClassHTTPClient,
		"dhcp-userclass=set:ipxe," + UserClassIPXE,
		// The HTTP boot answer must carry the class back (option 60).
		"dhcp-option-force=tag:efihttp,60," + ClassHTTPClient,
		"dhcp-boot=tag:efihttp,tag:!ipxe," + d.EFIURL(),
		// and as option 67 too: firmware reads the option first.
		"dhcp-option-force=tag:efihttp,tag:!ipxe,option:bootfile-name," + d.EFIURL(),
		"dhcp-boot=tag:ipxe," + d.ScriptURL(),
		"dhcp-option=option6:bootfile-url," + d.ScriptURL(),
	}, nil
}
