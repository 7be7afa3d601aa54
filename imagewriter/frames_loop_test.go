//go:build loop

package imagewriter

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// A multi-frame image onto a real block device: the zero frames go to the
// device as write-zeroes (over old data), everything else through O_DIRECT,
// and the device reads back the image.
func TestLoopFramesZeroOffloadAndCmp(t *testing.T) {
	needRoot(t)
	img := frameImage(t)
	data, m, mb := framed(t, img)
	srv := serve(t, map[string][]byte{"x.img.zst": data, "x.img.zst" + FrameManifestSuffix: mb})
	dev := loopDevice(t, 16<<20, 0xEE)
	opts := testOptions(t)
	opts.AllowRegularFile = false
	res, err := Write(context.Background(), Request{URL: srv.URL + "/x.img.zst", Device: dev, SHA256: m.CompressedSHA256}, opts)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Direct || res.Frames != len(m.Frames) || res.ZeroedOut < 2<<20 {
		t.Errorf("direct %v, frames %d, zeroed out %d: want O_DIRECT, %d frames, the 2 MiB of zero frames offloaded", res.Direct, res.Frames, res.ZeroedOut, len(m.Frames))
	}
	want := filepath.Join(t.TempDir(), "img")
	os.WriteFile(want, img, 0o644)
	run(t, "cmp", "-n", strconv.Itoa(len(img)), want, dev)
}

// A corrupted frame fails before any of its bytes reach the device, and the
// device's first MiB is zeroed.
func TestLoopFramesCorruptFrame(t *testing.T) {
	needRoot(t)
	img := frameImage(t)
	data, m, mb := framed(t, img)
	f := m.Frames[5]
	data = bytes.Clone(data)
	data[f.Offset+f.Length/3] ^= 0x01
	srv := serve(t, map[string][]byte{"x.img.zst": data, "x.img.zst" + FrameManifestSuffix: mb})
	const size = 16 << 20
	dev := loopDevice(t, size, 0xEE)
	opts := testOptions(t)
	opts.AllowRegularFile = false
	_, err := Write(context.Background(), Request{URL: srv.URL + "/x.img.zst", Device: dev}, opts)
	if err == nil {
		t.Fatal("Write succeeded with a corrupted frame")
	}
	t.Log(err)
	got, err := os.ReadFile(dev)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Count(got[:1<<20], []byte{0}) != 1<<20 {
		t.Error("first MiB not zeroed after the failure")
	}
	if !bytes.Equal(got[5<<20:size-1<<20], bytes.Repeat([]byte{0xEE}, size-6<<20)) {
		t.Error("bytes of the corrupted frame (or later) reached the device")
	}
}
