// Package configdrive renders the cloud-init seed a provisioned node reads on
// first boot from Nailgun's provision data, and writes it as a filesystem
// image onto the configdrive partition (or a file).
//
// Build is pure: it validates the document (every problem with its field
// path), hashes user_accounts passwords with SHA-512-crypt (never stored in
// clear), strips Nailgun's literal quotes and renders
//
//   - meta-data: a stable instance id (UUID over uid, hostname and admin MAC),
//     local-hostname, root's public keys;
//   - network config for the admin NIC (the interface whose MAC is
//     kernel_options["netcfg/choose_interface"]): static address, gateway
//     ks_meta.gw, name servers and search domains, matched by MAC. NoCloud
//     gets network-config version 1 (renderable by ifupdown's eni renderer,
//     unlike v2 "to: default" on cloud-init 22.4), config-2 gets OpenStack
//     network_data.json;
//   - user-data: MIME multipart of a text/cloud-boothook (DNS, NTP, sysctl,
//     sshd once per instance) and a text/cloud-config (hostname, fqdn, users
//     with sudo rules and keys, timezone, rsyslog to the master, nailgun-agent,
//     /etc/nailgun_systemtype "target", udev NIC names, mcollective and
//     puppet configuration, optional phone_home), the semantics of
//     fuel-agent's cloud-init templates, selected by
//     ks_meta.cloud_init_templates where given.
//
// Image, Write, WriteFile and WriteDevice lay the content out as NoCloud
// (meta-data, user-data, network-config; label cidata) or config-2
// (openstack/latest/{meta_data.json,user_data,network_data.json}; label
// config-2) on FAT (FAT16 on 512-byte sectors, FAT12 below 5 MiB, FAT32 with
// 4 KiB sectors on 4Kn disks) or ISO9660 with Rock Ridge names, sized to the
// partition exactly.
package configdrive
