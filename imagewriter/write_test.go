package imagewriter

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	kgzip "github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"

	"github.com/imprint-dev/imprint/internal/logtest"
)

// testImage is a deterministic 6.25 MiB "disk image": a recognisable first
// MiB, incompressible and compressible runs, zero runs, and an unaligned
// tail (so the O_DIRECT and buffered paths are both taken).
func testImage(t testing.TB) []byte {
	t.Helper()
	const size = 6<<20 + 256<<10 + 123
	img := make([]byte, size)
	rng := rand.New(rand.NewPCG(1, 2))
	copy(img, "IMPRINT-TEST-BOOT-SECTOR")
	img[510], img[511] = 0x55, 0xaa
	for off := 4096; off < size; off += 64 << 10 {
		end := min(off+64<<10, size)
		switch (off / (64 << 10)) % 4 {
		case 0, 1: // random
			for i := off; i < end; i++ {
				img[i] = byte(rng.Uint32())
			}
		case 2: // text-like
			for i := off; i < end; i++ {
				img[i] = "imprint image writer "[i%21]
			}
		case 3: // zeroes
		}
	}
	return img
}

var (
	compressMu    sync.Mutex
	compressCache = map[string][]byte{}
)

// compress encodes raw as c (memoised: the xz encoder is slow).
func compress(t testing.TB, c Container, raw []byte) []byte {
	t.Helper()
	key := string(c) + sha256hex(raw)
	compressMu.Lock()
	defer compressMu.Unlock()
	if b, ok := compressCache[key]; ok {
		return b
	}
	b := compressUncached(t, c, raw)
	compressCache[key] = b
	return b
}

func compressUncached(t testing.TB, c Container, raw []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	switch c {
	case ContainerRaw:
		return raw
	case ContainerGzip:
		w, _ := kgzip.NewWriterLevel(&buf, 6)
		w.Write(raw)
		w.Close()
	case ContainerZstd:
		w, _ := zstd.NewWriter(&buf)
		w.Write(raw)
		w.Close()
	case ContainerXZ:
		w, err := xz.NewWriter(&buf)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(raw)
		w.Close()
	}
	return buf.Bytes()
}

func sha256hex(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }
func md5hex(b []byte) string    { s := md5.Sum(b); return hex.EncodeToString(s[:]) }

func testOptions(t testing.TB) Options {
	return Options{
		Logger:           logtest.New(t),
		AllowRegularFile: true,
		IdleTimeout:      2 * time.Second,
		RetryBackoff:     5 * time.Millisecond,
		MaxBackoff:       20 * time.Millisecond,
		MaxRetries:       5,
		BufferSize:       1 << 20, // several buffers per test image
		Timeout:          30 * time.Second,
	}
}

// serve serves data at /name with http.ServeContent (Range, ETag support).
func serve(t testing.TB, files map[string][]byte) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, ok := files[strings.TrimPrefix(r.URL.Path, "/")]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("ETag", `"`+sha256hex(b)[:16]+`"`)
		http.ServeContent(w, r, r.URL.Path, time.Unix(1700000000, 0), bytes.NewReader(b))
	}))
	t.Cleanup(srv.Close)
	return srv
}

// prefilled returns a target file of n bytes of 0xEE, as a disk with old
// content (so zero skipping is off and every byte must be written).
func prefilled(t testing.TB, n int) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(p, bytes.Repeat([]byte{0xEE}, n), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func checkTarget(t testing.TB, path string, want []byte) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) < len(want) {
		t.Fatalf("target holds %d bytes, want at least %d", len(got), len(want))
	}
	if !bytes.Equal(got[:len(want)], want) {
		i := 0
		for i < len(want) && got[i] == want[i] {
			i++
		}
		t.Fatalf("target differs from the image at byte %d", i)
	}
}

func checkStartZeroed(t testing.TB, path string) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	n := min(len(got), 1<<20)
	if bytes.Count(got[:n], []byte{0}) != n {
		t.Fatalf("first MiB of %s is not zero after a failure", path)
	}
}

func TestWriteContainers(t *testing.T) {
	img := testImage(t)
	for _, c := range []Container{ContainerRaw, ContainerGzip, ContainerZstd, ContainerXZ} {
		for _, declared := range []Container{ContainerAuto, c} {
			t.Run(fmt.Sprintf("%s/declared=%q", c, declared), func(t *testing.T) {
				data := compress(t, c, img)
				srv := serve(t, map[string][]byte{"img": data})
				dev := prefilled(t, 8<<20)
				var events []Progress
				opts := testOptions(t)
				opts.Progress = func(p Progress) { events = append(events, p) }
				opts.ProgressInterval = time.Nanosecond
				res, err := Write(context.Background(), Request{
					URL: srv.URL + "/img", Device: dev, Container: declared,
					SHA256: sha256hex(data), MD5: md5hex(img), RawSize: int64(len(img)),
				}, opts)
				if err != nil {
					t.Fatalf("Write: %v", err)
				}
				checkTarget(t, dev, img)
				if res.Container != c || res.BytesWritten != int64(len(img)) || res.BytesRead != int64(len(data)) {
					t.Errorf("result = %+v, want container %s, %d written, %d read", res, c, len(img), len(data))
				}
				if want := []string{"sha256", "md5", "size"}; strings.Join(res.Verified, ",") != strings.Join(want, ",") {
					t.Errorf("verified = %v, want %v", res.Verified, want)
				}
				if len(events) < 3 || events[len(events)-1].Phase != "done" {
					t.Fatalf("progress events = %+v, want several ending in done", events)
				}
				last := events[len(events)-1]
				if last.BytesWritten != int64(len(img)) || last.TotalRead != int64(len(data)) || last.BytesDurable != int64(len(img)) || last.ETA != 0 {
					t.Errorf("last progress = %+v", last)
				}
			})
		}
	}
}

func TestWritePureGoXZAndFileURL(t *testing.T) {
	img := testImage(t)
	data := compress(t, ContainerXZ, img)
	src := filepath.Join(t.TempDir(), "img.xz")
	os.WriteFile(src, data, 0o644)
	dev := prefilled(t, 8<<20)
	opts := testOptions(t)
	opts.PureGoXZ = true
	res, err := Write(context.Background(), Request{URL: "file://" + src, Device: dev, SHA512: sha512hex(data)}, opts)
	if err != nil {
		t.Fatal(err)
	}
	checkTarget(t, dev, img)
	if res.Container != ContainerXZ || res.SHA512 != sha512hex(data) {
		t.Errorf("result = %+v", res)
	}
}

func sha512hex(b []byte) string { s := sha512.Sum512(b); return hex.EncodeToString(s[:]) }

// cutServer serves data with Range support, but cuts the connection after
// `cut` bytes of each of the first `cuts` responses.
type cutServer struct {
	data        []byte
	cut         int
	cuts        int32
	ignoreRange bool
	stall       bool // instead of cutting, stop sending and hang
	requests    atomic.Int32
	ranges      []string
	mu          sync.Mutex
}

func (s *cutServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := s.requests.Add(1)
	s.mu.Lock()
	s.ranges = append(s.ranges, r.Header.Get("Range"))
	s.mu.Unlock()
	start := 0
	if rg := r.Header.Get("Range"); rg != "" && !s.ignoreRange {
		v, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(rg, "bytes="), "-"))
		start = v
		w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", start, len(s.data)-1, len(s.data)))
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(s.data)-start))
	w.Header().Set("ETag", `"v1"`)
	if start > 0 {
		w.WriteHeader(http.StatusPartialContent)
	} else {
		w.WriteHeader(http.StatusOK)
	}
	body := s.data[start:]
	if n <= s.cuts && len(body) > s.cut {
		w.Write(body[:s.cut])
		w.(http.Flusher).Flush()
		if s.stall {
			<-r.Context().Done()
			return
		}
		panic(http.ErrAbortHandler) // drop the connection mid-body
	}
	w.Write(body)
}

func TestResumeAfterDroppedConnections(t *testing.T) {
	img := testImage(t)
	for _, c := range []Container{ContainerGzip, ContainerZstd, ContainerRaw} {
		t.Run(string(c), func(t *testing.T) {
			data := compress(t, c, img)
			cs := &cutServer{data: data, cut: len(data)/5 + 1, cuts: 3}
			srv := httptest.NewServer(cs)
			defer srv.Close()
			dev := prefilled(t, 8<<20)
			res, err := Write(context.Background(), Request{URL: srv.URL + "/img", Device: dev, SHA256: sha256hex(data), MD5: md5hex(img), RawSize: int64(len(img))}, testOptions(t))
			if err != nil {
				t.Fatalf("Write: %v", err)
			}
			checkTarget(t, dev, img)
			if res.Retries != 3 || res.BytesRead != int64(len(data)) {
				t.Errorf("retries = %d, read = %d; want 3 retries, %d read", res.Retries, res.BytesRead, len(data))
			}
			want := []string{"", fmt.Sprintf("bytes=%d-", cs.cut), fmt.Sprintf("bytes=%d-", 2*cs.cut), fmt.Sprintf("bytes=%d-", 3*cs.cut)}
			if strings.Join(cs.ranges, "|") != strings.Join(want, "|") {
				t.Errorf("Range headers = %q, want %q", cs.ranges, want)
			}
		})
	}
}

func TestServerIgnoringRangeRestarts(t *testing.T) {
	img := testImage(t)
	data := compress(t, ContainerGzip, img)
	cs := &cutServer{data: data, cut: len(data) / 2, cuts: 1, ignoreRange: true}
	srv := httptest.NewServer(cs)
	defer srv.Close()
	dev := prefilled(t, 8<<20)
	res, err := Write(context.Background(), Request{URL: srv.URL + "/img.gz", Device: dev, SHA256: sha256hex(data)}, testOptions(t))
	if err != nil {
		t.Fatalf("Write: %v", err)
	}
	checkTarget(t, dev, img)
	if cs.requests.Load() != 2 || res.SHA256 != sha256hex(data) || res.BytesRead != int64(len(data)) {
		t.Errorf("requests = %d, result %+v", cs.requests.Load(), res)
	}
}

func TestStalledServerTimesOutAndResumes(t *testing.T) {
	img := testImage(t)
	data := compress(t, ContainerZstd, img)
	cs := &cutServer{data: data, cut: len(data) / 3, cuts: 2, stall: true}
	srv := httptest.NewServer(cs)
	defer srv.Close()
	dev := prefilled(t, 8<<20)
	opts := testOptions(t)
	opts.IdleTimeout = 200 * time.Millisecond
	t0 := time.Now()
	res, err := Write(context.Background(), Request{URL: srv.URL + "/img", Device: dev, SHA256: sha256hex(data)}, opts)
	if err != nil {
		t.Fatalf("Write: %v", err)
	}
	checkTarget(t, dev, img)
	if res.Retries != 2 || time.Since(t0) > 5*time.Second {
		t.Errorf("retries = %d after %s, want 2 within seconds", res.Retries, time.Since(t0))
	}
}

func TestStalledServerGivesUpNamingURL(t *testing.T) {
	data := compress(t, ContainerGzip, testImage(t))
	// sends the first 1000 bytes, then nothing, whatever the Range
	var requests atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		start := 0
		if rg := r.Header.Get("Range"); rg != "" {
			start, _ = strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(rg, "bytes="), "-"))
			w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", start, len(data)-1, len(data)))
			w.Header().Set("Content-Length", strconv.Itoa(len(data)-start))
			w.WriteHeader(http.StatusPartialContent)
		} else {
			w.Header().Set("Content-Length", strconv.Itoa(len(data)))
		}
		if start < 1000 {
			w.Write(data[start:1000])
		}
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	}))
	defer srv.Close()
	dev := prefilled(t, 8<<20)
	opts := testOptions(t)
	opts.IdleTimeout = 100 * time.Millisecond
	opts.MaxRetries = 2
	_, err := Write(context.Background(), Request{URL: srv.URL + "/stall.gz", Device: dev}, opts)
	if err == nil || !strings.Contains(err.Error(), srv.URL+"/stall.gz") || !errors.Is(err, errStalled) {
		t.Fatalf("err = %v, want a stall error naming the URL", err)
	}
	if requests.Load() != 3 {
		t.Errorf("server saw %d requests, want 3 (first + 2 retries)", requests.Load())
	}
	checkStartZeroed(t, dev)
}

func TestHTTPErrorsNameURL(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		if strings.HasSuffix(r.URL.Path, "500") {
			http.Error(w, "boom", http.StatusInternalServerError)
			return
		}
		http.NotFound(w, r)
	}))
	defer srv.Close()
	for _, tc := range []struct {
		path      string
		status    string
		wantCalls int32
	}{
		{"/missing.img.gz", "404 Not Found", 1},
		{"/broken-500", "500 Internal Server Error", 3}, // first try + MaxRetries
	} {
		t.Run(tc.path, func(t *testing.T) {
			calls.Store(0)
			dev := prefilled(t, 2<<20)
			opts := testOptions(t)
			opts.MaxRetries = 2
			_, err := Write(context.Background(), Request{URL: srv.URL + tc.path, Device: dev}, opts)
			if err == nil || !strings.Contains(err.Error(), srv.URL+tc.path) || !strings.Contains(err.Error(), tc.status) {
				t.Fatalf("err = %v, want %s naming the URL", err, tc.status)
			}
			if calls.Load() != tc.wantCalls {
				t.Errorf("server saw %d requests, want %d", calls.Load(), tc.wantCalls)
			}
			checkStartZeroed(t, dev)
		})
	}
}

func TestVerificationFailuresZeroTheStart(t *testing.T) {
	img := testImage(t)
	gz := compress(t, ContainerGzip, img)
	xzData := compress(t, ContainerXZ, img)
	zst := compress(t, ContainerZstd, img)
	corrupt := bytes.Clone(gz)
	corrupt[len(corrupt)/2] ^= 0x40
	tests := []struct {
		name string
		data []byte
		req  Request
		want string
	}{
		{"sha256 mismatch", gz, Request{SHA256: strings.Repeat("ab", 32)}, "sha256 of"},
		{"corrupted byte", corrupt, Request{SHA256: sha256hex(gz)}, ""},
		{"md5 mismatch", gz, Request{MD5: md5hex(img[1:]), RawSize: int64(len(img))}, "md5 of the image"},
		{"raw size mismatch", gz, Request{RawSize: int64(len(img)) + 1}, "expected " + strconv.Itoa(len(img)+1)},
		{"truncated gzip", gz[:len(gz)-1000], Request{}, "decompress gzip"},
		{"truncated xz", xzData[:len(xzData)-1000], Request{}, "xz"},
		{"truncated zstd", zst[:len(zst)-1000], Request{}, "decompress zstd"},
		{"short raw stream", img[:len(img)-4096], Request{RawSize: int64(len(img))}, "image is"},
		{"declared zstd is gzip", gz, Request{Container: ContainerZstd}, "declared zstd but the data"},
		{"declared raw is gzip", gz, Request{Container: ContainerRaw}, "is gzip (by its magic bytes)"},
		{"declared gzip is raw", img, Request{Container: ContainerGzip}, "declared gzip but the data"},
		{"empty", nil, Request{}, "is empty"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := serve(t, map[string][]byte{"img": tc.data})
			dev := prefilled(t, 8<<20)
			req := tc.req
			req.URL, req.Device = srv.URL+"/img", dev
			_, err := Write(context.Background(), req, testOptions(t))
			if err == nil {
				t.Fatal("Write succeeded, want failure")
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), srv.URL+"/img") && tc.name != "truncated gzip" {
				t.Errorf("err = %v, want it to contain %q and the URL", err, tc.want)
			}
			checkStartZeroed(t, dev)
			// the rest was written: the failure is not silent garbage-in
			// with an intact old disk; the start must be cleared.
		})
	}
}

func TestFuelMetadata(t *testing.T) {
	img := testImage(t)
	gz := compress(t, ContainerGzip, img)
	yamlFor := func(name, md string) []byte {
		return []byte(fmt.Sprintf(`images:
- container: gzip
  container_name: other.img.gz
  raw_md5: 00000000000000000000000000000000
  raw_size: 1
- container: gzip
  container_md5: x
  container_name: %s
  container_size: %d
  format: ext4
  raw_md5: %s
  raw_name: null
  raw_size: %d
os: {major: 14, minor: 4, name: Ubuntu}
`, name, len(gz), md, len(img)))
	}
	t.Run("stem yaml beside the image", func(t *testing.T) {
		srv := serve(t, map[string][]byte{
			"env_1_ubuntu_1404_amd64.img.gz": gz,
			"env_1_ubuntu_1404_amd64.yaml":   yamlFor("env_1_ubuntu_1404_amd64.img.gz", md5hex(img)),
		})
		dev := prefilled(t, 8<<20)
		res, err := Write(context.Background(), Request{URL: srv.URL + "/env_1_ubuntu_1404_amd64.img.gz", Device: dev, FuelMetadata: true, Container: ContainerGzip}, testOptions(t))
		if err != nil {
			t.Fatal(err)
		}
		checkTarget(t, dev, img)
		if strings.Join(res.Verified, ",") != "md5,size" {
			t.Errorf("verified = %v, want md5,size from the metadata", res.Verified)
		}
	})
	t.Run("wrong raw_md5 in metadata fails", func(t *testing.T) {
		srv := serve(t, map[string][]byte{
			"img.gz":   gz,
			"img.yaml": yamlFor("img.gz", md5hex(img[:10])),
		})
		dev := prefilled(t, 8<<20)
		_, err := Write(context.Background(), Request{URL: srv.URL + "/img.gz", Device: dev, FuelMetadata: true}, testOptions(t))
		if !errors.Is(err, ErrVerify) || !strings.Contains(err.Error(), "img.yaml") {
			t.Fatalf("err = %v, want a verification error naming the metadata", err)
		}
		checkStartZeroed(t, dev)
	})
	t.Run("dotted stem quirk", func(t *testing.T) {
		// fuel-agent looks for ubuntu-16.yaml for ubuntu-16.04.img.gz.
		srv := serve(t, map[string][]byte{
			"ubuntu-16.04.img.gz": gz,
			"ubuntu-16.yaml":      yamlFor("ubuntu-16.04.img.gz", md5hex(img)),
		})
		dev := prefilled(t, 8<<20)
		res, err := Write(context.Background(), Request{URL: srv.URL + "/ubuntu-16.04.img.gz", Device: dev, FuelMetadata: true}, testOptions(t))
		if err != nil || strings.Join(res.Verified, ",") != "md5,size" {
			t.Fatalf("err = %v, verified %v", err, res.Verified)
		}
	})
	t.Run("dotted stem full name fallback", func(t *testing.T) {
		srv := serve(t, map[string][]byte{
			"ubuntu-16.04.img.gz": gz,
			"ubuntu-16.04.yaml":   yamlFor("ubuntu-16.04.img.gz", md5hex(img)),
		})
		dev := prefilled(t, 8<<20)
		res, err := Write(context.Background(), Request{URL: srv.URL + "/ubuntu-16.04.img.gz", Device: dev, FuelMetadata: true}, testOptions(t))
		if err != nil || strings.Join(res.Verified, ",") != "md5,size" {
			t.Fatalf("err = %v, verified %v", err, res.Verified)
		}
	})
	t.Run("missing derived metadata is not an error", func(t *testing.T) {
		srv := serve(t, map[string][]byte{"img.gz": gz})
		dev := prefilled(t, 8<<20)
		res, err := Write(context.Background(), Request{URL: srv.URL + "/img.gz", Device: dev, FuelMetadata: true}, testOptions(t))
		if err != nil || len(res.Verified) != 0 {
			t.Fatalf("err = %v, verified %v", err, res.Verified)
		}
		checkTarget(t, dev, img)
	})
	t.Run("derived metadata that fails is an error, not no metadata", func(t *testing.T) {
		mux := http.NewServeMux()
		mux.HandleFunc("/img.gz", func(w http.ResponseWriter, r *http.Request) { w.Write(gz) })
		mux.HandleFunc("/img.yaml", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "boom", http.StatusInternalServerError) })
		srv := httptest.NewServer(mux)
		defer srv.Close()
		dev := prefilled(t, 8<<20)
		_, err := Write(context.Background(), Request{URL: srv.URL + "/img.gz", Device: dev, FuelMetadata: true}, testOptions(t))
		if !errors.Is(err, ErrSource) || !strings.Contains(err.Error(), "img.yaml") {
			t.Fatalf("err = %v, want an ErrSource naming the metadata URL", err)
		}
		// The metadata is resolved before the target is opened: nothing
		// was written.
	})
	t.Run("derived metadata that does not parse is an error", func(t *testing.T) {
		srv := serve(t, map[string][]byte{"img.gz": gz, "img.yaml": []byte("images: [unclosed\n")})
		dev := prefilled(t, 8<<20)
		_, err := Write(context.Background(), Request{URL: srv.URL + "/img.gz", Device: dev, FuelMetadata: true}, testOptions(t))
		if err == nil || !strings.Contains(err.Error(), "unparsable") {
			t.Fatalf("err = %v, want a parse error", err)
		}
	})
	t.Run("explicit metadata URL must list the image", func(t *testing.T) {
		srv := serve(t, map[string][]byte{"img.gz": gz, "meta.yaml": yamlFor("nope.img.gz", md5hex(img))})
		dev := prefilled(t, 8<<20)
		_, err := Write(context.Background(), Request{URL: srv.URL + "/img.gz", Device: dev, MetadataURL: srv.URL + "/meta.yaml"}, testOptions(t))
		if err == nil || !strings.Contains(err.Error(), `container_name "img.gz"`) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("explicit metadata URL 404", func(t *testing.T) {
		srv := serve(t, map[string][]byte{"img.gz": gz})
		dev := prefilled(t, 8<<20)
		_, err := Write(context.Background(), Request{URL: srv.URL + "/img.gz", Device: dev, MetadataURL: srv.URL + "/meta.yaml"}, testOptions(t))
		if err == nil || !strings.Contains(err.Error(), srv.URL+"/meta.yaml") || !strings.Contains(err.Error(), "404") {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestFuelMetadataURLs(t *testing.T) {
	tests := []struct{ in, want string }{
		{"http://10.20.0.2:8080/targetimages/env_1_ubuntu_1404_amd64.img.gz", "http://10.20.0.2:8080/targetimages/env_1_ubuntu_1404_amd64.yaml"},
		{"http://h/i/ubuntu-16.04.img.gz", "http://h/i/ubuntu-16.yaml|http://h/i/ubuntu-16.04.yaml"},
		{"http://h/x.img.zst?token=1", "http://h/x.yaml"},
		{"file:///srv/img/root.raw", "file:///srv/img/root.yaml"},
	}
	for _, tc := range tests {
		got, err := FuelMetadataURLs(tc.in)
		if err != nil || strings.Join(got, "|") != tc.want {
			t.Errorf("FuelMetadataURLs(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

func TestSparseFreshFile(t *testing.T) {
	img := testImage(t)
	data := compress(t, ContainerZstd, img)
	srv := serve(t, map[string][]byte{"img": data})
	dev := filepath.Join(t.TempDir(), "new.img") // does not exist: created, known zero
	res, err := Write(context.Background(), Request{URL: srv.URL + "/img", Device: dev}, testOptions(t))
	if err != nil {
		t.Fatal(err)
	}
	checkTarget(t, dev, img)
	st, _ := os.Stat(dev)
	if st.Size() != int64(len(img)) || res.SkippedZero == 0 {
		t.Errorf("size %d (want %d), skipped %d (want > 0)", st.Size(), len(img), res.SkippedZero)
	}
	// a pre-existing, non-empty file is not assumed zero
	dev2 := prefilled(t, 8<<20)
	res, err = Write(context.Background(), Request{URL: srv.URL + "/img", Device: dev2}, testOptions(t))
	if err != nil || res.SkippedZero != 0 {
		t.Fatalf("err %v, skipped %d, want 0", err, res.SkippedZero)
	}
	checkTarget(t, dev2, img)
}

func TestTargetRefused(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "f")
	os.WriteFile(file, []byte("x"), 0o644)
	opts := testOptions(t)
	opts.AllowRegularFile = false
	for _, tc := range []struct{ dev, want string }{
		{file, "is a regular file, not a block device"},
		{dir, "is a directory, not a block device"},
		{"/dev/null", "is a character device, not a block device"},
		{filepath.Join(dir, "missing"), "no such file"},
	} {
		_, err := Write(context.Background(), Request{URL: "http://127.0.0.1:1/x", Device: tc.dev}, opts)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), tc.dev) {
			t.Errorf("Write to %s: err = %v, want %q naming it", tc.dev, err, tc.want)
		}
	}
	if b, _ := os.ReadFile(file); string(b) != "x" {
		t.Errorf("refused target was modified")
	}
}

func TestValidate(t *testing.T) {
	err := Request{URL: "ftp://x/y", Container: "bz2", SHA256: "zz", SHA512: strings.Repeat("a", 128), MD5: "d41d8cd98f00b204e9800998ecf8427e", Format: "ntfs"}.Validate()
	for _, want := range []string{"url:", "device: required", "container:", "sha256:", "sha512: give either", "size: required with md5", "format:"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want it to contain %q", err, want)
		}
	}
	if err := (Request{URL: "/abs/img.gz", Device: "/dev/loop0"}).Validate(); err != nil {
		t.Errorf("absolute path URL: %v", err)
	}
}

func TestDetect(t *testing.T) {
	for _, tc := range []struct {
		head []byte
		want Container
		err  bool
	}{
		{[]byte{0x1f, 0x8b, 8, 0}, ContainerGzip, false},
		{[]byte{0x28, 0xb5, 0x2f, 0xfd, 0}, ContainerZstd, false},
		{[]byte{0x50, 0x2a, 0x4d, 0x18}, ContainerZstd, false},
		{[]byte{0xfd, '7', 'z', 'X', 'Z', 0, 0}, ContainerXZ, false},
		{[]byte("BZh91AY"), "", true},
		{[]byte{0xeb, 0x63, 0x90}, ContainerRaw, false},
		{[]byte{0x1f}, ContainerRaw, false},
	} {
		got, err := Detect(tc.head)
		if got != tc.want || (err != nil) != tc.err {
			t.Errorf("Detect(% x) = %q, %v; want %q, err %v", tc.head, got, err, tc.want, tc.err)
		}
	}
}

func TestChunkLogLines(t *testing.T) {
	img := testImage(t)
	srv := serve(t, map[string][]byte{"img": img})
	var buf bytes.Buffer
	opts := testOptions(t)
	opts.ChunkLogger = slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if _, err := Write(context.Background(), Request{URL: srv.URL + "/img", Device: prefilled(t, 8<<20)}, opts); err != nil {
		t.Fatal(err)
	}
	n := strings.Count(buf.String(), `msg="Next chunk: `)
	if n != len(img)>>20 || !strings.Contains(buf.String(), `msg="Next chunk: 0"`) || !strings.Contains(buf.String(), `msg="Next chunk: 5"`) {
		t.Errorf("%d Next chunk lines, want %d (0..5):\n%s", n, len(img)>>20, buf.String())
	}
}

func TestGrowPlan(t *testing.T) {
	tests := []struct {
		format string
		want   string
	}{
		{"ext4", "e2fsck -fy /dev/x|resize2fs /dev/x|e2fsck -fy /dev/x"},
		{"ext2", "e2fsck -fy /dev/x|resize2fs /dev/x|e2fsck -fy /dev/x"},
		{"xfs", "mount -t xfs /dev/x /mnt|xfs_growfs /mnt|umount /mnt"},
		{"swap", ""},
	}
	for _, tc := range tests {
		var got []string
		for _, s := range GrowPlan(tc.format, "/dev/x", "/mnt") {
			got = append(got, s.String())
		}
		if strings.Join(got, "|") != tc.want {
			t.Errorf("GrowPlan(%s) = %q, want %q", tc.format, got, tc.want)
		}
	}
}

// fakeRunner records commands; it fails the command named fail with exit
// code code.
type fakeRunner struct {
	calls []string
	fail  string
	code  int
}

type exitErr int

func (e exitErr) Error() string { return "exit status " + strconv.Itoa(int(e)) }
func (e exitErr) ExitCode() int { return int(e) }

func (f *fakeRunner) Run(_ context.Context, name string, args ...string) ([]byte, error) {
	f.calls = append(f.calls, strings.Join(append([]string{name}, args...), " "))
	if name == f.fail {
		return []byte("some output"), exitErr(f.code)
	}
	return nil, nil
}

func TestGrowRunner(t *testing.T) {
	// e2fsck exit 1 (errors corrected) is success
	r := &fakeRunner{fail: "e2fsck", code: 1}
	if err := Grow(context.Background(), r, "ext4", "/dev/x"); err != nil || len(r.calls) != 3 {
		t.Errorf("Grow ext4 with e2fsck exit 1: %v, calls %q", err, r.calls)
	}
	r = &fakeRunner{fail: "resize2fs", code: 1}
	if err := Grow(context.Background(), r, "ext4", "/dev/x"); err == nil || !strings.Contains(err.Error(), `"/dev/x": resize2fs /dev/x`) {
		t.Errorf("Grow with failing resize2fs: %v", err)
	}
	// xfs: a failed grow still unmounts
	r = &fakeRunner{fail: "xfs_growfs", code: 1}
	err := Grow(context.Background(), r, "xfs", "/dev/x")
	if err == nil || len(r.calls) != 3 || !strings.HasPrefix(r.calls[2], "umount ") {
		t.Errorf("Grow xfs with failing xfs_growfs: %v, calls %q", err, r.calls)
	}
}

func TestGrowAfterWriteUsesRunner(t *testing.T) {
	img := testImage(t)
	srv := serve(t, map[string][]byte{"img": img})
	dev := prefilled(t, 8<<20)
	r := &fakeRunner{}
	opts := testOptions(t)
	opts.Runner = r
	res, err := Write(context.Background(), Request{URL: srv.URL + "/img", Device: dev, Format: "ext4"}, opts)
	if err != nil || !res.Grown || len(r.calls) != 3 || r.calls[1] != "resize2fs "+dev {
		t.Fatalf("err %v, grown %v, calls %q", err, res.Grown, r.calls)
	}
}

func TestTotalTimeout(t *testing.T) {
	data := compress(t, ContainerGzip, testImage(t))
	// a slow server: a few bytes every 50 ms, never idle for long
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(len(data)))
		for i := 0; i < len(data); i += 100 {
			if _, err := w.Write(data[i:min(i+100, len(data))]); err != nil {
				return
			}
			w.(http.Flusher).Flush()
			select {
			case <-time.After(50 * time.Millisecond):
			case <-r.Context().Done():
				return
			}
		}
	}))
	defer srv.Close()
	dev := prefilled(t, 8<<20)
	opts := testOptions(t)
	opts.IdleTimeout = 1 * time.Second
	opts.Timeout = 500 * time.Millisecond
	t0 := time.Now()
	_, err := Write(context.Background(), Request{URL: srv.URL + "/slow.gz", Device: dev}, opts)
	if err == nil || !strings.Contains(err.Error(), "total timeout") || time.Since(t0) > 5*time.Second {
		t.Fatalf("err = %v after %s, want the total timeout", err, time.Since(t0))
	}
	checkStartZeroed(t, dev)
}

var _ io.Reader = (*resumingReader)(nil)
