#!/usr/bin/env bash
# demo.sh: `make demo`, the README's main command. Builds the bootstrap
# ramdisk (cloud kernel flavour: smaller, faster under TCG); scripts/demo
# builds the target OS image ("/" and "/boot", cached under
# build/target-images/), then runs one QEMU
# node through the whole loop with the reference controller: PXE boot →
# agent up → provisioned → rebooted → OS up → cloud-init done, twice (the
# second round reprovisions), printing the timeline and the artifacts.
# Needs root (the image build uses loop devices and chroot); DEMO_FLAGS adds
# flags of scripts/demo (e.g. "-console" or "-rounds 1"); FIRMWARE=uefi runs
# the node under OVMF (UEFI) instead of SeaBIOS.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "== bootstrap ramdisk (make initramfs KERNEL_FLAVOUR=cloud)"
KERNEL_FLAVOUR=cloud scripts/mkinitramfs.sh
echo "== the loop"
exec go run ./scripts/demo -firmware "${FIRMWARE:-bios}" ${DEMO_FLAGS:-}
