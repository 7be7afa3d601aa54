#!/usr/bin/env bash
# Installs what the build and the tests need on a fresh Debian machine:
# the packages in scripts/apt-packages.txt (only when root and some are
# missing), the Go modules, and the pinned Go tools of scripts/tools.sh
# (staticcheck, for make lint).
set -euo pipefail
cd "$(dirname "$0")/.."
# The Go release go.mod's toolchain line names (security fixes), fetched
# through the module proxy even where GOTOOLCHAIN=local is the default.
export GOTOOLCHAIN=auto
source scripts/tools.sh

mapfile -t pkgs < <(grep -v '^\s*#' scripts/apt-packages.txt | awk 'NF{print $1}')
missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
	if [[ $(id -u) -ne 0 ]]; then
		echo "deps: missing Debian packages (run as root to install): ${missing[*]}" >&2
	else
		echo "deps: installing ${missing[*]}"
		export DEBIAN_FRONTEND=noninteractive
		apt-get -o DPkg::Lock::Timeout=600 update -qq
		apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
	fi
fi
go mod download
go version >/dev/null # fetches the toolchain go.mod names
install_tools
