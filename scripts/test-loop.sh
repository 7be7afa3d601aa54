#!/usr/bin/env bash
# Loop-device tier (`make test-loop`): tests built with the `loop` tag and
# named TestLoop*, against loop devices over files in temp dirs. Needs root;
# without it the tier says so and is skipped on a workstation, and FAILS
# under CI=true (CI runs as root: there a tier that did not run is a bug).
set -euo pipefail
cd "$(dirname "$0")/.."
# The Go release go.mod's toolchain line names (security fixes), fetched
# through the module proxy even where GOTOOLCHAIN=local is the default.
export GOTOOLCHAIN=auto
if [[ $(id -u) -ne 0 ]]; then
	case ${CI:-} in
	"" | 0 | false | FALSE | False)
		echo "test-loop: skipped: the loop tier needs root (losetup, mount, mkfs on loop devices); under CI=true this fails" >&2
		exit 0
		;;
	esac
	echo "test-loop: FAIL: the loop tier needs root (losetup, mount, mkfs on loop devices) and CI=$CI forbids skipping it; run make test-loop as root" >&2
	exit 1
fi
# -p 1: packages one at a time, so loop devices and mkfs runs don't compete.
exec go test -tags loop -count=1 -p 1 -run '^TestLoop' -timeout 20m ./...
