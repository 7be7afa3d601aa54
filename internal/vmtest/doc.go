// Package vmtest is the VM test tier's harness: it boots the real bootstrap
// initramfs (scripts/mkinitramfs.sh, KERNEL_FLAVOUR=cloud) in QEMU with TCG
// (KVM does not work on the CI machines), with raw sparse disk images of
// given sizes and serials on virtio-blk (or virtio-scsi), virtio-rng for entropy and
// user-mode networking forwarding the agent's port to 127.0.0.1.
//
// [Start] waits for the agent's "imprint agent ready" line on the serial
// console (QEMU's slirp accepts TCP before the guest listens, so polling the
// port proves nothing) and gives the test an API [Client]. Every wait is
// bounded: a kernel panic, the agent or ramdisk-init exiting (the guest runs
// with imprint.on_exit=poweroff and QEMU with -no-reboot) or QEMU exiting
// fails the test at once with the serial log's tail; the boot deadline
// catches everything else. [VM.Stop] powers the guest off through the agent
// and kills QEMU after a bounded wait. The disk images stay on the host for
// the test to inspect (sgdisk, blkid -p -O, dumpe2fs 'img?offset=N').
//
// A provisioned disk boots on its own with [Options.DiskBoot] ([BootDisk]):
// the firmware, the grub the agent installed, the OS's kernel (its banner,
// [KernelBanner], is the ready line); the guest's sshd is forwarded
// ([VM.SSH]) and [VM.WaitPhoneHome] waits for cloud-init's phone_home POST
// on a [HostServer]'s [PhoneHome] recorder. [BuildTargetImage] makes the
// real OS image to provision (imagebuild's default bookworm set, "/" and
// "/boot"), once, cached under build/target-images/ by its config.
//
// Tests using it carry the `vm` build tag and are named TestVM*; they run
// with scripts/test-vm.sh (make test-vm). Without qemu-system-x86_64 or the
// built image they skip, unless CI is set, where they fail.
package vmtest
