package imagewriter

// Indexed gzip: a gzip stream made of independent members whose headers say
// how long each member is, so members can be inflated on several cores while
// every other gzip reader still sees one ordinary multi-member stream
// (RFC 1952 §2.2: a reader skips extra subfields it does not know).
//
// Two indexes are recognised in a member's FEXTRA field:
//
//   - "IM", LEN 8: uint32 LE total length of the member in bytes (header,
//     deflate data and trailer), uint32 LE uncompressed length. Written by
//     IndexedGzipWriter (and so by `imprint build-image`).
//   - "BC", LEN 2: BGZF (bgzip, samtools): uint16 LE total member length - 1.
//
// A stream whose first member carries neither is decoded sequentially, as
// before. A later member without an index ends the parallel part: the rest of
// the stream is read sequentially, in order, after the members before it.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"

	kflate "github.com/klauspost/compress/flate"
	kgzip "github.com/klauspost/compress/gzip"
)

const (
	gzFlagText    = 1 << 0
	gzFlagHCRC    = 1 << 1
	gzFlagExtra   = 1 << 2
	gzFlagName    = 1 << 3
	gzFlagComment = 1 << 4

	// maxIndexedMember bounds one member (compressed and uncompressed), so a
	// corrupt or hostile index cannot make the reader allocate without limit.
	maxIndexedMember = 32 << 20
	// DefaultGzipMemberSize is the uncompressed size of each member
	// IndexedGzipWriter writes unless told otherwise.
	DefaultGzipMemberSize = 4 << 20
)

// gzIndex is what a member header says about the member.
type gzIndex struct {
	total int // whole member, bytes
	raw   int // uncompressed bytes; -1 when unknown (BGZF)
}

// peekGzipIndex parses the gzip member header at the start of br without
// consuming it. ok is false when the member carries no usable index (or br
// does not start with a gzip header at all).
func peekGzipIndex(br *bufio.Reader) (gzIndex, bool) {
	h, err := br.Peek(12)
	if err != nil || h[0] != 0x1f || h[1] != 0x8b || h[2] != 8 || h[3]&gzFlagExtra == 0 {
		return gzIndex{}, false
	}
	xlen := int(binary.LittleEndian.Uint16(h[10:12]))
	h, err = br.Peek(12 + xlen)
	if err != nil {
		return gzIndex{}, false
	}
	extra := h[12:]
	for len(extra) >= 4 {
		si1, si2 := extra[0], extra[1]
		n := int(binary.LittleEndian.Uint16(extra[2:4]))
		if 4+n > len(extra) {
			break
		}
		data := extra[4 : 4+n]
		switch {
		case si1 == 'I' && si2 == 'M' && n == 8:
			idx := gzIndex{total: int(binary.LittleEndian.Uint32(data[0:4])), raw: int(binary.LittleEndian.Uint32(data[4:8]))}
			if idx.total < 12+xlen+8 || idx.total > maxIndexedMember || idx.raw > maxIndexedMember {
				return gzIndex{}, false
			}
			return idx, true
		case si1 == 'B' && si2 == 'C' && n == 2:
			idx := gzIndex{total: int(binary.LittleEndian.Uint16(data)) + 1, raw: -1}
			if idx.total < 12+xlen+8 {
				return gzIndex{}, false
			}
			return idx, true
		}
		extra = extra[4+n:]
	}
	return gzIndex{}, false
}

// gzJob is one member on its way through the parallel decoder, or (seq)
// the hand-over of the rest of the stream to a sequential decoder.
type gzJob struct {
	n      int    // member number, from 0
	offset int64  // of the member in the compressed stream
	in     []byte // compressed member
	raw    int    // decoded length from the index; -1 when unknown
	out    []byte // decoded member (allocated by the worker)
	err    error
	seq    bool // the rest of the stream has no index: decode it in order
	done   chan struct{}
}

// parallelGzip inflates indexed gzip members on several goroutines and
// returns their output in stream order.
type parallelGzip struct {
	ctx    context.Context
	cancel context.CancelFunc
	br     *bufio.Reader
	order  chan *gzJob // in stream order, bounded: the read-ahead
	work   chan *gzJob

	cur  *gzJob
	pos  int
	tail io.Reader // sequential decoder for the unindexed rest
	// Free lists of member buffers, bounded by the read-ahead: in steady
	// state nothing is allocated, so the heap (and RSS) stays at what the
	// members in flight need instead of growing to the GC's goal, as it
	// did with a sync.Pool refilled after every collection.
	inPool, outPool chan []byte
}

// newParallelGzip starts the member reader and workers decoders. The caller
// has checked that the first member carries an index.
func newParallelGzip(ctx context.Context, br *bufio.Reader, workers int) *decoder {
	if workers < 1 {
		workers = 1
	}
	ctx, cancel := context.WithCancel(ctx)
	p := &parallelGzip{
		ctx:    ctx,
		cancel: cancel,
		br:     br,
		// The read-ahead: at most workers members queued beyond the one
		// being served and the one being read, each a whole decoded
		// member in memory (the bound on peak RSS).
		order: make(chan *gzJob, workers),
		work:  make(chan *gzJob, workers),
		// every member in flight: queued, being read, being served
		inPool:  make(chan []byte, workers+2),
		outPool: make(chan []byte, workers+2),
	}
	for range workers {
		go p.worker()
	}
	go p.readMembers()
	return &decoder{Reader: p, close: p.close}
}

func (p *parallelGzip) buf(pool chan []byte, n int) []byte {
	select {
	case b := <-pool:
		if cap(b) >= n {
			return b[:n]
		}
	default:
	}
	// Whole MiBs, so buffers grow to the stream's largest member and
	// are then reused whatever each member's size.
	return make([]byte, n, (n+1<<20-1)&^(1<<20-1))
}

func (p *parallelGzip) put(pool chan []byte, b []byte) {
	if b == nil {
		return
	}
	select {
	case pool <- b[:0]:
	default: // more buffers than members in flight: let this one go
	}
}

// readMembers cuts the compressed stream into members and queues them.
func (p *parallelGzip) readMembers() {
	defer close(p.work)
	defer close(p.order)
	var off int64
	for n := 0; ; n++ {
		if _, err := p.br.Peek(1); err == io.EOF {
			return
		}
		idx, ok := peekGzipIndex(p.br)
		job := &gzJob{n: n, offset: off, done: make(chan struct{})}
		if !ok {
			// No index here: the consumer decodes the rest sequentially once
			// every member before it has been served. Stop reading br.
			job.seq = true
			close(job.done)
			p.send(p.order, job)
			return
		}
		job.in = p.buf(p.inPool, idx.total)
		if _, err := io.ReadFull(p.br, job.in); err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			job.err = fmt.Errorf("gzip member %d at byte %d: %w", n, off, err)
			close(job.done)
			p.send(p.order, job)
			return
		}
		job.raw = idx.raw
		off += int64(idx.total)
		if !p.send(p.order, job) || !p.send(p.work, job) {
			return
		}
	}
}

func (p *parallelGzip) send(ch chan *gzJob, j *gzJob) bool {
	select {
	case ch <- j:
		return true
	case <-p.ctx.Done():
		return false
	}
}

// worker inflates members.
func (p *parallelGzip) worker() {
	var zr *kgzip.Reader
	for job := range p.work {
		// The output buffer is taken only now, not while the member
		// waits in the queue: one decoded member less held (peak RSS).
		if job.raw >= 0 {
			job.out = p.buf(p.outPool, job.raw)
		}
		job.err = p.inflate(&zr, job)
		// The compressed bytes are done with: back to the pool now, not
		// when the consumer gets to the member (peak RSS).
		p.put(p.inPool, job.in)
		job.in = nil
		close(job.done)
	}
}

func (p *parallelGzip) inflate(zrp **kgzip.Reader, job *gzJob) error {
	src := bytes.NewReader(job.in)
	var err error
	if *zrp == nil {
		*zrp, err = kgzip.NewReader(src)
	} else {
		err = (*zrp).Reset(src)
	}
	if err != nil {
		return fmt.Errorf("gzip member %d at byte %d: header: %w", job.n, job.offset, err)
	}
	zr := *zrp
	zr.Multistream(false)
	if job.out != nil {
		// Known length: decode straight into the buffer, then insist the
		// member ends exactly there (CRC and ISIZE are checked at EOF).
		if _, err := io.ReadFull(zr, job.out); err != nil {
			return fmt.Errorf("gzip member %d at byte %d: %w", job.n, job.offset, noEOF(err))
		}
		var one [1]byte
		if m, err := zr.Read(one[:]); m != 0 || err != io.EOF {
			if err == nil || err == io.EOF {
				err = errors.New("longer than its index says")
			}
			return fmt.Errorf("gzip member %d at byte %d: %w", job.n, job.offset, err)
		}
	} else {
		var bb bytes.Buffer
		if _, err := io.Copy(&bb, io.LimitReader(zr, maxIndexedMember+1)); err != nil {
			return fmt.Errorf("gzip member %d at byte %d: %w", job.n, job.offset, noEOF(err))
		}
		if bb.Len() > maxIndexedMember {
			return fmt.Errorf("gzip member %d at byte %d: inflates to more than %d bytes", job.n, job.offset, maxIndexedMember)
		}
		job.out = bb.Bytes()
	}
	if src.Len() != 0 {
		return fmt.Errorf("gzip member %d at byte %d: %d bytes after the member's trailer inside its indexed length", job.n, job.offset, src.Len())
	}
	return nil
}

func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// Read serves decoded members in stream order.
func (p *parallelGzip) Read(b []byte) (int, error) {
	for {
		if p.tail != nil {
			return p.tail.Read(b)
		}
		if p.cur != nil && p.pos < len(p.cur.out) {
			n := copy(b, p.cur.out[p.pos:])
			p.pos += n
			return n, nil
		}
		if p.cur != nil {
			p.put(p.outPool, p.cur.out)
			p.cur = nil
		}
		var job *gzJob
		var ok bool
		select {
		case job, ok = <-p.order:
		case <-p.ctx.Done():
			return 0, context.Cause(p.ctx)
		}
		if !ok {
			return 0, io.EOF
		}
		select {
		case <-job.done:
		case <-p.ctx.Done():
			return 0, context.Cause(p.ctx)
		}
		if job.err != nil {
			return 0, job.err
		}
		if job.seq {
			// The member reader has stopped; br is ours now.
			zr, err := kgzip.NewReader(p.br)
			if err != nil {
				return 0, fmt.Errorf("gzip member %d: header: %w", job.n, err)
			}
			p.tail = zr
			continue
		}
		p.cur, p.pos = job, 0
	}
}

// close stops the member reader and the workers. It does not wait for
// them: a member reader blocked on the download returns when the pipeline's
// context ends, and the workers when it closes their queue.
func (p *parallelGzip) close() error {
	p.cancel()
	return nil
}

// MemberEncoder compresses one indexed gzip member at a time: a complete
// gzip member whose header carries the "IM" extra field (the member's
// length and its input's length), so imprint can inflate a stream of them in
// parallel. Its flate state is reused between members; it is not safe for
// concurrent use (give each goroutine its own).
type MemberEncoder struct {
	level int
	out   bytes.Buffer
	fw    *kflate.Writer
}

// NewMemberEncoder returns an encoder at level (gzip's 1-9, or -1 for 6).
func NewMemberEncoder(level int) (*MemberEncoder, error) {
	if level == -1 {
		level = 6
	}
	if level < 1 || level > 9 {
		return nil, fmt.Errorf("gzip level %d: want 1-9 or -1", level)
	}
	fw, err := kflate.NewWriter(io.Discard, level)
	if err != nil {
		return nil, fmt.Errorf("gzip level %d: %w", level, err)
	}
	return &MemberEncoder{level: level, fw: fw}, nil
}

// MaxMemberInput is the most input one indexed member may hold.
const MaxMemberInput = maxIndexedMember / 2

// Encode returns in as one indexed gzip member. The slice is the encoder's
// own buffer, valid until the next Encode.
func (e *MemberEncoder) Encode(in []byte) ([]byte, error) {
	if len(in) > MaxMemberInput {
		return nil, fmt.Errorf("gzip member input of %d bytes: at most %d", len(in), MaxMemberInput)
	}
	const xlen = 12
	var hdr [10 + 2 + xlen]byte
	hdr[0], hdr[1], hdr[2], hdr[3] = 0x1f, 0x8b, 8, gzFlagExtra
	// MTIME 0 (reproducible), XFL per level, OS 3 (Unix)
	switch e.level {
	case 9:
		hdr[8] = 2
	case 1:
		hdr[8] = 4
	}
	hdr[9] = 3
	binary.LittleEndian.PutUint16(hdr[10:], xlen)
	hdr[12], hdr[13] = 'I', 'M'
	binary.LittleEndian.PutUint16(hdr[14:], 8)

	e.out.Reset()
	e.out.Write(hdr[:])
	e.fw.Reset(&e.out)
	if _, err := e.fw.Write(in); err != nil {
		return nil, err
	}
	if err := e.fw.Close(); err != nil {
		return nil, err
	}
	var tr [8]byte
	binary.LittleEndian.PutUint32(tr[0:], crc32.ChecksumIEEE(in))
	binary.LittleEndian.PutUint32(tr[4:], uint32(len(in)))
	e.out.Write(tr[:])
	b := e.out.Bytes()
	if len(b) > maxIndexedMember {
		return nil, fmt.Errorf("gzip member of %d bytes exceeds %d", len(b), maxIndexedMember)
	}
	binary.LittleEndian.PutUint32(b[16:], uint32(len(b)))
	binary.LittleEndian.PutUint32(b[20:], uint32(len(in)))
	return b, nil
}

// IndexedGzipWriter writes a gzip stream of independent members, each
// holding MemberSize bytes of input (the last one less) and carrying the
// "IM" index in its header, so imprint inflates them in parallel while gzip,
// zcat, pigz and every other reader see one ordinary gzip stream. It is not
// safe for concurrent use. Close writes the last member.
type IndexedGzipWriter struct {
	w          io.Writer
	memberSize int
	buf        []byte // pending input of the current member
	enc        *MemberEncoder
	members    int
	err        error
}

// NewIndexedGzipWriter returns a writer compressing at level (gzip's 1-9,
// or -1 for the default 6) into members of memberSize input bytes (0 means
// DefaultGzipMemberSize).
func NewIndexedGzipWriter(w io.Writer, level, memberSize int) (*IndexedGzipWriter, error) {
	if memberSize <= 0 {
		memberSize = DefaultGzipMemberSize
	}
	if memberSize > MaxMemberInput {
		return nil, fmt.Errorf("gzip member size %d: at most %d", memberSize, MaxMemberInput)
	}
	enc, err := NewMemberEncoder(level)
	if err != nil {
		return nil, err
	}
	return &IndexedGzipWriter{w: w, memberSize: memberSize, buf: make([]byte, 0, memberSize), enc: enc}, nil
}

// Write buffers p and writes every member it completes.
func (g *IndexedGzipWriter) Write(p []byte) (int, error) {
	if g.err != nil {
		return 0, g.err
	}
	n := 0
	for len(p) > 0 {
		k := min(len(p), g.memberSize-len(g.buf))
		g.buf = append(g.buf, p[:k]...)
		p, n = p[k:], n+k
		if len(g.buf) == g.memberSize {
			if err := g.flushMember(); err != nil {
				return n, err
			}
		}
	}
	return n, nil
}

// Close writes the last member (an empty input still makes one member, so
// the output is a valid gzip file).
func (g *IndexedGzipWriter) Close() error {
	if g.err != nil {
		return g.err
	}
	if len(g.buf) > 0 || g.members == 0 {
		if err := g.flushMember(); err != nil {
			return err
		}
	}
	g.err = errors.New("indexed gzip writer closed")
	return nil
}

func (g *IndexedGzipWriter) flushMember() error {
	b, err := g.enc.Encode(g.buf)
	if err != nil {
		g.err = err
		return err
	}
	if _, err := g.w.Write(b); err != nil {
		g.err = err
		return err
	}
	g.buf = g.buf[:0]
	g.members++
	return nil
}
