#!/usr/bin/env bash
# Loop-device tier (`make test-loop`): tests built with the `loop` tag and
# named TestLoop*, against loop devices over files in temp dirs. Needs root;
# without it the tier says so and is skipped (CI runs as root).
set -euo pipefail
cd "$(dirname "$0")/.."
# The Go release go.mod's toolchain line names (security fixes), fetched
# through the module proxy even where GOTOOLCHAIN=local is the default.
export GOTOOLCHAIN=auto
if [[ $(id -u) -ne 0 ]]; then
	echo "test-loop: skipped (needs root for losetup)" >&2
	exit 0
fi
# -p 1: packages one at a time, so loop devices and mkfs runs don't compete.
exec go test -tags loop -count=1 -p 1 -run '^TestLoop' -timeout 20m ./...
