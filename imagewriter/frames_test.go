package imagewriter

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/imprint-dev/imprint/internal/testenv"
)

// frameImage is testImage with two whole 1 MiB frames of zeroes (MiB 2 and
// 3), so a 1 MiB-frame image has zero frames, data frames and a short tail.
func frameImage(t testing.TB) []byte {
	img := bytes.Clone(testImage(t))
	clear(img[2<<20 : 4<<20])
	return img
}

// framed converts raw into a multi-frame image of 1 MiB frames.
func framed(t testing.TB, raw []byte) ([]byte, *FrameManifest, []byte) {
	t.Helper()
	var buf bytes.Buffer
	m, err := WriteFrames(context.Background(), &buf, bytes.NewReader(raw), FrameOptions{FrameSize: 1 << 20, Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	mb, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), m, mb
}

func TestWriteFramesManifest(t *testing.T) {
	img := frameImage(t)
	data, m, mb := framed(t, img)
	if len(m.Frames) != 7 || m.Size != int64(len(img)) || m.CompressedSize != int64(len(data)) {
		t.Fatalf("manifest: %d frames, size %d, compressed %d; want 7, %d, %d", len(m.Frames), m.Size, m.CompressedSize, len(img), len(data))
	}
	for i, f := range m.Frames {
		if want := i == 2 || i == 3; f.Zero != want {
			t.Errorf("frame %d: zero %v, want %v", i, f.Zero, want)
		}
		if got := sha256hex(data[f.Offset : f.Offset+f.Length]); f.SHA256 != got {
			t.Errorf("frame %d: sha256 %s, want %s", i, f.SHA256, got)
		}
	}
	if m.SHA256 != sha256hex(img) || m.CompressedSHA256 != sha256hex(data) {
		t.Errorf("whole-image digests %s %s, want %s %s", m.SHA256, m.CompressedSHA256, sha256hex(img), sha256hex(data))
	}
	if _, err := ParseFrameManifest(mb); err != nil {
		t.Fatalf("its own manifest does not parse: %v", err)
	}
	// One zstd stream to every reader: Go's decoder...
	dec, _ := zstd.NewReader(nil)
	defer dec.Close()
	if got, err := dec.DecodeAll(data, nil); err != nil || !bytes.Equal(got, img) {
		t.Errorf("zstd stream decode: %v (equal %v)", err, bytes.Equal(got, img))
	}
	// ...and the zstd CLI.
	testenv.RequireTool(t, "zstd")
	p := filepath.Join(t.TempDir(), "x.img.zst")
	os.WriteFile(p, data, 0o644)
	out, err := exec.Command("zstd", "-d", "-c", p).Output()
	if err != nil || !bytes.Equal(out, img) {
		t.Errorf("zstd -d: %v, %d bytes, equal %v", err, len(out), bytes.Equal(out, img))
	}
}

func TestParseFrameManifestErrors(t *testing.T) {
	_, m, _ := framed(t, frameImage(t))
	edit := func(f func(m *FrameManifest)) []byte {
		c := *m
		c.Frames = append([]Frame(nil), m.Frames...)
		f(&c)
		b, _ := json.Marshal(&c)
		return b
	}
	tests := []struct {
		name string
		doc  []byte
		want string
	}{
		{"unknown field", []byte(`{"format":"imprint-zstd-frames","nope":1}`), `unknown field "nope"`},
		{"format", edit(func(m *FrameManifest) { m.Format = "x" }), `format: "x"`},
		{"version", edit(func(m *FrameManifest) { m.Version = 2 }), "version: 2"},
		{"frame size", edit(func(m *FrameManifest) { m.FrameSize = 1000 }), "frame_size: 1000"},
		{"gap", edit(func(m *FrameManifest) { m.Frames[3].Offset++ }), "frames[3].offset"},
		{"short frame", edit(func(m *FrameManifest) { m.Frames[1].Size-- }), "frames[1].size"},
		{"bad hex", edit(func(m *FrameManifest) { m.Frames[4].SHA256 = "zz" }), "frames[4].sha256"},
		{"compressed size", edit(func(m *FrameManifest) { m.CompressedSize++ }), "compressed_size"},
		{"size", edit(func(m *FrameManifest) { m.Size-- }), "size:"},
		{"no frames", edit(func(m *FrameManifest) { m.Frames = nil }), "frames: empty"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseFrameManifest(tc.doc)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestWriteFramesImage(t *testing.T) {
	img := frameImage(t)
	data, m, mb := framed(t, img)
	srv := serve(t, map[string][]byte{"x.img.zst": data, "x.img.zst" + FrameManifestSuffix: mb})
	for _, tc := range []struct {
		name    string
		workers int
		fresh   bool
		sha     string
	}{
		{"one worker, old disk", 1, false, ""},
		{"three workers, old disk, sha256 of the file", 3, false, sha256hex(data)},
		{"fresh file", 2, true, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dev := filepath.Join(t.TempDir(), "disk.img")
			if !tc.fresh {
				dev = prefilled(t, 8<<20)
			}
			opts := testOptions(t)
			opts.FrameWorkers = tc.workers
			res, err := Write(context.Background(), Request{URL: srv.URL + "/x.img.zst", Device: dev, SHA256: tc.sha, MD5: md5hex(img), RawSize: int64(len(img))}, opts)
			if err != nil {
				t.Fatalf("Write: %v", err)
			}
			checkTarget(t, dev, img)
			if res.Frames != 7 || res.BytesWritten != int64(len(img)) {
				t.Errorf("result %+v", res)
			}
			if tc.fresh && res.SkippedZero < 2<<20 || !tc.fresh && res.ZeroedOut < 2<<20 {
				t.Errorf("zero frames: skipped %d, zeroed out %d; want the 2 MiB of zero frames left to the target", res.SkippedZero, res.ZeroedOut)
			}
			if tc.sha != "" {
				if res.SHA256 != tc.sha || !strings.Contains(strings.Join(res.Verified, ","), "sha256") {
					t.Errorf("sha256 %s verified %v", res.SHA256, res.Verified)
				}
				if res.BytesRead != m.CompressedSize {
					t.Errorf("read %d bytes, want the whole file (%d) for its sha256", res.BytesRead, m.CompressedSize)
				}
			} else if res.BytesRead >= m.CompressedSize {
				t.Errorf("read %d of %d bytes: the zero frames were downloaded", res.BytesRead, m.CompressedSize)
			}
		})
	}
	// file:// works the same, and the manifest can be named explicitly.
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "img.zst"), data, 0o644)
	os.WriteFile(filepath.Join(dir, "other.json"), mb, 0o644)
	dev := prefilled(t, 8<<20)
	res, err := Write(context.Background(), Request{URL: filepath.Join(dir, "img.zst"), ManifestURL: filepath.Join(dir, "other.json"), Device: dev}, testOptions(t))
	if err != nil || res.Frames != 7 {
		t.Fatalf("file: %v, %+v", err, res)
	}
	checkTarget(t, dev, img)
}

func TestFramesCorruptFrameNeverReachesTarget(t *testing.T) {
	img := frameImage(t)
	data, m, mb := framed(t, img)
	flip := func(frame int) []byte {
		f := m.Frames[frame]
		b := bytes.Clone(data)
		b[f.Offset+f.Length/2] ^= 0x55
		return b
	}
	wrongSum := *m
	wrongSum.Frames = append([]Frame(nil), m.Frames...)
	wrongSum.Frames[4].SHA256 = m.Frames[0].SHA256
	wsb, _ := wrongSum.Marshal()
	for _, tc := range []struct {
		name     string
		data, mb []byte
		bad      int
		req      Request
	}{
		{"a byte of a data frame flipped", flip(4), mb, 4, Request{}},
		{"the manifest's digest of the frame differs", data, wsb, 4, Request{}},
		// with the file's sha256 asked for, zero frames are downloaded and
		// checked too
		{"a byte of a zero frame flipped", flip(2), mb, 2, Request{SHA256: m.CompressedSHA256}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := serve(t, map[string][]byte{"x.zst": tc.data, "x.zst.manifest.json": tc.mb})
			dev := prefilled(t, 8<<20)
			req := tc.req
			req.URL, req.Device = srv.URL+"/x.zst", dev
			_, err := Write(context.Background(), req, testOptions(t))
			want := fmt.Sprintf("frame %d (bytes", tc.bad)
			if err == nil || !strings.Contains(err.Error(), want) || !errors.Is(err, ErrVerify) || errors.Is(err, ErrSource) {
				t.Fatalf("err = %v, want a verification failure naming %q", err, want)
			}
			t.Log(err)
			checkStartZeroed(t, dev)
			got, _ := os.ReadFile(dev)
			// none of the bad frame's bytes (nor any after it) reached the target
			if !bytes.Equal(got[tc.bad<<20:], bytes.Repeat([]byte{0xEE}, len(got)-tc.bad<<20)) {
				t.Errorf("bytes of frame %d or later were written", tc.bad)
			}
		})
	}
}

// dyingServer serves the image with Range until it has sent limit bytes of
// it in all, then cuts the connection and answers every later request with
// 503: a mirror that dies mid-stream.
type dyingServer struct {
	files map[string][]byte
	limit int64
	sent  atomic.Int64
	dead  atomic.Bool
	reqs  atomic.Int32
}

func (s *dyingServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.reqs.Add(1)
	b, ok := s.files[strings.TrimPrefix(r.URL.Path, "/")]
	if !ok {
		http.NotFound(w, r)
		return
	}
	if s.dead.Load() {
		http.Error(w, "dead", http.StatusServiceUnavailable)
		return
	}
	if strings.HasSuffix(r.URL.Path, ".json") {
		w.Write(b)
		return
	}
	http.ServeContent(&limitedWriter{ResponseWriter: w, s: s}, r, r.URL.Path, time.Unix(1700000000, 0), bytes.NewReader(b))
}

type limitedWriter struct {
	http.ResponseWriter
	s *dyingServer
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	left := l.s.limit - l.s.sent.Load()
	if left <= 0 || l.s.dead.Load() {
		l.s.dead.Store(true)
		panic(http.ErrAbortHandler)
	}
	if int64(len(p)) > left {
		l.ResponseWriter.Write(p[:left])
		l.s.sent.Add(left)
		l.ResponseWriter.(http.Flusher).Flush()
		l.s.dead.Store(true)
		panic(http.ErrAbortHandler)
	}
	n, err := l.ResponseWriter.Write(p)
	l.s.sent.Add(int64(n))
	return n, err
}

func TestFramesMirrorCutMidStream(t *testing.T) {
	img := frameImage(t)
	data, _, mb := framed(t, img)
	files := map[string][]byte{"x.img.zst": data, "x.img.zst.manifest.json": mb}
	// The first mirror dies after half the file, inside a frame.
	first := &dyingServer{files: files, limit: int64(len(data))/2 + 777}
	s1 := httptest.NewServer(first)
	defer s1.Close()
	second := serve(t, files)
	dev := prefilled(t, 8<<20)
	res, err := Write(context.Background(), Request{URL: s1.URL + "/x.img.zst", Mirrors: []string{second.URL + "/x.img.zst"},
		Device: dev, SHA256: sha256hex(data)}, testOptions(t))
	if err != nil {
		t.Fatalf("Write: %v", err)
	}
	checkTarget(t, dev, img)
	if !first.dead.Load() || res.MirrorSwitches < 1 {
		t.Errorf("the first mirror did not die mid-stream (dead %v) or was not replaced (switches %d)", first.dead.Load(), res.MirrorSwitches)
	}
	if res.SHA256 != sha256hex(data) {
		t.Errorf("sha256 of the file %s, want %s", res.SHA256, sha256hex(data))
	}
	// The first mirror down from the start: its manifest is not readable,
	// the second one's is used.
	dev = prefilled(t, 8<<20)
	res, err = Write(context.Background(), Request{URL: s1.URL + "/x.img.zst", Mirrors: []string{second.URL + "/x.img.zst"}, Device: dev}, testOptions(t))
	if err != nil {
		t.Fatalf("Write with the first mirror dead: %v", err)
	}
	checkTarget(t, dev, img)
}

func TestFramesTruncatedAndDisagreeing(t *testing.T) {
	img := frameImage(t)
	data, m, mb := framed(t, img)
	other := bytes.Clone(img)
	copy(other[5<<20:], "a different image")
	otherData, _, _ := framed(t, other)
	bigger := *m
	bigger.Frames = append([]Frame(nil), m.Frames...)
	bigger.Frames[6].Length += 10
	bigger.CompressedSize += 10
	bb, _ := bigger.Marshal()
	mz := *m
	mz.Frames = append([]Frame(nil), m.Frames...)
	mz.Frames[4].Zero = true
	markedZero, _ := mz.Marshal()
	for _, tc := range []struct {
		name     string
		data, mb []byte
		req      Request
		want     string
		early    bool // refused before the target is opened: left untouched
	}{
		{"truncated file", data[:len(data)-100], mb, Request{}, "truncated, or not the file the manifest describes", false},
		{"manifest of another file", otherData, mb, Request{}, "its manifest says", false},
		{"manifest with other sizes", data, bb, Request{}, "its manifest says", false},
		// the file's sha256 does not vouch for the manifest's zero marks:
		// a data frame marked zero must not be written as zeroes
		{"data frame marked zero, the file's sha256 given", data, markedZero, Request{SHA256: sha256hex(data)}, "frame 4 (bytes", false},
		{"request's sha256 is not the manifest's", data, mb, Request{SHA256: sha256hex(otherData)}, "the manifest describes a file whose sha256 is", false},
		{"manifest unparseable", data, []byte("{"), Request{}, "frame manifest:", true},
		{"declared gzip", data, mb, Request{Container: ContainerGzip}, "declared gzip", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := serve(t, map[string][]byte{"x.zst": tc.data, "x.zst.manifest.json": tc.mb})
			dev := prefilled(t, 8<<20)
			req := tc.req
			req.URL, req.Device = srv.URL+"/x.zst", dev
			_, err := Write(context.Background(), req, testOptions(t))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			t.Log(err)
			if tc.early {
				if got, _ := os.ReadFile(dev); !bytes.Equal(got, bytes.Repeat([]byte{0xEE}, 8<<20)) {
					t.Error("the target was written before the manifest was checked")
				}
				return
			}
			checkStartZeroed(t, dev)
		})
	}
	// a truncated file on disk
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "x.zst"), data[:len(data)-100], 0o644)
	os.WriteFile(filepath.Join(dir, "x.zst.manifest.json"), mb, 0o644)
	_, err := Write(context.Background(), Request{URL: filepath.Join(dir, "x.zst"), Device: prefilled(t, 8<<20)}, testOptions(t))
	if err == nil || !strings.Contains(err.Error(), "truncated") || !errors.Is(err, ErrSource) {
		t.Errorf("truncated file: err = %v (want a source failure)", err)
	}
}

func TestFramesNoManifestStreams(t *testing.T) {
	// A .zst without a manifest is one zstd stream, as before.
	img := testImage(t)
	zst := compress(t, ContainerZstd, img)
	srv := serve(t, map[string][]byte{"plain.zst": zst})
	dev := prefilled(t, 8<<20)
	res, err := Write(context.Background(), Request{URL: srv.URL + "/plain.zst", Device: dev}, testOptions(t))
	if err != nil || res.Frames != 0 {
		t.Fatalf("Write: %v, frames %d", err, res.Frames)
	}
	checkTarget(t, dev, img)
	// A 403 for the manifest (what some object stores answer for a
	// missing object) is no manifest either.
	forbidding := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, ".json") {
			http.Error(w, "AccessDenied", http.StatusForbidden)
			return
		}
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(zst))
	}))
	defer forbidding.Close()
	if res, err := Write(context.Background(), Request{URL: forbidding.URL + "/plain.zst", Device: dev}, testOptions(t)); err != nil || res.Frames != 0 {
		t.Fatalf("manifest forbidden: %v, frames %d", err, res.Frames)
	}
	checkTarget(t, dev, img)
	// An explicit manifest that is missing is an error.
	_, err = Write(context.Background(), Request{URL: srv.URL + "/plain.zst", ManifestURL: srv.URL + "/missing.json", Device: dev}, testOptions(t))
	if err == nil || !strings.Contains(err.Error(), "missing.json") {
		t.Errorf("missing explicit manifest: err = %v", err)
	}
}

func TestFramesManifestSHA256(t *testing.T) {
	img := frameImage(t)
	data, _, mb := framed(t, img)
	good := serve(t, map[string][]byte{"x.zst": data, "x.zst.manifest.json": mb})
	// a mirror whose manifest is not the expected document (one byte more:
	// its digest differs, whatever it says)
	forged := append(bytes.Clone(mb), ' ')
	bad := serve(t, map[string][]byte{"x.zst": data, "x.zst.manifest.json": forged})
	sum := sha256hex(mb)

	dev := prefilled(t, 8<<20)
	res, err := Write(context.Background(), Request{URL: good.URL + "/x.zst", Device: dev, ManifestSHA256: sum}, testOptions(t))
	if err != nil {
		t.Fatal(err)
	}
	checkTarget(t, dev, img)
	if !strings.Contains(strings.Join(res.Verified, ","), "manifest-sha256") || res.BytesRead >= int64(len(data)) {
		t.Errorf("verified %v, read %d of %d bytes: want the manifest's digest checked and the zero frames not downloaded", res.Verified, res.BytesRead, len(data))
	}
	// the first mirror's manifest is not the expected one: the next mirror's is used
	dev = prefilled(t, 8<<20)
	if _, err := Write(context.Background(), Request{URL: bad.URL + "/x.zst", Mirrors: []string{good.URL + "/x.zst"}, Device: dev, ManifestSHA256: sum}, testOptions(t)); err != nil {
		t.Fatalf("with a forged manifest on the first mirror: %v", err)
	}
	checkTarget(t, dev, img)
	// only a forged manifest: refused before the target is touched
	dev = prefilled(t, 8<<20)
	_, err = Write(context.Background(), Request{URL: bad.URL + "/x.zst", Device: dev, ManifestSHA256: sum}, testOptions(t))
	if err == nil || !strings.Contains(err.Error(), "the request expects "+sum) {
		t.Fatalf("forged manifest: err = %v", err)
	}
	if got, _ := os.ReadFile(dev); !bytes.Equal(got, bytes.Repeat([]byte{0xEE}, 8<<20)) {
		t.Error("the target was written")
	}
	// a digest of the manifest needs a manifest
	plain := serve(t, map[string][]byte{"p.zst": compress(t, ContainerZstd, img)})
	_, err = Write(context.Background(), Request{URL: plain.URL + "/p.zst", Device: dev, ManifestSHA256: sum}, testOptions(t))
	if err == nil || !strings.Contains(err.Error(), "no frame manifest") {
		t.Errorf("manifest digest without a manifest: err = %v", err)
	}
}

func TestFramesStalledMirrorReplaced(t *testing.T) {
	img := frameImage(t)
	data, _, mb := framed(t, img)
	// The first mirror sends a third of the file, then nothing.
	cs := &cutServer{data: data, cut: len(data) / 3, cuts: 100, stall: true}
	stalled := httptest.NewServer(cs)
	defer stalled.Close()
	good := serve(t, map[string][]byte{"x.zst": data, "x.zst.manifest.json": mb})
	dev := prefilled(t, 8<<20)
	opts := testOptions(t)
	opts.IdleTimeout = 300 * time.Millisecond
	res, err := Write(context.Background(), Request{URL: stalled.URL + "/x.zst", ManifestURL: good.URL + "/x.zst.manifest.json",
		Mirrors: []string{good.URL + "/x.zst"}, Device: dev, ManifestSHA256: sha256hex(mb)}, opts)
	if err != nil {
		t.Fatal(err)
	}
	checkTarget(t, dev, img)
	if res.MirrorSwitches != 1 || res.Retries != 1 {
		t.Errorf("switches %d, retries %d; want 1 and 1", res.MirrorSwitches, res.Retries)
	}
}

func TestFramesFuelMetadata(t *testing.T) {
	img := frameImage(t)
	data, _, mb := framed(t, img)
	yaml := func(size int, md5 string) []byte {
		return []byte(fmt.Sprintf("images:\n- container: zstd\n  container_name: x.img.zst\n  raw_size: %d\n  raw_md5: %s\n", size, md5))
	}
	for _, tc := range []struct {
		name string
		meta []byte
		req  Request
		want string // "" for success
	}{
		// the frames' digests stand for the metadata's raw_md5 (not computed)
		{"raw_md5 beside the image is not computed", yaml(len(img), md5hex([]byte("other"))), Request{FuelMetadata: true}, ""},
		{"raw_size beside the image is checked", yaml(len(img)+1, md5hex(img)), Request{FuelMetadata: true}, "but the manifest"},
		{"an md5 the caller gives is computed", nil, Request{MD5: md5hex([]byte("other")), RawSize: int64(len(img))}, "md5 of the image"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			files := map[string][]byte{"x.img.zst": data, "x.img.zst.manifest.json": mb}
			if tc.meta != nil {
				files["x.yaml"] = tc.meta
			}
			srv := serve(t, files)
			dev := prefilled(t, 8<<20)
			req := tc.req
			req.URL, req.Device = srv.URL+"/x.img.zst", dev
			res, err := Write(context.Background(), req, testOptions(t))
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				checkTarget(t, dev, img)
				if v := strings.Join(res.Verified, ","); strings.Contains(v, "md5") || !strings.Contains(v, "frames") {
					t.Errorf("verified %v", res.Verified)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestManifestURLs(t *testing.T) {
	tests := []struct {
		req  Request
		want []string
	}{
		{Request{URL: "http://h/i/x.img.zst"}, []string{"http://h/i/x.img.zst.manifest.json"}},
		{Request{URL: "http://h/x.zst?token=a%2Fb", Mirrors: []string{"/srv/x.zst", "http://m/x.img.gz"}},
			[]string{"http://h/x.zst.manifest.json?token=a%2Fb", "/srv/x.zst.manifest.json"}},
		{Request{URL: "http://h/x.img.gz"}, nil},
		{Request{URL: "http://h/x.img.gz", ManifestURL: "http://h/m.json"}, []string{"http://h/m.json"}},
	}
	for _, tc := range tests {
		got := manifestURLs(tc.req)
		if strings.Join(got, " ") != strings.Join(tc.want, " ") {
			t.Errorf("manifestURLs(%+v) = %q, want %q", tc.req, got, tc.want)
		}
	}
}
