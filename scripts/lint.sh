#!/usr/bin/env bash
# lint.sh (`make lint`): the static gates, each of which fails the run.
#   gofmt        every Go file (tracked or new) formatted: `gofmt -l` empty
#   go vet       with no tags and with every build tag the tree uses (read
#                from the //go:build lines, so a new tag is vetted too)
#   staticcheck  pinned in scripts/tools.sh, with the same tags
#   portable     the packages an operator's non-Linux machine needs build
#                and vet with GOOS=darwin (Linux-only code sits in _linux.go files)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/tools.sh
install_tools

fail=0
step() { printf 'lint: %s\n' "$*" >&2; }
bad() {
	printf 'lint: FAIL: %s\n' "$*" >&2
	fail=1
}

step "gofmt"
mapfile -t files < <(git ls-files -co --exclude-standard -- '*.go')
unformatted=$(gofmt -l "${files[@]}")
[[ -z $unformatted ]] || bad "gofmt -l lists files that are not formatted (run gofmt -w):"$'\n'"$unformatted"

# Build tags: every identifier in a //go:build line that is not an OS or
# architecture name, nor `tools` (internal/tools/tools.go is never compiled:
# it imports u-root's commands, which are programs, only to pin them), nor
# the bench's measuring build (imprint_bench_nodigest: with it the product's
# frame check would not be checked itself), nor the ramdisk's build of
# cmd/imprint (imprint_ramdisk: it leaves out commands the other builds'
# tests call); those two are vetted on their own below.
mapfile -t known < <(go tool dist list | tr '/' '\n' | sort -u)
tags=$(git grep -h '^//go:build' -- '*.go' | sed 's|^//go:build||' | tr -c 'A-Za-z0-9_\n' ' ' | tr ' ' '\n' |
	grep -v -x -F -e '' "${known[@]/#/-e}" -e unix -e cgo -e ignore -e tools -e imprint_bench_nodigest -e imprint_ramdisk | sort -u | paste -sd, -)
step "go vet (no tags; tags: ${tags:-none})"
go vet ./... || bad "go vet ./..."
if [[ -n $tags ]]; then
	go vet -tags "$tags" ./... || bad "go vet -tags $tags ./..."
fi
go vet -tags imprint_bench_nodigest ./imagewriter || bad "go vet -tags imprint_bench_nodigest ./imagewriter"
go vet -tags imprint_ramdisk ./cmd/imprint || bad "go vet -tags imprint_ramdisk ./cmd/imprint"

step "staticcheck $STATICCHECK_VERSION (tags: ${tags:-none})"
"$STATICCHECK" -tags "$tags" ./... || bad "staticcheck -tags $tags ./..."
"$STATICCHECK" -tags imprint_ramdisk ./cmd/imprint || bad "staticcheck -tags imprint_ramdisk ./cmd/imprint"

# vet type-checks the packages and their tests for darwin, and vets the
# files only other systems build (configdrive/device_other.go).
PORTABLE=(./api ./pxe ./provision ./partition ./configdrive ./inventory ./internal/sys ./internal/mountinfo)
step "GOOS=darwin go vet ${PORTABLE[*]}"
GOOS=darwin go vet "${PORTABLE[@]}" || bad "GOOS=darwin go vet ${PORTABLE[*]}"
# These build for darwin too; their tests are Linux-only.
PORTABLE_BUILD=(./bootstrap ./controller)
step "GOOS=darwin go build ${PORTABLE_BUILD[*]}"
GOOS=darwin go build "${PORTABLE_BUILD[@]}" || bad "GOOS=darwin go build ${PORTABLE_BUILD[*]}"

if ((fail)); then
	exit 1
fi
step "ok"
