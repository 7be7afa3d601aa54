//go:build !imprint_ramdisk

package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/imprint-dev/imprint/bootstrap/ramdiskelem"
	"github.com/imprint-dev/imprint/imagebuild"
)

const buildRamdiskUsage = `usage: imprint build-ramdisk --base INITRAMFS --element DIR|NAME [--element ...] [--elements-path P] -o OUT

Adds diskimage-builder-style elements to the bootstrap ramdisk, as
ramdisk-image-create does: OUT is the base initramfs (build/bootstrap/
<flavour>/initramfs.cpio.gz, made by make initramfs) followed by one more
gzip-compressed cpio archive that the kernel unpacks over it.

Elements are resolved as build-image resolves them: a directory, or a name
looked up in --elements-path (default $ELEMENTS_PATH), with their
element-deps (missing elements and cycles are errors). From each element:
  binary-deps.d/*  binaries (names in PATH or absolute paths), copied from
                   this host with their shared libraries and ELF interpreter
  ramdisk-files/   a tree copied into the ramdisk's root
  extra-data.d/*   hooks run here, in name order, with TARGET_ROOT (the tree
                   that becomes the archive) and TMP_HOOKS_PATH set
  init.d/*         scripts the ramdisk runs once, in name order, after the
                   network is up and before the agent starts (/etc/imprint/init.d)
Any other *.d directory is refused: the ramdisk has no chroot phase.
`

// runBuildRamdisk is `imprint build-ramdisk`.
func runBuildRamdisk(ctx context.Context, env *cmdEnv, args []string) int {
	fs := newFlagSet(env, "build-ramdisk", buildRamdiskUsage)
	var elements stringList
	base := fs.String("base", "", "the base initramfs (required)")
	fs.Var(&elements, "element", "element directory or name (repeatable; at least one)")
	epath := fs.String("elements-path", os.Getenv("ELEMENTS_PATH"), "colon-separated element search path")
	out := fs.String("o", "", "output initramfs (required)")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	fail := func(format string, a ...any) int {
		fmt.Fprintf(env.stderr, "build-ramdisk: "+format+"\n", a...)
		return 1
	}
	switch {
	case fs.NArg() != 0:
		return fail("unexpected argument %q", fs.Arg(0))
	case *base == "":
		return fail("--base: required (the initramfs to extend, e.g. build/bootstrap/cloud/initramfs.cpio.gz)")
	case len(elements) == 0:
		return fail("--element: at least one element required")
	case *out == "":
		return fail("-o: required")
	}
	if a, err := filepath.Abs(*base); err == nil {
		if b, err := filepath.Abs(*out); err == nil && a == b {
			return fail("-o %s: must not be the base initramfs", *out)
		}
	}
	log := slog.New(slog.NewTextHandler(env.stderr, nil)).With("cmd", "build-ramdisk")
	dirs, err := imagebuild.ElementSearch{Path: imagebuild.SplitElementsPath(*epath)}.Resolve(elements)
	if err != nil {
		return fail("%v", err)
	}
	elems, err := ramdiskelem.Load(dirs)
	if err != nil {
		return fail("%v", err)
	}
	plan, err := ramdiskelem.Build(elems, ramdiskelem.OSHost{})
	if err != nil {
		return fail("%v", err)
	}
	baseData, err := os.ReadFile(*base)
	if err != nil {
		return fail("--base: %v", err)
	}
	work, err := os.MkdirTemp("", "imprint-build-ramdisk-")
	if err != nil {
		return fail("%v", err)
	}
	defer os.RemoveAll(work)
	archive, err := ramdiskelem.Apply(ctx, plan, work, env.stderr, log)
	if err != nil {
		return fail("%v", err)
	}
	all, err := ramdiskelem.Concat(baseData, archive)
	if err != nil {
		return fail("--base %s: %v", *base, err)
	}
	tmp := *out + ".tmp"
	if err := os.WriteFile(tmp, all, 0o644); err != nil {
		return fail("-o: %v", err)
	}
	if err := os.Rename(tmp, *out); err != nil {
		os.Remove(tmp)
		return fail("-o: %v", err)
	}
	log.Info("ramdisk written", "out", *out, "elements", len(elems), "entries", len(plan.Entries),
		"init.d", len(plan.Init), "base_bytes", len(baseData), "element_archive_bytes", len(archive))
	return 0
}
