# imprint — see README.md. `make demo` runs the main job, `make test` every test tier.
# Both install what they need (scripts/deps.sh) on a fresh Debian machine.

GO      ?= go
BIN     := bin/imprint
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
export CGO_ENABLED := 0
export GOFLAGS     := -trimpath
# go.mod's `toolchain` line names the Go release with the security fixes the
# build needs; `auto` lets the go command fetch it through the module proxy
# even where the environment or GOROOT/go.env says GOTOOLCHAIN=local.
export GOTOOLCHAIN := auto

.PHONY: all build deps vulncheck lint race test test-unit test-loop test-vm test-slow fuzz bench fleet-sim demo clean initramfs pxe image

all: build

build:
	$(GO) build -ldflags "-s -w -X main.version=$(VERSION)" -o $(BIN) ./cmd/imprint

# deps installs the Debian packages listed in scripts/apt-packages.txt (when
# running as root and any is missing) and downloads the Go modules.
deps:
	scripts/deps.sh

# vulncheck runs govulncheck (pinned) over imprint and the u-root commands
# baked into the ramdisk, against a database built from the golang.org/x/vulndb
# module (VULNDB_VERSION, through the module proxy; no other network): any
# reachable vulnerability fails it. Bump VULNDB_VERSION to see newer reports.
GOVULNCHECK_VERSION ?= v1.10.0
VULNDB_VERSION      ?= v0.0.0-20261105234957-e22db6528018
VULNDB              := build/vulndb/$(VULNDB_VERSION)
UROOT_CMDS          = $(shell sed -n 's|^\s*_ "\(github.com/u-root/u-root/cmds/[^"]*\)"|\1|p' internal/tools/tools.go)
vulncheck:
	GOBIN=$(CURDIR)/build/tools/govulncheck-$(GOVULNCHECK_VERSION) $(GO) install golang.org/x/vuln/cmd/govulncheck@$(GOVULNCHECK_VERSION)
	@mkdir -p build/vulndb
	test -f $(VULNDB)/index/modules.json || { \
		$(GO) mod download -json golang.org/x/vulndb@$(VULNDB_VERSION) > build/vulndb/module.json && \
		$(GO) run ./internal/tools/mkvulndb -module build/vulndb/module.json -out $(VULNDB); }
	build/tools/govulncheck-$(GOVULNCHECK_VERSION)/govulncheck -db file://$(CURDIR)/$(VULNDB) ./... $(UROOT_CMDS)

# lint: gofmt, go vet with every build tag the tree uses, staticcheck (pinned
# in scripts/tools.sh), and the non-Linux build of the portable packages.
lint:
	scripts/lint.sh

# race: the unit tests of the packages with goroutines or HTTP servers under
# the race detector (cgo for this target only: scripts/race.sh).
race:
	scripts/race.sh

# test runs the gates and every tier: vulncheck (a reachable known
# vulnerability fails CI), lint, race, unit (no root), loop devices (root),
# the QEMU VM tier.
test: deps
	$(MAKE) vulncheck
	$(MAKE) lint
	$(MAKE) race
	$(MAKE) test-unit
	$(MAKE) test-loop
	$(MAKE) test-vm

test-unit:
	$(GO) test -count=1 ./...

# Loop-device tier: real block devices over files in temp dirs; needs root.
test-loop:
	scripts/test-loop.sh

# VM tier: the bootstrap initramfs booted in QEMU (TCG).
test-vm:
	scripts/test-vm.sh

# The loop and VM tiers plus the extra-slow scenarios behind IMPRINT_VM_SLOW=1 (never
# part of make test: docs/testing.md).
test-slow:
	IMPRINT_VM_SLOW=1 scripts/test-loop.sh
	IMPRINT_VM_SLOW=1 scripts/test-vm.sh

# initramfs builds the bootstrap ramdisk into build/bootstrap/$(KERNEL_FLAVOUR)/
# (vmlinuz, initramfs.cpio.gz): u-root + imprint + storage tools + modules.
# KERNEL_FLAVOUR=amd64 (Debian's generic kernel, bare metal) or cloud (VMs).
# RAMDISK_ELEMENTS (space-separated element directories or names found in
# ELEMENTS_PATH) are added with `imprint build-ramdisk`: initramfs.cpio.gz is
# then the base followed by the elements' archive (mkinitramfs.sh rewrites
# the base on every run, so elements are never appended twice).
KERNEL_FLAVOUR ?= amd64
RAMDISK_ELEMENTS ?=
initramfs:
	KERNEL_FLAVOUR=$(KERNEL_FLAVOUR) scripts/mkinitramfs.sh
ifneq ($(strip $(RAMDISK_ELEMENTS)),)
	$(MAKE) build
	$(BIN) build-ramdisk --base build/bootstrap/$(KERNEL_FLAVOUR)/initramfs.cpio.gz \
		$(foreach e,$(RAMDISK_ELEMENTS),--element $(e)) -o build/bootstrap/$(KERNEL_FLAVOUR)/initramfs+elements.cpio.gz
	mv build/bootstrap/$(KERNEL_FLAVOUR)/initramfs+elements.cpio.gz build/bootstrap/$(KERNEL_FLAVOUR)/initramfs.cpio.gz
endif

# pxe writes the iPXE/pxelinux scripts booting that ramdisk into build/pxe/.
# PXE_URL is where an HTTP server serves build/bootstrap/$(KERNEL_FLAVOUR)/
# (10.0.2.2 is the host as QEMU's user-mode network sees it); the agent token
# is PXE_TOKEN_FILE, generated when missing.
PXE_URL        ?= http://10.0.2.2:8080
PXE_CONTROLLER ?= $(PXE_URL)
PXE_TOKEN_FILE ?= build/pxe/token
pxe: build
	@mkdir -p build/pxe
	@test -s $(PXE_TOKEN_FILE) || (umask 077; od -An -N16 -tx1 /dev/urandom | tr -d ' \n' > $(PXE_TOKEN_FILE))
	$(BIN) pxe --out build/pxe --kernel-url $(PXE_URL)/vmlinuz --initrd-url $(PXE_URL)/initramfs.cpio.gz \
		--controller $(PXE_CONTROLLER) --token-file $(PXE_TOKEN_FILE)

# fuzz runs each fuzz target for FUZZTIME (corpus kept under testdata/fuzz).
FUZZTIME ?= 60s
fuzz:
	$(GO) test ./provision -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 3s
	$(GO) test ./provision -run '^$$' -fuzz FuzzCheckMkfsOptions -fuzztime $(FUZZTIME)
	$(GO) test ./partition -run '^$$' -fuzz FuzzParseValidatePlan -fuzztime $(FUZZTIME)
	$(GO) test ./prepare -run '^$$' -fuzz FuzzPrepare -fuzztime $(FUZZTIME)
	$(GO) test ./netdata -run '^$$' -fuzz FuzzParsePlan -fuzztime $(FUZZTIME)
	$(GO) test ./netdata -run '^$$' -fuzz FuzzFromCmdline -fuzztime $(FUZZTIME)

# bench: image writer vs curl|gzip|dd and friends (README, Performance); minutes, never in test.
bench:
	scripts/bench-image.sh

# fleet-sim: the fleet simulation (internal/fleetsim, README "Fleet
# simulation"): the controller process on SQLite and on PostgreSQL, stock
# nginx serving a real image, NODES simulated nodes (comma separated sizes),
# then the same with the controller SIGKILLed mid-run; prints the table and
# writes build/fleet-sim/report.md. Minutes; never part of make test.
NODES ?= 50,200,1000
fleet-sim: build
	IMPRINT_BIN=$(CURDIR)/$(BIN) $(GO) test -tags fleetsim -run '^TestFleetSim$$' -timeout 0 -count=1 -v ./internal/fleetsim \
		-args -nodes=$(NODES) -out $(CURDIR)/build/fleet-sim/report.md

# image builds the default bootable target image (Debian bookworm from the
# host's apt mirror: kernel, grub-pc, cloud-init, lvm2, mdadm, ssh) into
# build/images/ (debian-12-amd64.img.gz + .yaml) for the VM end-to-end test.
# Needs root; minutes. IMAGE_FLAGS adds build-image flags, e.g.
# IMAGE_FLAGS="--kernel generic" or "--disk build/images/debian-12-amd64.qcow2".
IMAGE_FLAGS ?=
image: build
	$(BIN) build-image --variant minbase --output $(CURDIR)/build/images --cache $(CURDIR)/build/imagebuild-cache \
		--image_build_dir $(CURDIR)/build/image-work $(IMAGE_FLAGS) examples/image-build.json

# FIRMWARE=uefi: the demo node boots OVMF (UEFI) instead of SeaBIOS.
FIRMWARE ?= bios
demo: deps build
	FIRMWARE=$(FIRMWARE) scripts/demo.sh

clean:
	rm -rf bin build
