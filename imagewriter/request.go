package imagewriter

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"runtime"
	"strings"
	"time"
)

// Container is the compression of the downloaded stream.
type Container string

// The containers imprint reads. Nailgun's image_data uses "gzip" and "raw".
const (
	ContainerAuto Container = "" // detect from the magic bytes
	ContainerRaw  Container = "raw"
	ContainerGzip Container = "gzip"
	ContainerZstd Container = "zstd"
	ContainerXZ   Container = "xz"
)

// Request is one image to write: where it comes from, where it goes and what
// it must hash to.
type Request struct {
	// URL of the image: http://, https:// or file:// (an absolute path is
	// taken as a file).
	URL string
	// Device is the target: a block device, or a regular file when
	// Options.AllowRegularFile is set.
	Device string
	// Container is the declared compression (Nailgun's image_data.container).
	// Empty means detect; otherwise the magic bytes must agree.
	Container Container

	// SHA256 / SHA512 are hex digests of the bytes as downloaded (what
	// sha256sum IMAGE.gz prints), verified inline. At most one may be set.
	SHA256 string
	SHA512 string
	// MD5 is the hex md5 of the first RawSize bytes of the decompressed image
	// (Fuel's raw_md5); it requires RawSize.
	MD5 string
	// RawSize is the decompressed size in bytes (Fuel's raw_size). When set,
	// a stream of any other length is a failure.
	RawSize int64

	// MetadataURL is a Fuel image metadata YAML (docs/fuel-agent.md §13); the
	// entry whose container_name equals the image's base name supplies
	// raw_size and raw_md5. Fetch or parse failures are errors.
	MetadataURL string
	// FuelMetadata derives the metadata URL the way fuel-agent does
	// (FuelMetadataURLs) and uses it when it exists; a missing or unreadable
	// file only logs a warning, as in fuel-agent.
	FuelMetadata bool

	// ManifestURL is the frame manifest of a multi-frame zstd image
	// (frames.go). Empty: when the image's name ends in ".zst",
	// "<URL>.manifest.json" (then the same beside each mirror) is used if it
	// exists; without one the image is streamed as one zstd stream.
	ManifestURL string
	// ManifestSHA256 is the hex sha256 of the manifest document. It
	// anchors the manifest, whose per-frame digests then cover every byte
	// of the image: the whole image is authenticated without hashing the
	// file a second time (which SHA256 does). It requires a manifest.
	ManifestSHA256 string
	// Mirrors are more URLs of the same image file, tried in turn when a
	// frame cannot be read from the one in use (multi-frame images only: a
	// broken download restarts at the frame boundary on the next mirror).
	Mirrors []string

	// Format is the filesystem inside the image (ext2|ext3|ext4|xfs). When
	// set and Options.Runner is not nil, the filesystem is grown to fill the
	// target after a verified write. Empty or anything else: not grown.
	Format string
}

// Options tune how a Request is carried out. The zero value is usable.
type Options struct {
	// Logger receives step logs. Nil discards them.
	Logger *slog.Logger
	// ChunkLogger receives fuel-agent's "Next chunk: N" line once per MiB of
	// image written, at Debug level (Astute's progress parser counts them).
	// Nil sends them to Logger at Debug level.
	ChunkLogger *slog.Logger
	// Progress is called from the writer goroutine at most every
	// ProgressInterval and once at the end; it must return quickly.
	Progress         func(Progress)
	ProgressInterval time.Duration // default 1s

	// AllowRegularFile lets Device be a regular file (tests, image
	// building, write-image to a file). A missing file is created.
	AllowRegularFile bool
	// TargetZeroed asserts the target already reads back as zeroes (for
	// example after a BLKZEROOUT the device offloads, or a discard on a device
	// that guarantees zeroes). Only then are all-zero blocks skipped instead
	// of written. A regular file created or empty at open is known to be
	// zero and is always written sparsely.
	TargetZeroed bool
	// NoZeroOffload writes every zero byte. By default, runs of at least
	// 1 MiB of zeroes are handed to the device as write-zeroes
	// (fallocate PUNCH_HOLE|KEEP_SIZE: the kernel's zeroout without
	// fallback, which fails rather than emulate on a device that cannot
	// guarantee zeroes), which is how a partly empty filesystem image is
	// written faster than the disk takes data. Set it for a device whose
	// write-zeroes is slower than writing.
	NoZeroOffload bool
	// NoDirect disables O_DIRECT (it is also dropped automatically where the
	// target's filesystem refuses it).
	NoDirect bool

	// BufferSize is the size of each aligned write buffer (default 4 MiB);
	// Buffers is how many are in flight between decoder and writer (default 4).
	BufferSize int
	Buffers    int
	// SyncEvery is how many bytes are written between fdatasyncs (default
	// 256 MiB), so the final flush is short and BytesDurable is honest.
	SyncEvery int64
	// HoldBack is how much of the start of the target is held back, written
	// last after verification, and zeroed on failure (default 1 MiB).
	HoldBack int

	// IdleTimeout aborts a connection that delivers no byte for this long (a
	// stalled server); the download then resumes (default 30s). It also bounds
	// the wait for response headers.
	IdleTimeout time.Duration
	// ConnectTimeout bounds the TCP/TLS connect (default 30s).
	ConnectTimeout time.Duration
	// Timeout bounds the whole Write, however fast bytes trickle in (0: none).
	Timeout time.Duration
	// MaxRetries is how many consecutive failed attempts (without a byte of
	// progress in between) are tolerated per URL (default 10; <0 means none).
	MaxRetries int
	// RetryBackoff is the first wait between attempts; it doubles up to
	// MaxBackoff (defaults 500ms and 10s).
	RetryBackoff time.Duration
	MaxBackoff   time.Duration
	// HTTPClient replaces the default client (for custom TLS roots). Its
	// transport should not transparently decompress.
	HTTPClient HTTPDoer

	// ZstdConcurrency is the zstd decoder concurrency (default 1: fastest on
	// small machines, research/perf-baseline.md pitfall 2).
	ZstdConcurrency int
	// GzipWorkers is how many goroutines inflate the members of an indexed
	// gzip image (IndexedGzipWriter, BGZF) at once (default GOMAXPROCS). A
	// plain gzip stream is always inflated on one goroutine.
	GzipWorkers int
	// FrameWorkers is how many goroutines decode and check the frames of a
	// multi-frame zstd image at once (default GOMAXPROCS).
	FrameWorkers int
	// PureGoXZ forces the Go xz decoder; by default `xz -dc` from PATH is
	// used when present (2.5x faster), else the Go decoder.
	PureGoXZ bool

	// Runner runs e2fsck/resize2fs/xfs_growfs/mount to grow the filesystem.
	// Nil skips growing.
	Runner Runner

	// Guard, when set, must admit Device before it is opened for writing
	// (the agent's devguard.Set: the devices the prepared job may write).
	Guard interface {
		Check(path, what string) error
	}
}

// HTTPDoer is the part of *http.Client the writer uses.
type HTTPDoer interface {
	Do(*http.Request) (*http.Response, error)
}

// Runner runs an external command and returns its standard output; its
// error carries the standard error and, for a non-zero exit, unwraps to
// something with ExitCode() int (internal/sys.Exec is the real one).
type Runner interface {
	Run(ctx context.Context, name string, args ...string) ([]byte, error)
}

// Progress is one structured progress event.
type Progress struct {
	Phase        string        // "download", "finish", "grow", "done"
	BytesRead    int64         // bytes downloaded (compressed)
	TotalRead    int64         // size of the download, -1 when unknown
	BytesWritten int64         // decompressed bytes handed to the target
	BytesDurable int64         // of those, known to be on stable storage
	TotalWritten int64         // decompressed size when known, else -1
	Rate         float64       // decompressed bytes per second so far
	Elapsed      time.Duration // since the download started
	ETA          time.Duration // estimate; -1 when unknown
	Retries      int           // connections re-opened so far
}

// Result describes a successful write.
type Result struct {
	Container    Container // detected container
	BytesRead    int64     // compressed bytes downloaded (excluding re-reads)
	BytesWritten int64     // image size
	SkippedZero  int64     // bytes not written because they were zero on a zeroed target
	ZeroedOut    int64     // zero bytes the device zeroed itself (write-zeroes) instead of being written
	SHA256       string    // hex digest of the downloaded bytes, when computed
	SHA512       string
	RawMD5       string // hex md5 of the image, when computed
	Verified     []string
	Direct       bool // O_DIRECT was used
	Retries      int
	// Frames is the number of frames of a multi-frame zstd image (0 for
	// a stream); MirrorSwitches how often the download moved to the next
	// mirror.
	Frames         int
	MirrorSwitches int
	Duration       time.Duration
	Grown          bool
}

// Validate reports every problem of the request, each prefixed by its field.
func (r Request) Validate() error {
	var errs []error
	bad := func(field, format string, a ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, a...)))
	}
	if r.URL == "" {
		bad("url", "required")
	} else if _, err := parseSource(r.URL); err != nil {
		bad("url", "%v", err)
	}
	if r.Device == "" {
		bad("device", "required")
	}
	for i, m := range r.Mirrors {
		if _, err := parseSource(m); err != nil {
			bad(fmt.Sprintf("mirrors[%d]", i), "%v", err)
		}
	}
	if r.ManifestURL != "" {
		if _, err := parseSource(r.ManifestURL); err != nil {
			bad("manifest", "%v", err)
		}
	}
	switch r.Container {
	case ContainerAuto, ContainerRaw, ContainerGzip, ContainerZstd, ContainerXZ:
	default:
		bad("container", "%q is not one of gzip, zstd, xz, raw", r.Container)
	}
	checkHex := func(field, v string, size int) {
		if v == "" {
			return
		}
		if b, err := hex.DecodeString(v); err != nil || len(b) != size {
			bad(field, "%q is not a %d-character hex digest", v, 2*size)
		}
	}
	checkHex("sha256", r.SHA256, 32)
	checkHex("sha512", r.SHA512, 64)
	checkHex("md5", r.MD5, 16)
	checkHex("manifest_sha256", r.ManifestSHA256, 32)
	if r.SHA256 != "" && r.SHA512 != "" {
		bad("sha512", "give either sha256 or sha512, not both")
	}
	if r.MD5 != "" && r.RawSize <= 0 {
		bad("size", "required with md5 (md5 covers the first size bytes of the image)")
	}
	if r.RawSize < 0 {
		bad("size", "must not be negative")
	}
	if r.MetadataURL != "" {
		if _, err := parseSource(r.MetadataURL); err != nil {
			bad("metadata", "%v", err)
		}
	}
	switch r.Format {
	case "", "ext2", "ext3", "ext4", "xfs":
	default:
		bad("format", "%q is not one of ext2, ext3, ext4, xfs", r.Format)
	}
	return errors.Join(errs...)
}

// source is a parsed image location.
type source struct {
	scheme string // http, https, file
	url    string // as given (http/https)
	path   string // file
}

func parseSource(s string) (source, error) {
	if strings.HasPrefix(s, "/") {
		return source{scheme: "file", path: s, url: "file://" + s}, nil
	}
	u, err := url.Parse(s)
	if err != nil {
		return source{}, fmt.Errorf("%q: %v", s, err)
	}
	switch u.Scheme {
	case "http", "https":
		if u.Host == "" {
			return source{}, fmt.Errorf("%q: no host", s)
		}
		return source{scheme: u.Scheme, url: s}, nil
	case "file":
		if u.Path == "" || (u.Host != "" && u.Host != "localhost") {
			return source{}, fmt.Errorf("%q: want file:///absolute/path", s)
		}
		return source{scheme: "file", path: u.Path, url: s}, nil
	default:
		return source{}, fmt.Errorf("%q: scheme %q is not http, https or file", s, u.Scheme)
	}
}

func (o Options) withDefaults() Options {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.ChunkLogger == nil {
		o.ChunkLogger = o.Logger
	}
	if o.ProgressInterval <= 0 {
		o.ProgressInterval = time.Second
	}
	if o.BufferSize <= 0 {
		o.BufferSize = 4 << 20
	}
	o.BufferSize = (o.BufferSize + alignment - 1) &^ (alignment - 1)
	if o.Buffers <= 0 {
		o.Buffers = 4
	}
	if o.SyncEvery <= 0 {
		o.SyncEvery = 256 << 20
	}
	if o.HoldBack <= 0 {
		o.HoldBack = 1 << 20
	}
	o.HoldBack = (o.HoldBack + alignment - 1) &^ (alignment - 1)
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = 30 * time.Second
	}
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = 30 * time.Second
	}
	if o.MaxRetries == 0 {
		o.MaxRetries = 10
	}
	if o.MaxRetries < 0 {
		o.MaxRetries = 0
	}
	if o.RetryBackoff <= 0 {
		o.RetryBackoff = 500 * time.Millisecond
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = 10 * time.Second
	}
	if o.GzipWorkers <= 0 {
		o.GzipWorkers = runtime.GOMAXPROCS(0)
	}
	if o.FrameWorkers <= 0 {
		o.FrameWorkers = runtime.GOMAXPROCS(0)
	}
	if o.ZstdConcurrency <= 0 {
		o.ZstdConcurrency = 1
	}
	return o
}
