// Package netdata is the one network document imprint uses for a node: the
// OpenStack config-2 network_data.json schema (links of type phy, bond and
// vlan, networks ipv4/ipv6 static or dhcp/slaac with routes and DNS,
// services), which the configdrive already writes for the installed OS and
// which the bootstrap ramdisk applies to itself before its agent contacts
// the controller.
//
// NICs are named by MAC address (ethernet_mac_address), never by kernel name:
// names differ between the ramdisk and the installed OS.
//
// The package is pure. [Parse] decodes and validates a document, naming the
// field of every problem. [FromCmdline] builds a document from the
// dracut-style kernel command-line forms operators know (ip= including IPv6 in
// brackets, bond=, vlan=, ifname=, nameserver=). [Plan] resolves a document
// against the NICs present (by MAC) and returns the ordered list of netlink
// operations that bring it up; bootstrap applies that list with netlink.
package netdata
