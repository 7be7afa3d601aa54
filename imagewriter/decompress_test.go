package imagewriter

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"
)

func TestDecompress(t *testing.T) {
	img := testImage(t)
	for _, c := range []Container{ContainerRaw, ContainerGzip, ContainerZstd, ContainerXZ} {
		t.Run(string(c), func(t *testing.T) {
			data := img
			if c != ContainerRaw {
				data = compress(t, c, img)
			}
			rc, got, err := Decompress(context.Background(), bytes.NewReader(data))
			if err != nil {
				t.Fatal(err)
			}
			defer rc.Close()
			out, err := io.ReadAll(rc)
			if err != nil {
				t.Fatal(err)
			}
			if got != c || !bytes.Equal(out, img) {
				t.Errorf("Decompress: container %s (want %s), %d bytes equal to the image: %v", got, c, len(out), bytes.Equal(out, img))
			}
		})
	}
	t.Run("indexed gzip", func(t *testing.T) {
		rc, c, err := Decompress(context.Background(), bytes.NewReader(indexedGzip(t, img, 256<<10)))
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		out, err := io.ReadAll(rc)
		if err != nil || c != ContainerGzip || !bytes.Equal(out, img) {
			t.Errorf("indexed gzip: %v, container %s, equal %v", err, c, bytes.Equal(out, img))
		}
	})
	if _, _, err := Decompress(context.Background(), strings.NewReader("BZh91AY&SY")); err == nil || !strings.Contains(err.Error(), "bzip2") {
		t.Errorf("bzip2: err %v, want it refused by name", err)
	}
}
