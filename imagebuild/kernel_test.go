package imagebuild

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// rawImage hands GetKernel a raw filesystem whatever the image's
// container: the file itself when raw, else a decompressed temporary copy
// that cleanup removes.
func TestRawImage(t *testing.T) {
	content := bytes.Repeat([]byte("an ext4 filesystem, pretend\n"), 4096)
	var gz, zs, x bytes.Buffer
	gw := gzip.NewWriter(&gz)
	gw.Write(content)
	gw.Close()
	zw, _ := zstd.NewWriter(&zs)
	zw.Write(content)
	zw.Close()
	xw, _ := xz.NewWriter(&x)
	xw.Write(content)
	xw.Close()
	dir := t.TempDir()
	for name, data := range map[string][]byte{"root.img": content, "root.img.gz": gz.Bytes(), "root.img.zst": zs.Bytes(), "root.img.xz": x.Bytes()} {
		t.Run(name, func(t *testing.T) {
			image := filepath.Join(dir, name)
			if err := os.WriteFile(image, data, 0o644); err != nil {
				t.Fatal(err)
			}
			raw, cleanup, err := rawImage(context.Background(), image, dir)
			if err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(raw)
			if err != nil || !bytes.Equal(got, content) {
				t.Errorf("rawImage(%s) = %s: %v, content equal %v", name, raw, err, bytes.Equal(got, content))
			}
			if (raw == image) != (name == "root.img") {
				t.Errorf("rawImage(%s) = %s: a raw image is used in place, a compressed one copied", name, raw)
			}
			cleanup()
			if _, err := os.Stat(image); err != nil {
				t.Errorf("cleanup removed the image itself: %v", err)
			}
			if raw != image {
				if _, err := os.Stat(raw); !os.IsNotExist(err) {
					t.Errorf("cleanup left %s: %v", raw, err)
				}
			}
		})
	}
	bz := filepath.Join(dir, "root.img.bz2")
	os.WriteFile(bz, []byte("BZh91AY&SY..."), 0o644)
	if _, _, err := rawImage(context.Background(), bz, dir); err == nil {
		t.Error("a bzip2 image was taken for a raw filesystem")
	}
}
