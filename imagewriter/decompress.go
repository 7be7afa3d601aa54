package imagewriter

import (
	"bufio"
	"context"
	"fmt"
	"io"
)

// Decompress reads r through the decoder its first bytes name (gzip,
// indexed gzip, zstd or xz; anything else is raw and passed through), the
// same detection and decoders Write uses, for callers that need an image's
// content rather than a device written. Close releases the decoder.
func Decompress(ctx context.Context, r io.Reader) (io.ReadCloser, Container, error) {
	br := bufio.NewReaderSize(r, 256<<10)
	head, err := br.Peek(8)
	if err != nil && err != io.EOF {
		return nil, "", fmt.Errorf("read header: %w", err)
	}
	c, err := Detect(head)
	if err != nil {
		return nil, "", err
	}
	opts := Options{}.withDefaults()
	dec, err := newDecoder(ctx, c, br, &opts)
	if err != nil {
		return nil, "", err
	}
	return decodeCloser{dec}, c, nil
}

type decodeCloser struct{ *decoder }

func (d decodeCloser) Close() error { return d.close() }
