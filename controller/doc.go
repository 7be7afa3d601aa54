// Package controller is imprint's reference controller: the other end of the
// agent's callbacks, enough to run the whole loop on a lab network or in
// QEMU (`imprint controller`, the end-to-end test).
//
// It serves the bootstrap kernel and initramfs (GET /boot/vmlinuz,
// /boot/initramfs.cpio.gz) and the target images (GET /images/<name>, with
// Range) over plain HTTP, and answers iPXE per MAC (GET /ipxe?mac=...): the
// bootstrap, with imprint.controller= and imprint.token= on its command
// line, until the node is provisioned, then the local boot (exit or
// sanboot). The agent's discovery (POST /discovery) is matched to a node by
// the MACs of its inventory; the controller then composes a Nailgun-format
// provision.json for the discovered disks (see Compose) and posts it to the
// agent's /v1/provision. Heartbeats (POST /progress) are kept; the result
// (POST /result) flips a successful node to local boot and calls the agent's
// /v1/reboot, a failure leaves it on the bootstrap. The callbacks need the
// bearer token (compared in constant time). The provisioned OS's cloud-init
// phone_home posts to /phone-home/<mac> (lower-case, colons; dashes are
// accepted too), without credentials: cloud-init sends none.
//
// Every step is an Event of the node's current round; Reprovision flips the
// node back, resets it through Power and starts the next round, whose
// provision.json is posted with force.
//
// Security: iPXE fetches its script without credentials, so the token is
// readable by anyone who can reach /ipxe, as with every PXE setup that puts
// it on the kernel command line; keep the controller on the provisioning
// network.
package controller
