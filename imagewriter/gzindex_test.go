package imagewriter

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"hash/crc32"
	"io"
	"net/http/httptest"
	"os/exec"
	"strings"
	"testing"

	"github.com/imprint-dev/imprint/internal/testenv"
)

func indexedGzip(t testing.TB, raw []byte, memberSize int) []byte {
	t.Helper()
	var out bytes.Buffer
	w, err := NewIndexedGzipWriter(&out, 6, memberSize)
	if err != nil {
		t.Fatal(err)
	}
	// odd write sizes, so members straddle Write calls
	for rest := raw; len(rest) > 0; {
		k := min(len(rest), 77777)
		if _, err := w.Write(rest[:k]); err != nil {
			t.Fatal(err)
		}
		rest = rest[k:]
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// decodeAll runs data through newDecoder as the pipeline does.
func decodeAll(t testing.TB, data []byte, workers int) ([]byte, bool, error) {
	t.Helper()
	br := bufio.NewReaderSize(bytes.NewReader(data), 256<<10)
	_, indexed := peekGzipIndex(br)
	dec, err := newDecoder(context.Background(), ContainerGzip, br, &Options{GzipWorkers: workers})
	if err != nil {
		return nil, indexed, err
	}
	defer dec.close()
	got, err := io.ReadAll(dec)
	return got, indexed, err
}

func TestIndexedGzipRoundTrip(t *testing.T) {
	img := testImage(t)
	for _, tc := range []struct {
		name       string
		raw        []byte
		memberSize int
		workers    int
	}{
		{"empty", nil, 64 << 10, 2},
		{"one byte", []byte{7}, 64 << 10, 2},
		{"exactly one member", img[:64<<10], 64 << 10, 2},
		{"one member minus one", img[:64<<10-1], 64 << 10, 2},
		{"image, 64KiB members, 2 workers", img, 64 << 10, 2},
		{"image, 1MiB members, 1 worker", img, 1 << 20, 1},
		{"image, default members, 4 workers", img, 0, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := indexedGzip(t, tc.raw, tc.memberSize)
			got, indexed, err := decodeAll(t, data, tc.workers)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if !indexed {
				t.Fatal("first member carries no index")
			}
			if !bytes.Equal(got, tc.raw) {
				t.Fatalf("decoded %d bytes, differ from the %d bytes written", len(got), len(tc.raw))
			}
			// Any gzip reader reads it as one ordinary stream.
			zr, err := gzip.NewReader(bytes.NewReader(data))
			if err != nil {
				t.Fatal(err)
			}
			std, err := io.ReadAll(zr)
			if err != nil || !bytes.Equal(std, tc.raw) {
				t.Fatalf("compress/gzip reads %d bytes (err %v), want the %d written", len(std), err, len(tc.raw))
			}
		})
	}
}

func TestIndexedGzipReadByGzipCLI(t *testing.T) {
	testenv.RequireTool(t, "gzip")
	img := testImage(t)
	data := indexedGzip(t, img, 256<<10)
	cmd := exec.Command("gzip", "-dc")
	cmd.Stdin = bytes.NewReader(data)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil || stderr.Len() != 0 {
		t.Fatalf("gzip -dc: %v (stderr %q)", err, stderr.String())
	}
	if !bytes.Equal(out, img) {
		t.Fatal("gzip -dc output differs from the input")
	}
}

func TestIndexedGzipCorruption(t *testing.T) {
	img := testImage(t)
	clean := indexedGzip(t, img, 1<<20)
	// member offsets, from the index
	var offs []int
	for off := 0; off < len(clean); {
		offs = append(offs, off)
		off += int(binary.LittleEndian.Uint32(clean[off+16:]))
	}
	if len(offs) != 7 {
		t.Fatalf("%d members, want 7 for %d bytes in 1 MiB members", len(offs), len(img))
	}
	for _, tc := range []struct {
		name    string
		mangle  func([]byte) []byte
		wantErr string
	}{
		{"flipped byte in member 2's data", func(b []byte) []byte { b[offs[2]+200] ^= 0x40; return b }, "gzip member 2"},
		{"member 3's CRC", func(b []byte) []byte { b[offs[4]-8] ^= 1; return b }, "gzip member 3"},
		{"index says longer", func(b []byte) []byte {
			binary.LittleEndian.PutUint32(b[offs[1]+16:], binary.LittleEndian.Uint32(b[offs[1]+16:])+5)
			return b
		}, "gzip member"},
		{"index says more output", func(b []byte) []byte {
			binary.LittleEndian.PutUint32(b[offs[1]+20:], 1<<20+1)
			return b
		}, "gzip member 1"},
		{"index says less output", func(b []byte) []byte {
			binary.LittleEndian.PutUint32(b[offs[1]+20:], 1<<20-1)
			return b
		}, "longer than its index says"},
		{"truncated in member 5", func(b []byte) []byte { return b[:offs[5]+1000] }, "unexpected EOF"},
		{"trailing garbage", func(b []byte) []byte { return append(b, "garbage!"...) }, "gzip"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := tc.mangle(bytes.Clone(clean))
			got, _, err := decodeAll(t, data, 2)
			if err == nil {
				t.Fatalf("decoded %d bytes without an error", len(got))
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %q, want it to mention %q", err, tc.wantErr)
			}
		})
	}
}

// Indexed members followed by an ordinary gzip member: the tail is read in
// order after the members before it.
func TestIndexedThenPlainMember(t *testing.T) {
	img := testImage(t)
	head, tail := img[:3<<20], img[3<<20:]
	var plain bytes.Buffer
	zw := gzip.NewWriter(&plain)
	zw.Write(tail)
	zw.Close()
	data := append(indexedGzip(t, head, 512<<10), plain.Bytes()...)
	got, indexed, err := decodeAll(t, data, 2)
	if err != nil || !indexed {
		t.Fatalf("decode: %v (indexed %v)", err, indexed)
	}
	if !bytes.Equal(got, img) {
		t.Fatal("output differs")
	}
}

// bgzfMember builds one BGZF block (the "BC" subfield) by hand.
func bgzfMember(t testing.TB, raw []byte) []byte {
	t.Helper()
	var body bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&body, 6)
	zw.Write(raw)
	zw.Close()
	// compress/gzip wrote a 10-byte header and an 8-byte trailer around the
	// deflate data; rebuild the header with the BC extra field.
	deflate := body.Bytes()[10 : body.Len()-8]
	var m bytes.Buffer
	m.Write([]byte{0x1f, 0x8b, 8, gzFlagExtra, 0, 0, 0, 0, 0, 0xff, 6, 0, 'B', 'C', 2, 0, 0, 0})
	m.Write(deflate)
	var tr [8]byte
	binary.LittleEndian.PutUint32(tr[0:], crc32.ChecksumIEEE(raw))
	binary.LittleEndian.PutUint32(tr[4:], uint32(len(raw)))
	m.Write(tr[:])
	b := m.Bytes()
	binary.LittleEndian.PutUint16(b[16:], uint16(len(b)-1))
	return b
}

func TestBGZF(t *testing.T) {
	img := testImage(t)[:1<<20]
	var data []byte
	for off := 0; off < len(img); off += 60000 {
		data = append(data, bgzfMember(t, img[off:min(off+60000, len(img))])...)
	}
	data = append(data, bgzfMember(t, nil)...) // BGZF's empty EOF block
	got, indexed, err := decodeAll(t, data, 2)
	if err != nil || !indexed {
		t.Fatalf("decode: %v (indexed %v)", err, indexed)
	}
	if !bytes.Equal(got, img) {
		t.Fatal("output differs")
	}
}

// The whole writer on an indexed image: resumed across dropped connections,
// every digest checked.
func TestWriteIndexedGzipResumed(t *testing.T) {
	img := testImage(t)
	data := indexedGzip(t, img, 256<<10)
	cs := &cutServer{data: data, cut: len(data)/4 + 3, cuts: 2}
	srv := httptest.NewServer(cs)
	defer srv.Close()
	dev := prefilled(t, 8<<20)
	opts := testOptions(t)
	opts.GzipWorkers = 2
	res, err := Write(context.Background(), Request{URL: srv.URL + "/img.gz", Device: dev, Container: ContainerGzip,
		SHA256: sha256hex(data), MD5: md5hex(img), RawSize: int64(len(img))}, opts)
	if err != nil {
		t.Fatalf("Write: %v", err)
	}
	checkTarget(t, dev, img)
	if res.Retries != 2 {
		t.Errorf("retries = %d, want 2", res.Retries)
	}
}

func TestWriteIndexedGzipCorruptFails(t *testing.T) {
	img := testImage(t)
	data := indexedGzip(t, img, 256<<10)
	data[len(data)/2] ^= 0x10
	srv := serve(t, map[string][]byte{"img.gz": data})
	dev := prefilled(t, 8<<20)
	_, err := Write(context.Background(), Request{URL: srv.URL + "/img.gz", Device: dev}, testOptions(t))
	if err == nil || !strings.Contains(err.Error(), "gzip member") {
		t.Fatalf("Write = %v, want a gzip member error", err)
	}
	checkStartZeroed(t, dev)
}
