#!/usr/bin/env bash
# VM tier (`make test-vm`): tests built with the `vm` tag and named TestVM*,
# which boot the bootstrap initramfs in QEMU (TCG) with virtual disks.
set -euo pipefail
cd "$(dirname "$0")/.."
exec go test -tags vm -count=1 -p 1 -run '^TestVM' -timeout 30m ./...
