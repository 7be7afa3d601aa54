package imagewriter

import (
	"bufio"
	"context"
	"fmt"
	"io"
)

// Decompress returns the image held in r, decompressed: gzip (plain or
// indexed), zstd, xz or raw, told by its magic bytes (as Write detects it).
// close releases the decoder. `imprint convert-image` uses it to turn any
// image into a multi-frame zstd one.
func Decompress(ctx context.Context, r io.Reader) (img io.Reader, c Container, close func() error, err error) {
	br := bufio.NewReaderSize(r, 256<<10)
	head, err := br.Peek(8)
	if len(head) == 0 {
		if err == io.EOF {
			return nil, "", nil, fmt.Errorf("the image is empty")
		}
		return nil, "", nil, err
	}
	if c, err = Detect(head); err != nil {
		return nil, "", nil, err
	}
	opts := Options{}.withDefaults()
	dec, err := newDecoder(ctx, c, br, &opts)
	if err != nil {
		return nil, "", nil, err
	}
	return dec, c, dec.close, nil
}
