// Package bootstrap is the ramdisk side of imprint: what runs in the PXE-booted
// u-root initramfs before the agent, and the PXE scripts that boot it.
//
// u-root's init mounts /proc, /sys, devtmpfs and /tmp, then starts /bin/uinit,
// which is `imprint ramdisk-init` (cmd/imprint). That runs a fixed list of
// declarative [Step]s, each logged with its duration to the console:
//
//  1. mounts: /run, /dev/pts, /dev/shm (LVM and mdadm keep state in /run);
//  2. modules: the always-load list (etc/imprint/modules.conf), then every
//     driver whose modules.alias pattern matches a device's modalias under
//     /sys/devices, repeated until no new module binds (virtio_pci exposes the
//     virtio devices whose drivers match next) — a coldplug without udev;
//  3. entropy: wait, bounded, until the kernel's CRNG is initialized, so Go's
//     crypto/rand (TLS, DHCP transaction IDs) never blocks;
//  4. network: the node's network document (config-2 network_data.json,
//     package netdata) from the per-node archive (/etc/imprint/network_data.json,
//     package bootstrap/nodearchive), else from the kernel command line's
//     dracut-style ip=, bond=, vlan=, ifname=, nameserver= (imprint.ip= takes
//     the place of ip=): bonds, VLANs, static IPv4/IPv6, DHCPv4, DHCPv6, SLAAC,
//     routes, DNS, applied with netlink and written, NICs named by MAC, to
//     /run/imprint/network_data.json for the installed OS; with neither,
//     DHCPv4 on every NIC with a link;
//
// and finally starts and supervises `imprint agent --kernel-cmdline /proc/cmdline`
// (imprint.on_exit= says what happens when it exits), which reads
// its configuration (imprint.controller=, imprint.token=, imprint.listen=...)
// from the kernel command line.
//
// Every step refuses to run unless the process is PID 1's child in an
// initramfs and was started with --i-am-the-ramdisk ([CheckRamdisk]): none of
// this may touch a machine's real network or modules by accident.
//
// The pure parts (command line and ip= parsing, modules.alias matching and
// dependency ordering, PXE script rendering) are unit-tested; the steps
// themselves are exercised by the VM tier (internal/vmtest).
package bootstrap
