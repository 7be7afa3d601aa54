package provision

import "strings"

// Values of ks_meta.os_network, an imprint extension (Nailgun has no such
// key): where the installed OS's network configuration comes from.
const (
	// OSNetworkAuto ("" or absent): the network document the ramdisk
	// applied when it had one (bonds, VLANs, static addresses reach the
	// installed OS unchanged), else the document's admin NIC.
	OSNetworkAuto = ""
	// OSNetworkRamdisk: the same as OSNetworkAuto, said explicitly.
	OSNetworkRamdisk = "ramdisk"
	// OSNetworkDocument: the document's admin NIC alone (Nailgun's
	// behaviour), whatever the ramdisk applied: the opt-out for an OS
	// whose network differs from the provisioning one.
	OSNetworkDocument = "document"
)

// OSNetworks are the values ks_meta.os_network accepts.
var OSNetworks = []string{OSNetworkRamdisk, OSNetworkDocument}

// UsesRamdiskNetwork says whether the installed OS gets the network the
// ramdisk applied (when there is one).
func (d *Document) UsesRamdiskNetwork() bool { return d.KsMeta.OSNetwork != OSNetworkDocument }

// checkOSNetwork validates ks_meta.os_network.
func (d *Document) checkOSNetwork(f *findings) {
	m := d.KsMeta.OSNetwork
	if m == OSNetworkAuto {
		return
	}
	for _, ok := range OSNetworks {
		if m == ok {
			return
		}
	}
	f.err(field(pathKsMeta, "os_network"), "%q is not a network source: want %s, or leave it out to pass the ramdisk's network on", m, strings.Join(OSNetworks, ", "))
}
