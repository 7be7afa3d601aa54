package imagewriter

// Multi-frame zstd images: a .zst file made of independent zstd frames, each
// holding FrameSize bytes of the image (the last one less), plus a manifest
// beside it (<image>.manifest.json) giving each frame's place in the file,
// its size and the sha256 of its uncompressed bytes, and which frames are
// all zeroes. To `zstd -d` and every other reader the file is an ordinary
// zstd file (RFC 8878 §3.1: a file is a sequence of frames); the writer uses
// the manifest to decode frames on every core, check each frame before any
// of its bytes reach the target, leave zero frames to the device without
// downloading or decoding them, and restart a broken download at a frame
// boundary, on the next mirror.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"runtime"

	"github.com/klauspost/compress/zstd"
)

const (
	// FrameManifestFormat names the manifest format (its "format" field).
	FrameManifestFormat = "imprint-zstd-frames"
	// FrameManifestSuffix is appended to an image's URL to find its manifest.
	FrameManifestSuffix = ".manifest.json"
	// DefaultFrameSize is the uncompressed size of each frame unless told
	// otherwise: chosen by `make bench` (README, Performance).
	DefaultFrameSize = 4 << 20
	// MinFrameSize and MaxFrameSize bound the frame size: a frame is a
	// unit of memory in the writer (peak RSS) and must be a whole number
	// of 4 KiB blocks (O_DIRECT).
	MinFrameSize = 1 << 20
	MaxFrameSize = 16 << 20
	// maxManifest bounds the manifest document (about 160 bytes a frame:
	// 100 000 frames).
	maxManifest = 16 << 20
)

// FrameManifest describes a multi-frame zstd image.
type FrameManifest struct {
	Format string `json:"format"` // FrameManifestFormat
	// Version of the format; this package reads 1.
	Version int `json:"version"`
	// FrameSize is the uncompressed size of every frame but the last.
	FrameSize int64 `json:"frame_size"`
	// Size and SHA256 are of the whole uncompressed image
	// (`zstd -dc IMAGE.zst | sha256sum`).
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
	// CompressedSize and CompressedSHA256 are of the .zst file as stored
	// (`sha256sum IMAGE.zst`).
	CompressedSize   int64   `json:"compressed_size"`
	CompressedSHA256 string  `json:"compressed_sha256"`
	Frames           []Frame `json:"frames"`
}

// Frame is one independent zstd frame of the image.
type Frame struct {
	Offset int64 `json:"offset"` // of the frame in the .zst file
	Length int64 `json:"length"` // compressed bytes
	Size   int64 `json:"size"`   // uncompressed bytes
	// SHA256 is the hex sha256 of the frame as stored in the file (its
	// Length bytes at Offset). The writer checks it before decoding the
	// frame, so bytes that are not the image's never reach the decoder or
	// the disk; the decoded bytes are then checked by the frame's own
	// checksum (zstd's XXH64 of the content, which WriteFrames always
	// writes) and its size. A digest of the compressed bytes costs a third
	// of one of the decoded bytes on a typical image (measured: README).
	SHA256 string `json:"sha256"`
	// Zero marks a frame whose uncompressed bytes are all zeroes: the writer
	// has the device zero them without downloading or decoding the frame
	// (unless the file's sha256 is the anchor, which does not vouch for the
	// manifest: the frame is then downloaded and decoded to prove it).
	Zero bool `json:"zero,omitempty"`
}

// maxFrameLength bounds one compressed frame: zstd never expands input by
// more than a block header per 128 KiB block plus the frame header (RFC 8878
// §3.1.1); the slack is generous.
func maxFrameLength(frameSize int64) int64 { return frameSize + frameSize/64 + 64<<10 }

// ParseFrameManifest parses and checks a manifest: every frame follows the
// previous one in the file with no gap, the sizes add up and every digest is
// a hex sha256.
func ParseFrameManifest(b []byte) (*FrameManifest, error) {
	var m FrameManifest
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("frame manifest: %w", err)
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return &m, nil
}

// Validate reports every inconsistency of the manifest, naming the field.
func (m *FrameManifest) Validate() error {
	var errs []error
	bad := func(format string, a ...any) {
		errs = append(errs, fmt.Errorf("frame manifest: "+format, a...))
	}
	if m.Format != FrameManifestFormat {
		bad("format: %q, want %q", m.Format, FrameManifestFormat)
	}
	if m.Version != 1 {
		bad("version: %d, this imprint reads version 1", m.Version)
	}
	if m.FrameSize < MinFrameSize || m.FrameSize > MaxFrameSize || m.FrameSize%alignment != 0 {
		bad("frame_size: %d, want a multiple of %d between %d and %d", m.FrameSize, alignment, MinFrameSize, MaxFrameSize)
	}
	isHex := func(s string) bool { b, err := hex.DecodeString(s); return err == nil && len(b) == sha256.Size }
	if !isHex(m.SHA256) {
		bad("sha256: %q is not a hex sha256", m.SHA256)
	}
	if !isHex(m.CompressedSHA256) {
		bad("compressed_sha256: %q is not a hex sha256", m.CompressedSHA256)
	}
	if len(m.Frames) == 0 {
		bad("frames: empty")
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	var off, size int64
	for i, f := range m.Frames {
		field := fmt.Sprintf("frames[%d]", i)
		if len(errs) >= 10 {
			bad("... (more errors not shown)")
			break
		}
		if f.Offset != off {
			bad("%s.offset: %d, but the previous frame ends at %d", field, f.Offset, off)
		}
		if f.Length <= 0 || f.Length > maxFrameLength(m.FrameSize) {
			bad("%s.length: %d, want 1 to %d", field, f.Length, maxFrameLength(m.FrameSize))
		}
		last := i == len(m.Frames)-1
		if (!last && f.Size != m.FrameSize) || (last && (f.Size <= 0 || f.Size > m.FrameSize)) {
			bad("%s.size: %d, want %d (every frame but the last holds frame_size bytes)", field, f.Size, m.FrameSize)
		}
		if !isHex(f.SHA256) {
			bad("%s.sha256: %q is not a hex sha256", field, f.SHA256)
		}
		off += f.Length
		size += f.Size
	}
	if len(errs) == 0 && off != m.CompressedSize {
		bad("compressed_size: %d, but the frames add up to %d", m.CompressedSize, off)
	}
	if len(errs) == 0 && size != m.Size {
		bad("size: %d, but the frames add up to %d", m.Size, size)
	}
	return errors.Join(errs...)
}

// Marshal returns the manifest as indented JSON with a final newline.
func (m *FrameManifest) Marshal() ([]byte, error) {
	b, err := json.MarshalIndent(m, "", " ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// FrameOptions tune WriteFrames.
type FrameOptions struct {
	// FrameSize is the uncompressed bytes per frame (default
	// DefaultFrameSize; MinFrameSize to MaxFrameSize, a multiple of 4 KiB).
	FrameSize int
	// Level is the zstd level: 1 (fastest), 3 (default), 7 or 11
	// (klauspost/compress's four encoder speeds; others map to the nearest).
	Level int
	// Workers compress frames in parallel (default GOMAXPROCS).
	Workers int
}

// WriteFrames compresses src into dst as independent zstd frames of
// opts.FrameSize uncompressed bytes each (with zstd's content size and
// checksum in every frame) and returns the manifest describing what it
// wrote. Frames are compressed on opts.Workers goroutines and written in
// order; memory is about 2 × Workers frames.
func WriteFrames(ctx context.Context, dst io.Writer, src io.Reader, opts FrameOptions) (*FrameManifest, error) {
	if opts.FrameSize == 0 {
		opts.FrameSize = DefaultFrameSize
	}
	if opts.FrameSize < MinFrameSize || opts.FrameSize > MaxFrameSize || opts.FrameSize%alignment != 0 {
		return nil, fmt.Errorf("frame size %d: want a multiple of %d between %d and %d", opts.FrameSize, alignment, MinFrameSize, MaxFrameSize)
	}
	if opts.Workers <= 0 {
		opts.Workers = runtime.GOMAXPROCS(0)
	}
	if opts.Level == 0 {
		opts.Level = 3
	}
	level := zstd.EncoderLevelFromZstd(opts.Level)
	type frame struct {
		out  []byte
		sum  [sha256.Size]byte
		zero bool
	}
	newEncoder := func() (Encoder[frame], error) {
		enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(level), zstd.WithEncoderConcurrency(1),
			zstd.WithEncoderCRC(true), zstd.WithZeroFrames(true), zstd.WithWindowSize(windowFor(opts.FrameSize)))
		if err != nil {
			return nil, fmt.Errorf("zstd encoder: %w", err)
		}
		return func(in []byte) (frame, error) {
			f := frame{zero: isAllZero(in), out: enc.EncodeAll(in, make([]byte, 0, len(in)/2))}
			f.sum = sha256.Sum256(f.out)
			return f, nil
		}, nil
	}
	m := &FrameManifest{Format: FrameManifestFormat, Version: 1, FrameSize: int64(opts.FrameSize)}
	rawHash, outHash := sha256.New(), sha256.New()
	err := EncodeBlocks(ctx, src, opts.FrameSize, opts.Workers, newEncoder, func(in []byte, f frame) error {
		if _, err := dst.Write(f.out); err != nil {
			return fmt.Errorf("write: %w", err)
		}
		rawHash.Write(in)
		outHash.Write(f.out)
		m.Frames = append(m.Frames, Frame{Offset: m.CompressedSize, Length: int64(len(f.out)), Size: int64(len(in)),
			SHA256: hex.EncodeToString(f.sum[:]), Zero: f.zero && len(in) > 0})
		m.CompressedSize += int64(len(f.out))
		m.Size += int64(len(in))
		return nil
	})
	if err != nil {
		return nil, err
	}
	m.SHA256 = hex.EncodeToString(rawHash.Sum(nil))
	m.CompressedSHA256 = hex.EncodeToString(outHash.Sum(nil))
	if m.Size == 0 {
		return nil, errors.New("the image is empty")
	}
	return m, nil
}

// windowFor is the zstd window covering a whole frame: the power of two at
// or above its size (a frame never refers further back than its start).
func windowFor(frameSize int) int {
	w := zstd.MinWindowSize
	for w < frameSize && w < zstd.MaxWindowSize {
		w <<= 1
	}
	return w
}

func isAllZero(b []byte) bool {
	for len(b) > 0 {
		k := min(len(b), len(zeroes))
		if !bytes.Equal(b[:k], zeroes[:k]) {
			return false
		}
		b = b[k:]
	}
	return true
}
