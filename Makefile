# imprint — see README.md. `make demo` runs the main job, `make test` every test tier.
# Both install what they need (scripts/deps.sh) on a fresh Debian machine.

GO      ?= go
BIN     := bin/imprint
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
export CGO_ENABLED := 0
export GOFLAGS     := -trimpath

.PHONY: all build deps test test-unit test-loop test-vm fuzz bench demo clean

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

# fuzz runs each fuzz target for FUZZTIME (corpus kept under testdata/fuzz).
FUZZTIME ?= 60s
fuzz:
	$(GO) test ./partition -run '^$$' -fuzz FuzzParseValidatePlan -fuzztime $(FUZZTIME)

# bench: image writer vs curl|gzip|dd and friends (docs/bench.md); minutes, never in test.
bench:
	scripts/bench-image.sh

demo: deps build
	scripts/demo.sh

clean:
	rm -rf bin build
