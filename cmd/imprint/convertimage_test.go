package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imprint-dev/imprint/imagewriter"
)

func TestConvertImageCommand(t *testing.T) {
	dir := t.TempDir()
	img := append(bytes.Repeat([]byte("imprint convert-image "), 150000), make([]byte, 2<<20)...) // 3.3 MB of text, 2 MiB of zeroes
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(img)
	zw.Close()
	src := filepath.Join(dir, "root.img.gz")
	os.WriteFile(src, gz.Bytes(), 0o644)
	out := filepath.Join(dir, "root.img.zst")
	run := func(name string, args ...string) (int, string) {
		var o, e bytes.Buffer
		code := dispatch(context.Background(), &cmdEnv{stdout: &o, stderr: &e}, append([]string{"imprint", name}, args...))
		return code, o.String() + e.String()
	}
	if code, msg := run("convert-image", src, filepath.Join(dir, "root.img")); code != 2 || !strings.Contains(msg, "must end in .zst") {
		t.Errorf("OUT without .zst: exit %d, %q", code, msg)
	}
	if code, msg := run("convert-image", "--frame-size", "64", src, out); code != 2 || !strings.Contains(msg, "--frame-size 64") {
		t.Errorf("frame size 64: exit %d, %q", code, msg)
	}
	code, msg := run("convert-image", "--frame-size", "1", src, out)
	if code != 0 || !strings.Contains(msg, "(gzip)") || !strings.Contains(msg, "in 6 frames of 1 MiB (2 all zeroes)") {
		t.Fatalf("convert: exit %d, %q", code, msg)
	}
	mb, err := os.ReadFile(out + imagewriter.FrameManifestSuffix)
	if err != nil {
		t.Fatal(err)
	}
	m, err := imagewriter.ParseFrameManifest(mb)
	if err != nil {
		t.Fatal(err)
	}
	// write-image finds the manifest beside the image and writes it by frames
	dev := filepath.Join(dir, "disk.img")
	code, msg = run("write-image", out, dev, "--file", "--sha256", m.CompressedSHA256, "--progress", "0")
	if code != 0 || !strings.Contains(msg, "zstd, 6 frames, 0 mirror switches") || !strings.Contains(msg, "verified [frames,sha256,size]") {
		t.Fatalf("write-image: exit %d, %q", code, msg)
	}
	if got, _ := os.ReadFile(dev); !bytes.Equal(got, img) {
		t.Error("target differs from the image")
	}
	// a zstd input converts too (the frames file itself, to other frames,
	// of a size that is not a power of two)
	if code, msg := run("convert-image", "--frame-size", "3", out, filepath.Join(dir, "again.zst")); code != 0 || !strings.Contains(msg, "(zstd)") || !strings.Contains(msg, "in 2 frames of 3 MiB") {
		t.Errorf("zstd input: exit %d, %q", code, msg)
	}
}
