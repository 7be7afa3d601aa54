package imagebuild

import (
	"bytes"
	stdgzip "compress/gzip"
	"context"
	"crypto/md5"
	"encoding/binary"
	"encoding/hex"
	"io"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/klauspost/compress/zstd"

	"github.com/imprint-dev/imprint/internal/testenv"
)

// testInput is compressible but not trivial: runs of pseudo-random text
// and zeros, like a filesystem image.
func testInput(n int) []byte {
	r := rand.New(rand.NewSource(1))
	b := make([]byte, n)
	for i := 0; i < n; {
		run := 1 + r.Intn(64<<10)
		if r.Intn(2) == 0 {
			for j := i; j < i+run && j < n; j++ {
				b[j] = "abcdefgh \n"[r.Intn(10)]
			}
		}
		i += run
	}
	return b
}

func md5Of(b []byte) string { s := md5.Sum(b); return hex.EncodeToString(s[:]) }

func countMembers(t *testing.T, data []byte) int {
	t.Helper()
	br := bytes.NewReader(data)
	zr, err := stdgzip.NewReader(br)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for {
		zr.Multistream(false)
		raw, err := io.Copy(io.Discard, zr)
		if err != nil {
			t.Fatal(err)
		}
		// Every member carries imprint's index: "IM", 8 bytes, the
		// member's own length and its input's length.
		x := zr.Header.Extra
		if len(x) != 12 || string(x[:2]) != "IM" || binary.LittleEndian.Uint16(x[2:]) != 8 {
			t.Fatalf("member %d: extra field %x, want an IM index", n, x)
		}
		if got := binary.LittleEndian.Uint32(x[8:]); int64(got) != raw {
			t.Errorf("member %d: index says %d input bytes, member holds %d", n, got, raw)
		}
		n++
		if err := zr.Reset(br); err == io.EOF {
			return n
		} else if err != nil {
			t.Fatal(err)
		}
	}
}

func TestCompressGzipMembers(t *testing.T) {
	for _, tt := range []struct {
		name        string
		size        int
		member      int
		wantMembers int
	}{
		{"empty", 0, 1 << 20, 1},
		{"one member", 1000, 1 << 20, 1},
		{"exact multiple", 4 << 20, 1 << 20, 4},
		{"ragged tail", 5<<20 + 17, 1 << 20, 6},
	} {
		t.Run(tt.name, func(t *testing.T) {
			in := testInput(tt.size)
			var out bytes.Buffer
			sums, err := Compress(context.Background(), &out, bytes.NewReader(in), "gzip", tt.member, 3)
			if err != nil {
				t.Fatal(err)
			}
			if sums.RawSize != int64(len(in)) || sums.RawMD5 != md5Of(in) || sums.ContainerSize != int64(out.Len()) || sums.ContainerMD5 != md5Of(out.Bytes()) {
				t.Errorf("sums %+v wrong", sums)
			}
			if got := countMembers(t, out.Bytes()); got != tt.wantMembers {
				t.Errorf("members = %d, want %d", got, tt.wantMembers)
			}
			// Go's reader sees one stream
			zr, err := stdgzip.NewReader(bytes.NewReader(out.Bytes()))
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(zr)
			if err != nil || !bytes.Equal(got, in) {
				t.Errorf("gunzip: %v, equal %v", err, bytes.Equal(got, in))
			}
			// and so does gzip(1)
			if testenv.HasTool(t, "gzip") {
				f := filepath.Join(t.TempDir(), "x.gz")
				os.WriteFile(f, out.Bytes(), 0o644)
				if b, err := exec.Command("gzip", "-t", f).CombinedOutput(); err != nil {
					t.Errorf("gzip -t: %v %s", err, b)
				}
				dec, err := exec.Command("gzip", "-dc", f).Output()
				if err != nil || !bytes.Equal(dec, in) {
					t.Errorf("gzip -dc: %v, equal %v", err, bytes.Equal(dec, in))
				}
			}
		})
	}
}

func TestCompressZstdAndRaw(t *testing.T) {
	in := testInput(3<<20 + 5)
	var out bytes.Buffer
	sums, err := Compress(context.Background(), &out, bytes.NewReader(in), "zstd", 0, 2)
	if err != nil {
		t.Fatal(err)
	}
	zr, err := zstd.NewReader(bytes.NewReader(out.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(zr)
	if err != nil || !bytes.Equal(got, in) || sums.RawMD5 != md5Of(in) || sums.ContainerMD5 != md5Of(out.Bytes()) {
		t.Errorf("zstd round trip: %v equal=%v sums=%+v", err, bytes.Equal(got, in), sums)
	}
	// zstd images are multi-frame, with the manifest the agent reads
	if m := sums.Frames; m == nil || m.Size != int64(len(in)) || m.CompressedSize != int64(out.Len()) || len(m.Frames) != 1 || m.Validate() != nil {
		t.Errorf("zstd frame manifest: %+v", m)
	}
	out.Reset()
	sums, err = Compress(context.Background(), &out, bytes.NewReader(in), "raw", 0, 0)
	if err != nil || !bytes.Equal(out.Bytes(), in) || sums.RawMD5 != sums.ContainerMD5 {
		t.Errorf("raw: %v %+v", err, sums)
	}
	if _, err := Compress(context.Background(), &out, bytes.NewReader(in), "bzip2", 0, 0); err == nil {
		t.Error("bzip2 accepted")
	}
}

func TestCompressCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var out bytes.Buffer
	if _, err := Compress(ctx, &out, bytes.NewReader(testInput(4<<20)), "gzip", 1<<20, 2); err == nil {
		t.Error("cancelled Compress succeeded")
	}
}
