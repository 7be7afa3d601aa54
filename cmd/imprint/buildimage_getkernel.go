//go:build !imprint_ramdisk

package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/imprint-dev/imprint/imagebuild"
	"github.com/imprint-dev/imprint/internal/sys"
)

const getKernelUsage = `usage: imprint get-kernel [-o DIR] [-p PREFIX] IMAGE

Extracts the newest kernel and its initrd from an image, as
diskimage-builder's disk-image-get-kernel does, without mounting anything:
a filesystem image made by build-image (raw, gzip, zstd or xz; ext2/3/4;
the root or a separate /boot), a whole-disk image (MBR or GPT: the first
partition with a kernel), a qcow2 of either, or an ISO 9660 image (live or
installer: vmlinuz* and the initrd beside it). Writes DIR/PREFIX-vmlinuz
and DIR/PREFIX-initrd, creating DIR (PREFIX defaults to the image name up
to its first dot).
`

// runGetKernel is `imprint get-kernel IMAGE`.
func runGetKernel(ctx context.Context, env *cmdEnv, args []string) int {
	fs := newFlagSet(env, "get-kernel", getKernelUsage)
	out := fs.String("o", ".", "output directory")
	prefix := fs.String("p", "", "output file prefix")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return 2
	}
	image := fs.Arg(0)
	if *prefix == "" {
		*prefix, _, _ = strings.Cut(filepath.Base(image), ".")
	}
	k, i, err := imagebuild.GetKernel(ctx, &sys.Exec{}, image, *out, *prefix)
	if err != nil {
		fmt.Fprintf(env.stderr, "get-kernel: %v\n", err)
		return 1
	}
	fmt.Fprintln(env.stdout, k)
	fmt.Fprintln(env.stdout, i)
	return 0
}
