package imagewriter

import (
	"bytes"
	"context"
	"math/rand/v2"
	"os"
	"syscall"
	"testing"

	"github.com/imprint-dev/imprint/internal/logtest"
)

// sparseImage is a partly empty image, like a filesystem with free space:
// data, a long zero run, data with short zero gaps, and a zero tail.
func sparseImage(t testing.TB) []byte {
	t.Helper()
	const size = 14<<20 + 123
	img := make([]byte, size)
	rng := rand.New(rand.NewPCG(3, 4))
	fill := func(from, to int) {
		for i := from; i < to; i++ {
			img[i] = byte(rng.Uint32())
		}
	}
	fill(0, 2<<20)         // 0-2 MiB data (the held-back start included)
	fill(9<<20, 9<<20+100) // 2-9 MiB zero, then data with 64 KiB gaps
	for off := 9 << 20; off < 12<<20; off += 128 << 10 {
		fill(off, off+64<<10)
	}
	return img // 12 MiB to the end: zero
}

func TestZeroOffloadOverwritesOldData(t *testing.T) {
	img := sparseImage(t)
	data := compress(t, ContainerGzip, img)
	srv := serve(t, map[string][]byte{"img.gz": data})
	dev := prefilled(t, 16<<20) // old data everywhere: nothing may be skipped
	opts := testOptions(t)
	opts.BufferSize = 4 << 20
	res, err := Write(context.Background(), Request{URL: srv.URL + "/img.gz", Device: dev, SHA256: sha256hex(data)}, opts)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(dev)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got[:len(img)], img) {
		t.Fatal("target differs from the image")
	}
	if !bytes.Equal(got[len(img):], bytes.Repeat([]byte{0xEE}, len(got)-len(img))) {
		t.Error("bytes past the image's end were changed")
	}
	if res.SkippedZero != 0 {
		t.Errorf("skipped %d bytes on a target that was not zero", res.SkippedZero)
	}
	// 2-9 MiB and 12 MiB-end (minus the unaligned tail) are offloaded; the
	// 64 KiB gaps are written with their data.
	if res.ZeroedOut < 9<<20-4096 || res.ZeroedOut > 9<<20 {
		t.Errorf("zeroed out %d bytes, want about 9 MiB", res.ZeroedOut)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(dev, &st); err != nil {
		t.Fatal(err)
	}
	if st.Blocks*512 > 10<<20 {
		t.Errorf("%d bytes still allocated: the zero runs were written, not punched", st.Blocks*512)
	}

	// NoZeroOffload writes every byte.
	dev2 := prefilled(t, 16<<20)
	opts.NoZeroOffload = true
	res, err = Write(context.Background(), Request{URL: srv.URL + "/img.gz", Device: dev2, SHA256: sha256hex(data)}, opts)
	if err != nil || res.ZeroedOut != 0 {
		t.Fatalf("NoZeroOffload: err %v, zeroed out %d, want 0", err, res.ZeroedOut)
	}
	checkTarget(t, dev2, img)
}

// A device that refuses write-zeroes gets the zeroes written, and is not
// asked again.
func TestZeroOffloadRefusedFallsBack(t *testing.T) {
	for _, tc := range []struct {
		name    string
		err     error
		wantErr bool
	}{
		{"unsupported", syscall.EOPNOTSUPP, false},
		{"invalid", syscall.EINVAL, false},
		{"io error", syscall.EIO, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dev := prefilled(t, 8<<20)
			opts := testOptions(t)
			tg, err := openTarget(dev, &opts)
			if err != nil {
				t.Fatal(err)
			}
			defer tg.Close()
			calls := 0
			tg.punch = func(off, n int64) error { calls++; return tc.err }
			p := &pipeline{req: Request{Device: dev}, opts: &opts, t: tg, log: logtest.New(t)}
			b, free, err := alignedBuffer(4 << 20)
			if err != nil {
				t.Fatal(err)
			}
			defer free()
			copy(b, "data") // 64 KiB of data, then zeroes
			for i := 0; i < 2; i++ {
				err = p.writeData(b, int64(i)<<22)
				if tc.wantErr {
					if err == nil {
						t.Fatal("an I/O error from write-zeroes was not returned")
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			if calls != 1 || p.zeroedOut != 0 || tg.canZeroOut {
				t.Errorf("punch called %d times, zeroed out %d, still offering %v: want 1, 0, false", calls, p.zeroedOut, tg.canZeroOut)
			}
			want := append(append([]byte{}, b...), b...)
			checkTarget(t, dev, want)
		})
	}
}
