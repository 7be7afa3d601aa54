# imprint — see README.md. `make demo` runs the main job, `make test` every test tier.
# Both install what they need (scripts/deps.sh) on a fresh Debian machine.

GO      ?= go
BIN     := bin/imprint
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
export CGO_ENABLED := 0
export GOFLAGS     := -trimpath

.PHONY: all build deps test test-unit test-loop test-vm fuzz bench demo clean initramfs pxe image

all: build

build:
	$(GO) build -ldflags "-s -w -X main.version=$(VERSION)" -o $(BIN) ./cmd/imprint

# deps installs the Debian packages listed in scripts/apt-packages.txt (when
# running as root and any is missing) and downloads the Go modules.
deps:
	scripts/deps.sh

# test runs every tier: unit (no root), loop devices (root), the QEMU VM tier.
test: deps
	$(MAKE) test-unit
	$(MAKE) test-loop
	$(MAKE) test-vm

test-unit:
	$(GO) vet ./...
	$(GO) test -count=1 ./...

# Loop-device tier: real block devices over files in temp dirs; needs root.
test-loop:
	scripts/test-loop.sh

# VM tier: the bootstrap initramfs booted in QEMU (TCG).
test-vm:
	scripts/test-vm.sh

# initramfs builds the bootstrap ramdisk into build/bootstrap/$(KERNEL_FLAVOUR)/
# (vmlinuz, initramfs.cpio.gz): u-root + imprint + storage tools + modules.
# KERNEL_FLAVOUR=amd64 (Debian's generic kernel, bare metal) or cloud (VMs).
KERNEL_FLAVOUR ?= amd64
initramfs:
	KERNEL_FLAVOUR=$(KERNEL_FLAVOUR) scripts/mkinitramfs.sh

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
	$(GO) test ./provision -run '^$$' -fuzz FuzzParse -fuzztime $(FUZZTIME) -fuzzminimizetime 3s
	$(GO) test ./partition -run '^$$' -fuzz FuzzParseValidatePlan -fuzztime $(FUZZTIME)
	$(GO) test ./netdata -run '^$$' -fuzz FuzzParsePlan -fuzztime $(FUZZTIME)
	$(GO) test ./netdata -run '^$$' -fuzz FuzzFromCmdline -fuzztime $(FUZZTIME)

# bench: image writer vs curl|gzip|dd and friends (README, Performance); minutes, never in test.
bench:
	scripts/bench-image.sh

# image builds the default bootable target image (Debian bookworm from the
# host's apt mirror: kernel, grub-pc, cloud-init, lvm2, mdadm, ssh) into
# build/images/ (debian-12-amd64.img.gz + .yaml) for the VM end-to-end test.
# Needs root; minutes. IMAGE_FLAGS adds build-image flags, e.g.
# IMAGE_FLAGS="--kernel generic" or "--disk build/images/debian-12-amd64.qcow2".
IMAGE_FLAGS ?=
image: build
	$(BIN) build-image --variant minbase --output $(CURDIR)/build/images --cache $(CURDIR)/build/imagebuild-cache \
		--image_build_dir $(CURDIR)/build/image-work $(IMAGE_FLAGS) examples/image-build.json

demo: deps build
	scripts/demo.sh

clean:
	rm -rf bin build
