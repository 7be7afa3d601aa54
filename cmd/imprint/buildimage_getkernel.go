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

Extracts the newest kernel and its initrd from a filesystem image made by
build-image (raw, gzip or zstd; ext2/3/4; the root image or a separate
/boot), as diskimage-builder's disk-image-get-kernel does, without mounting
anything: DIR/PREFIX-vmlinuz and DIR/PREFIX-initrd (PREFIX defaults to the
image name up to its first dot).
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
