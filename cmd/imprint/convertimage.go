package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/imprint-dev/imprint/imagewriter"
)

const convertImageUsage = `usage: imprint convert-image [flags] IN OUT.zst

Converts the image IN (a file: gzip, indexed gzip, zstd, xz or raw, told by
its magic bytes) into a multi-frame zstd image: OUT.zst, made of independent
zstd frames of --frame-size uncompressed bytes (an ordinary zstd file to
zstd -d), and OUT.zst.manifest.json beside it (each frame's offset, sizes and
sha256, which frames are zeroes, the digests of the whole image and file).
imprint write-image and the agent decode such an image on every core, check
every frame before it reaches the disk and resume or change mirrors at a
frame boundary. Serve both files side by side.
`

// runConvertImage is `imprint convert-image IN OUT.zst`.
func runConvertImage(ctx context.Context, env *cmdEnv, args []string) int {
	fs := newFlagSet(env, "convert-image", convertImageUsage)
	var fo imagewriter.FrameOptions
	var frameMiB int
	fs.IntVar(&frameMiB, "frame-size", imagewriter.DefaultFrameSize>>20, fmt.Sprintf("uncompressed MiB per frame (%d-%d)", imagewriter.MinFrameSize>>20, imagewriter.MaxFrameSize>>20))
	fs.IntVar(&fo.Level, "level", 3, "zstd level (1 fastest, 3 default, 7, 11 best)")
	fs.IntVar(&fo.Workers, "workers", 0, "frames compressed in parallel (default: every core)")
	pos, code, ok := parseInterspersed(fs, args)
	if !ok {
		return code
	}
	if len(pos) != 2 {
		fmt.Fprintf(env.stderr, "convert-image: want IN and OUT.zst, got %d argument(s)\n\n", len(pos))
		fs.Usage()
		return 2
	}
	in, out := pos[0], pos[1]
	if !strings.HasSuffix(out, ".zst") {
		fmt.Fprintf(env.stderr, "convert-image: OUT %q: must end in .zst (the writer looks for OUT.manifest.json beside a .zst image)\n", out)
		return 2
	}
	fo.FrameSize = frameMiB << 20
	if fo.FrameSize < imagewriter.MinFrameSize || fo.FrameSize > imagewriter.MaxFrameSize {
		fmt.Fprintf(env.stderr, "convert-image: --frame-size %d: want %d to %d (MiB)\n", frameMiB, imagewriter.MinFrameSize>>20, imagewriter.MaxFrameSize>>20)
		return 2
	}
	if err := convertImage(ctx, env, in, out, fo); err != nil {
		fmt.Fprintf(env.stderr, "convert-image: %v\n", err)
		return 1
	}
	return 0
}

func convertImage(ctx context.Context, env *cmdEnv, in, out string, fo imagewriter.FrameOptions) (err error) {
	t0 := time.Now()
	src, err := os.Open(in)
	if err != nil {
		return err
	}
	defer src.Close()
	img, c, err := imagewriter.Decompress(ctx, src)
	if err != nil {
		return fmt.Errorf("%s: %w", in, err)
	}
	defer img.Close()
	part := out + ".part"
	dst, err := os.Create(part)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			dst.Close()
			os.Remove(part)
		}
	}()
	m, err := imagewriter.WriteFrames(ctx, dst, img, fo)
	if err != nil {
		return fmt.Errorf("%s (%s) to %s: %w", in, c, out, err)
	}
	if err = dst.Sync(); err != nil {
		return err
	}
	if err = dst.Close(); err != nil {
		return err
	}
	b, err := m.Marshal()
	if err != nil {
		return err
	}
	// The image first, then its manifest: a manifest never describes a
	// file that is not there yet.
	if err = os.Rename(part, out); err != nil {
		return err
	}
	if err = writeFileAtomic(out+imagewriter.FrameManifestSuffix, b); err != nil {
		return err
	}
	zero := 0
	for _, f := range m.Frames {
		if f.Zero {
			zero++
		}
	}
	fmt.Fprintf(env.stdout, "%s (%s) -> %s: %d bytes in %d frames of %d MiB (%d all zeroes), %d compressed, in %s\nimage sha256 %s\nfile sha256 %s\nmanifest %s\n",
		in, c, out, m.Size, len(m.Frames), m.FrameSize>>20, zero, m.CompressedSize, time.Since(t0).Round(time.Millisecond),
		m.SHA256, m.CompressedSHA256, out+imagewriter.FrameManifestSuffix)
	return nil
}

func writeFileAtomic(path string, b []byte) error {
	tmp := path + ".part"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
