// Package controller is imprint's reference controller: the other end of the
// agent's callbacks, enough to run the whole loop on a lab network or in
// QEMU (`imprint controller`, the end-to-end tests).
//
// It serves the bootstrap kernel and initramfs (GET /boot/vmlinuz,
// /boot/initramfs.cpio.gz) and the target images (GET /images/<name>, with
// Range) over plain HTTP, and answers iPXE per MAC (GET /ipxe?mac=...): the
// bootstrap, with imprint.controller=<base>/agent/<mac> and the node's own
// token of the round on its command line, until the node is provisioned,
// then the local boot (exit or sanboot) until an operator asks for a
// reprovision. The agent's discovery (POST /agent/<mac>/discovery, bearer:
// the node's token; its inventory must list the node's MAC) makes the
// controller compose a Nailgun-format provision.json for the discovered disks
// (see Compose) and post it to the agent's /v1/provision with the same
// token. Heartbeats (POST /agent/<mac>/progress) are kept; the result (POST
// /agent/<mac>/result) flips a successful node to local boot and calls the
// agent's /v1/reboot, a failure leaves it on the bootstrap. The provisioned
// OS's cloud-init phone_home posts to /phone-home/<mac>/<secret>, the
// secret being the node's of the round, in its configdrive.
//
// Every step is an Event of the node's current round. The state lives in a
// Store (SQLite, or PostgreSQL shared by several controllers): every change
// takes the node's lease, reads its row, changes it and saves it with its
// events in one transaction, so a restarted controller, or another one once
// the lease expired, carries on from where the last one stopped. The
// operator's API (/v1/nodes, bearer Config.Token, described by openapi.yaml)
// shows the nodes and asks for reprovisions.
//
// Security: a node's token and phone-home secret are made anew for every
// bootstrap script and are valid for that node only; the operator token is
// never handed to a node; no URL handed to a node comes from a request
// header. GET /ipxe is unauthenticated, as PXE needs: whoever knows a MAC can
// fetch that node's script (rotating its token); keep the controller on the
// provisioning network.
package controller
