#!/usr/bin/env bash
# VM tier (`make test-vm`): tests built with the `vm` tag and named TestVM*,
# which boot the bootstrap initramfs in QEMU (TCG) with virtual disks.
# Builds (or reuses, when its inputs are unchanged) the test ramdisk first:
# the cloud kernel flavour, smaller and faster to boot than the generic one.
# The target OS image the provisioning tests need is built (once, cached
# under build/target-images/) by the tests themselves: vmtest.BuildTargetImage.
set -euo pipefail
cd "$(dirname "$0")/.."
# The Go release go.mod's toolchain line names (security fixes), fetched
# through the module proxy even where GOTOOLCHAIN=local is the default.
export GOTOOLCHAIN=auto
KERNEL_FLAVOUR=cloud timeout 20m scripts/mkinitramfs.sh
export IMPRINT_VM_KERNEL=$PWD/build/bootstrap/cloud/vmlinuz
export IMPRINT_VM_INITRD=$PWD/build/bootstrap/cloud/initramfs.cpio.gz
exec go test -tags vm -count=1 -p 1 -run '^TestVM' -timeout 75m ./...
