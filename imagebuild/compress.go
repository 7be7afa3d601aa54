package imagebuild

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"runtime"

	"github.com/imprint-dev/imprint/imagewriter"
)

// Sums are the sizes and md5s of an image before and after compression
// (Fuel's raw_size, raw_md5, container_size, container_md5).
type Sums struct {
	RawSize       int64
	RawMD5        string
	ContainerSize int64
	ContainerMD5  string
	// Frames describes a zstd image's frames: written beside it as
	// <image>.manifest.json (imagewriter.FrameManifest).
	Frames *imagewriter.FrameManifest
}

// DefaultGzipMember is how much input each gzip member holds: the image
// writer's indexed-gzip default, so members inflate in parallel on the node.
const DefaultGzipMember = imagewriter.DefaultGzipMemberSize

// Compress copies src to dst in container (gzip, zstd or raw) and returns
// the sums of both sides. gzip is written as independent members of
// member bytes of input each (RFC 1952 allows any number; gzip -t, zcat
// and Go's gzip.Reader read them as one stream), each carrying the image
// writer's "IM" index in its header so the agent inflates them in parallel
// (imagewriter.MemberEncoder), compressed by up to workers goroutines in
// parallel, written in order.
func Compress(ctx context.Context, dst io.Writer, src io.Reader, container string, member, workers int) (Sums, error) {
	rawH, outH := md5.New(), md5.New()
	cw := &countWriter{w: io.MultiWriter(dst, outH)}
	cr := &countReader{r: io.TeeReader(src, rawH)}
	var err error
	var frames *imagewriter.FrameManifest
	switch container {
	case "gzip":
		err = parallelGzip(ctx, cw, cr, member, workers)
	case "zstd":
		// independent frames with a manifest, so the agent decodes them on
		// every core and checks each before it reaches the disk
		frames, err = imagewriter.WriteFrames(ctx, cw, ctxReader{ctx, cr}, imagewriter.FrameOptions{Workers: workers})
	case "raw":
		_, err = io.Copy(cw, ctxReader{ctx, cr})
	default:
		err = fmt.Errorf("container %q not supported", container)
	}
	if err != nil {
		return Sums{}, err
	}
	return Sums{RawSize: cr.n, RawMD5: hexSum(rawH), ContainerSize: cw.n, ContainerMD5: hexSum(outH), Frames: frames}, nil
}

func hexSum(h hash.Hash) string { return hex.EncodeToString(h.Sum(nil)) }

func parallelGzip(ctx context.Context, dst io.Writer, src io.Reader, member, workers int) error {
	if member <= 0 {
		member = DefaultGzipMember
	}
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	if member > imagewriter.MaxMemberInput {
		return fmt.Errorf("gzip member size %d: at most %d", member, imagewriter.MaxMemberInput)
	}
	newEncoder := func() (imagewriter.Encoder[[]byte], error) {
		enc, err := imagewriter.NewMemberEncoder(6)
		if err != nil {
			return nil, err
		}
		return func(in []byte) ([]byte, error) {
			b, err := enc.Encode(in)
			if err != nil {
				return nil, fmt.Errorf("gzip: %w", err)
			}
			return bytes.Clone(b), nil
		}, nil
	}
	return imagewriter.EncodeBlocks(ctx, src, member, workers, newEncoder, func(_ []byte, b []byte) error {
		if _, err := dst.Write(b); err != nil {
			return fmt.Errorf("write: %w", err)
		}
		return nil
	})
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

type countReader struct {
	r io.Reader
	n int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
