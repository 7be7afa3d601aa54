package configdrive

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"time"

	"github.com/diskfs/go-diskfs/backend"
)

// chunkSize is the allocation unit of sparseImage.
const chunkSize = 64 << 10

// sparseImage is an in-memory disk image of a fixed size that only holds the
// chunks written to: a 20 MiB configdrive costs a few hundred KiB of memory.
// It satisfies go-diskfs's backend.Storage so filesystems are built on it.
type sparseImage struct {
	size   int64
	chunks map[int64][]byte
	pos    int64
}

var _ backend.Storage = (*sparseImage)(nil)
var _ backend.WritableFile = (*sparseImage)(nil)

func newSparseImage(size int64) *sparseImage {
	return &sparseImage{size: size, chunks: map[int64][]byte{}}
}

func (s *sparseImage) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("sparse image: negative offset")
	}
	if off >= s.size {
		return 0, io.EOF
	}
	n := 0
	for n < len(p) && off < s.size {
		idx, in := off/chunkSize, off%chunkSize
		l := min(int64(len(p)-n), chunkSize-in, s.size-off)
		if c, ok := s.chunks[idx]; ok {
			copy(p[n:n+int(l)], c[in:in+l])
		} else {
			clear(p[n : n+int(l)])
		}
		n += int(l)
		off += l
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (s *sparseImage) WriteAt(p []byte, off int64) (int, error) {
	if off < 0 || off+int64(len(p)) > s.size {
		return 0, errors.New("sparse image: write beyond the end of the image")
	}
	n := 0
	for n < len(p) {
		idx, in := off/chunkSize, off%chunkSize
		l := min(int64(len(p)-n), chunkSize-in)
		c, ok := s.chunks[idx]
		if !ok {
			c = make([]byte, chunkSize)
			s.chunks[idx] = c
		}
		copy(c[in:in+l], p[n:n+int(l)])
		n += int(l)
		off += l
	}
	return n, nil
}

func (s *sparseImage) Read(p []byte) (int, error) {
	n, err := s.ReadAt(p, s.pos)
	s.pos += int64(n)
	return n, err
}

func (s *sparseImage) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += s.pos
	case io.SeekEnd:
		offset += s.size
	default:
		return 0, errors.New("sparse image: bad whence")
	}
	if offset < 0 {
		return 0, errors.New("sparse image: negative position")
	}
	s.pos = offset
	return offset, nil
}

func (s *sparseImage) Stat() (fs.FileInfo, error)              { return sparseInfo{s.size}, nil }
func (s *sparseImage) Close() error                            { return nil }
func (s *sparseImage) Sys() (*os.File, error)                  { return nil, errors.New("sparse image: no OS file") }
func (s *sparseImage) Writable() (backend.WritableFile, error) { return s, nil }
func (s *sparseImage) Path() string                            { return "" }

// writeTo copies the whole image to w at offset 0: allocated chunks as they
// are, holes as zeroes unless skipHoles (the target is known to read back as
// zeroes, e.g. a fresh sparse file).
func (s *sparseImage) writeTo(w io.WriterAt, skipHoles bool) error {
	var zero []byte
	for idx := int64(0); idx*chunkSize < s.size; idx++ {
		off := idx * chunkSize
		l := min(chunkSize, s.size-off)
		c, ok := s.chunks[idx]
		if !ok {
			if skipHoles {
				continue
			}
			if zero == nil {
				zero = make([]byte, chunkSize)
			}
			c = zero
		}
		if _, err := w.WriteAt(c[:l], off); err != nil {
			return err
		}
	}
	return nil
}

type sparseInfo struct{ size int64 }

func (i sparseInfo) Name() string       { return "configdrive.img" }
func (i sparseInfo) Size() int64        { return i.size }
func (i sparseInfo) Mode() fs.FileMode  { return 0o644 }
func (i sparseInfo) ModTime() time.Time { return time.Time{} }
func (i sparseInfo) IsDir() bool        { return false }
func (i sparseInfo) Sys() any           { return nil }
