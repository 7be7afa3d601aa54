package imagewriter

// The writer of multi-frame zstd images (frames.go): the fetcher reads the
// frames in order from the first working mirror, one Range request from a
// frame boundary to the end of the file, opened again at the boundary of
// the frame that broke (on the next mirror) when a connection fails; the
// workers decode frames on every core and check each frame's sha256; the
// frames go to the writer stage (write.go) in order, a frame that failed
// its check never reaching it. Zero frames are neither downloaded (unless a
// digest of the whole file was asked for) nor decoded: the writer has the
// device zero them.

import (
	"context"
	"crypto/md5"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/klauspost/compress/zstd"
)

// ErrNoManifest is returned (wrapped) by FetchFrameManifest when the image
// has no manifest beside it.
var ErrNoManifest = errors.New("no frame manifest")

// manifestURLs are where the manifest of an image is looked for: the
// request's ManifestURL, else "<url>.manifest.json" beside the image and
// beside each mirror, when the image's name ends in ".zst".
func manifestURLs(req Request) []string {
	if req.ManifestURL != "" {
		return []string{req.ManifestURL}
	}
	var out []string
	for _, u := range append([]string{req.URL}, req.Mirrors...) {
		if strings.HasSuffix(baseName(u), ".zst") {
			out = append(out, besideURL(u, FrameManifestSuffix))
		}
	}
	return out
}

// besideURL appends suffix to the path of u, keeping its query (a token
// that authorises the directory, for example).
func besideURL(u, suffix string) string {
	p, err := url.Parse(u)
	if err != nil || p.Scheme == "" || p.RawQuery == "" && p.Fragment == "" {
		return u + suffix
	}
	p.Path += suffix
	p.RawPath = ""
	p.Fragment = ""
	return p.String()
}

// findManifest fetches and parses the image's frame manifest. It returns
// nil, nil when the image has none (not a .zst name, or 404 everywhere):
// the image is then streamed as before. A manifest that exists but is
// unreadable or inconsistent is an error.
func findManifest(ctx context.Context, req Request, opts *Options, log *slog.Logger) (*FrameManifest, string, error) {
	urls := manifestURLs(req)
	var errs []error
	for _, u := range urls {
		src, err := parseSource(u)
		if err != nil {
			return nil, "", fmt.Errorf("manifest %s: %w", u, err)
		}
		b, err := fetchSmall(ctx, src, opts, maxManifest+1)
		var se *httpStatusError
		switch {
		case err == nil:
		case errors.Is(err, os.ErrNotExist), errors.As(err, &se) && se.code >= 400 && se.code < 500:
			// 404, or the 403 some object stores give for a missing object
			log.Debug("no frame manifest", "manifest", u, "err", err)
			continue
		default:
			// A mirror that is down: try the manifest beside the next one.
			errs = append(errs, fmt.Errorf("manifest %s: %w (%w)", u, err, ErrSource))
			log.Warn("frame manifest not readable", "manifest", u, "err", err)
			continue
		}
		if len(b) > maxManifest {
			return nil, "", fmt.Errorf("manifest %s: larger than %d bytes", u, maxManifest)
		}
		if req.ManifestSHA256 != "" {
			sum := sha256.Sum256(b)
			if got := hex.EncodeToString(sum[:]); !equalFoldHex(got, req.ManifestSHA256) {
				// another mirror may hold the right one
				errs = append(errs, fmt.Errorf("%w: manifest %s: sha256 is %s, the request expects %s", ErrVerify, u, got, req.ManifestSHA256))
				log.Warn("frame manifest has another sha256", "manifest", u, "sha256", got, "expected", req.ManifestSHA256)
				continue
			}
		}
		m, err := ParseFrameManifest(b)
		if err != nil {
			return nil, "", fmt.Errorf("manifest %s: %w", u, err)
		}
		return m, u, nil
	}
	if req.ManifestURL != "" || req.ManifestSHA256 != "" || len(errs) > 0 {
		if len(errs) == 0 {
			return nil, "", fmt.Errorf("manifest %s: %w", strings.Join(urls, ", "), ErrNoManifest)
		}
		return nil, "", errors.Join(errs...)
	}
	return nil, "", nil
}

// frameJob is one frame on its way from the fetcher to the writer.
type frameJob struct {
	i    int
	fr   Frame
	in   []byte // compressed frame (nil for a zero frame)
	out  []byte // decoded frame, an aligned buffer of the pool
	err  error
	done chan struct{}
}

// runFrames is pipeline.run for a multi-frame image.
func (p *pipeline) runFrames(parent context.Context, m *FrameManifest) error {
	ctx, cancel := context.WithCancelCause(parent)
	defer cancel(nil)
	p.container = ContainerZstd
	p.frames = len(m.Frames)
	p.totalRead.Store(m.CompressedSize)
	if p.req.SHA256 != "" {
		p.sha256 = sha256.New()
		if !equalFoldHex(p.req.SHA256, m.CompressedSHA256) {
			return fmt.Errorf("write image %s to %q: the manifest describes a file whose sha256 is %s, the request expects %s",
				p.req.URL, p.req.Device, m.CompressedSHA256, p.req.SHA256)
		}
	}
	if p.req.SHA512 != "" {
		p.sha512 = sha512.New()
	}
	if p.exp.rawMD5 != "" {
		p.rawMD5 = md5.New()
	}
	if !checkFrameDigests {
		p.log.Warn("BENCH BUILD (imprint_bench_nodigest): frame digests are not checked")
	}
	workers := p.opts.FrameWorkers
	frameSize := int(m.FrameSize)
	f := newFrameFetcher(ctx, p, m)
	defer f.close()

	// Buffers, taken by the fetcher in stream order and given back in the
	// same order (the writer returns decoded frames, the workers the
	// compressed ones), so the pipeline cannot deadlock and its memory is
	// (workers+2) decoded frames plus (workers+1) compressed ones.
	nOut := workers + 2
	outPool := make(chan []byte, nOut)
	for range nOut {
		b, free, err := alignedBuffer(frameSize)
		if err != nil {
			return err
		}
		defer free()
		outPool <- b
	}
	inPool := make(chan []byte, workers+1)
	for range workers + 1 {
		inPool <- nil // allocated on first use, grown to the largest frame
	}
	work := make(chan *frameJob, workers)
	order := make(chan *frameJob, workers+1)
	outFull := make(chan outBuf, 1)

	var wg sync.WaitGroup
	// The workers decode into the pool's buffers: they must be done before
	// the buffers are unmapped (deferred above, so run after this).
	defer wg.Wait()
	for range workers {
		wg.Go(func() { p.frameWorker(work, inPool, frameSize) })
	}
	// The fetcher.
	fetchErr := make(chan error, 1)
	go func() {
		defer close(work)
		defer close(order)
		fetchErr <- p.fetchFrames(ctx, f, m, order, work, inPool, outPool)
	}()
	// The writer.
	wrDone := make(chan error, 1)
	go func() {
		err := p.writer(ctx, outFull, outPool)
		if err != nil {
			cancel(err)
		}
		wrDone <- err
	}()
	// This goroutine: hand frames to the writer in order, once checked.
	delErr := p.deliverFrames(ctx, order, outFull)
	close(outFull)
	if delErr != nil {
		cancel(delErr)
	}
	wrErr := <-wrDone
	if wrErr != nil {
		cancel(wrErr)
	}
	fErr := <-fetchErr
	for range order { // let the fetcher finish
	}
	switch {
	case wrErr != nil:
		return fmt.Errorf("write image %s to %q: %w", p.req.URL, p.req.Device, wrErr)
	case delErr != nil && !errors.Is(delErr, context.Canceled):
		return fmt.Errorf("write image %s to %q: %w", p.req.URL, p.req.Device, delErr)
	case fErr != nil:
		return fmt.Errorf("write image %s to %q: %w", p.req.URL, p.req.Device, fErr)
	case delErr != nil:
		return fmt.Errorf("write image %s to %q: %w", p.req.URL, p.req.Device, delErr)
	}
	if err := context.Cause(parent); err != nil {
		return fmt.Errorf("write image %s to %q: %w", p.req.URL, p.req.Device, err)
	}
	if p.written != m.Size {
		return fmt.Errorf("write image %s to %q: %w: wrote %d bytes, the manifest says %d", p.req.URL, p.req.Device, ErrVerify, p.written, m.Size)
	}
	return p.verify()
}

// fetchFrames reads every frame in order. It takes a decoded-frame buffer
// (and, for a frame to download, a compressed one) before each frame, so
// the read-ahead is bounded by the pools.
func (p *pipeline) fetchFrames(ctx context.Context, f *frameFetcher, m *FrameManifest, order, work chan<- *frameJob,
	inPool chan []byte, outPool chan []byte) error {
	wholeFile := p.sha256 != nil || p.sha512 != nil
	for i, fr := range m.Frames {
		job := &frameJob{i: i, fr: fr, done: make(chan struct{})}
		if fr.Zero && !wholeFile {
			close(job.done)
			if !sendJob(ctx, order, job) {
				return context.Cause(ctx)
			}
			continue
		}
		var in []byte
		select {
		case in = <-inPool:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
		if int64(cap(in)) < fr.Length {
			in = make([]byte, 0, (fr.Length+1<<20-1)&^(1<<20-1))
		}
		in = in[:fr.Length]
		if err := f.read(i, fr, in); err != nil {
			inPool <- in
			job.err = err
			close(job.done)
			sendJob(ctx, order, job)
			return err
		}
		if p.sha256 != nil {
			p.sha256.Write(in)
		}
		if p.sha512 != nil {
			p.sha512.Write(in)
		}
		p.bytesRead.Add(fr.Length)
		// A zero frame downloaded for the file's digest is decoded and
		// checked like any other: the file's digest does not vouch for the
		// manifest's "zero" mark, so the frame must prove it. The target
		// still gets it as zeroes (write-zeroes).
		select {
		case job.out = <-outPool:
		case <-ctx.Done():
			inPool <- in
			return context.Cause(ctx)
		}
		job.in = in
		if !sendJob(ctx, order, job) || !sendJob(ctx, work, job) {
			return context.Cause(ctx)
		}
	}
	return nil
}

func sendJob(ctx context.Context, ch chan<- *frameJob, j *frameJob) bool {
	select {
	case ch <- j:
		return true
	case <-ctx.Done():
		return false
	}
}

// frameWorker decodes frames into their buffers and checks them.
func (p *pipeline) frameWorker(work <-chan *frameJob, inPool chan<- []byte, frameSize int) {
	dec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(uint64(frameSize)),
		zstd.WithDecoderMaxWindow(zstdMaxWindow))
	if err != nil {
		for j := range work {
			j.err = fmt.Errorf("zstd decoder: %w", err)
			inPool <- j.in
			close(j.done)
		}
		return
	}
	defer dec.Close()
	for j := range work {
		j.err = p.decodeFrame(dec, j)
		inPool <- j.in
		j.in = nil
		close(j.done)
	}
}

func (p *pipeline) decodeFrame(dec *zstd.Decoder, j *frameJob) error {
	where := fmt.Sprintf("frame %d (bytes %d-%d of the file)", j.i, j.fr.Offset, j.fr.Offset+j.fr.Length-1)
	if checkFrameDigests {
		if err := checkFrameSum(j.in, j.fr); err != nil {
			return fmt.Errorf("%w: %s: %v", ErrVerify, where, err)
		}
	}
	out, err := dec.DecodeAll(j.in, j.out[:0])
	if err != nil {
		return fmt.Errorf("%w: %s: %v (the file does not match its manifest, or is corrupt)", ErrVerify, where, err)
	}
	if int64(len(out)) != j.fr.Size || (len(out) > 0 && &out[0] != &j.out[0]) {
		return fmt.Errorf("%w: %s decoded to %d bytes, the manifest says %d", ErrVerify, where, len(out), j.fr.Size)
	}
	if j.fr.Zero && !isAllZero(out) {
		return fmt.Errorf("%w: %s: the manifest marks it all zeroes, but it is not", ErrVerify, where)
	}
	return nil
}

// checkFrameSum checks a frame's bytes as stored against the manifest.
func checkFrameSum(in []byte, fr Frame) error {
	sum := sha256.Sum256(in)
	if got := hex.EncodeToString(sum[:]); !equalFoldHex(got, fr.SHA256) {
		return fmt.Errorf("sha256 of its %d bytes is %s, the manifest says %s", len(in), got, fr.SHA256)
	}
	return nil
}

// deliverFrames hands checked frames to the writer in order.
func (p *pipeline) deliverFrames(ctx context.Context, order <-chan *frameJob, outFull chan<- outBuf) error {
	for j := range order {
		select {
		case <-j.done:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
		if j.err != nil {
			return j.err
		}
		o := outBuf{b: j.out, n: int(j.fr.Size), zero: j.fr.Zero}
		select {
		case outFull <- o:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
	return nil
}

// frameFetcher reads frames from the image file on a list of mirrors: one
// GET with "Range: bytes=<frame offset>-" serves frame after frame; a
// connection that breaks, stalls or answers wrongly is dropped and the
// frame is read again from its first byte, from the next mirror.
type frameFetcher struct {
	ctx  context.Context
	opts *Options
	log  *slog.Logger
	doer HTTPDoer
	size int64 // of the file, from the manifest

	mirrors []*mirror
	cur     int // index of the mirror in use

	body    io.ReadCloser
	file    *os.File
	bodyOff int64 // offset of the body's next byte in the file
	cancel  context.CancelCauseFunc
	idle    *time.Timer
	attempt context.Context

	failures int   // consecutive failed attempts without a frame read
	lastErr  error // why the last attempt failed
	retries  atomic.Int64
	switches atomic.Int64
}

type mirror struct {
	src  source
	dead error // a permanent failure: this mirror is not tried again
}

func newFrameFetcher(ctx context.Context, p *pipeline, m *FrameManifest) *frameFetcher {
	f := &frameFetcher{ctx: ctx, opts: p.opts, log: p.log, doer: p.opts.HTTPClient, size: m.CompressedSize}
	for _, u := range append([]string{p.req.URL}, p.req.Mirrors...) {
		src, _ := parseSource(u) // validated by Request.Validate
		f.mirrors = append(f.mirrors, &mirror{src: src})
		if f.doer == nil && src.scheme != "file" {
			f.doer = defaultClient(p.opts)
		}
	}
	p.fetcher = f
	return f
}

func (f *frameFetcher) close() { f.drop() }

func (f *frameFetcher) drop() {
	if f.body != nil {
		f.body.Close()
		f.body = nil
	}
	if f.file != nil {
		f.file.Close()
		f.file = nil
	}
	if f.cancel != nil {
		f.cancel(nil)
		f.cancel = nil
	}
	if f.idle != nil {
		f.idle.Stop()
	}
}

// read fills buf with frame i, trying the mirrors in turn.
func (f *frameFetcher) read(i int, fr Frame, buf []byte) error {
	for {
		if err := f.ctx.Err(); err != nil {
			return context.Cause(f.ctx)
		}
		err := f.readOnce(fr, buf)
		if err == nil {
			f.failures = 0
			return nil
		}
		m := f.mirrors[f.cur]
		if cerr := f.ctx.Err(); cerr != nil {
			f.drop()
			return context.Cause(f.ctx)
		}
		f.drop()
		var perm permanentError
		if errors.As(err, &perm) {
			m.dead = err
			f.log.Warn("mirror dropped", "mirror", m.src.url, "frame", i, "err", err)
		} else {
			f.failures++
			f.lastErr = err
			f.log.Warn("frame download interrupted, restarting the frame on the next mirror", "mirror", m.src.url,
				"frame", i, "offset", fr.Offset, "attempt", f.failures, "err", err)
		}
		alive := f.next()
		if alive == 0 {
			var errs []error
			for _, m := range f.mirrors {
				errs = append(errs, m.dead)
			}
			return fmt.Errorf("frame %d: no mirror left: %w", i, errors.Join(errs...))
		}
		if f.failures > f.opts.MaxRetries*alive {
			return fmt.Errorf("frame %d: giving up after %d attempts without progress: %w (%w)", i, f.failures, f.lastErr, ErrSource)
		}
		// A full round of the mirrors without progress: back off.
		if f.failures > 0 && f.failures%alive == 0 {
			wait := f.opts.RetryBackoff << min(f.failures/alive-1, 16)
			if wait > f.opts.MaxBackoff || wait <= 0 {
				wait = f.opts.MaxBackoff
			}
			t := time.NewTimer(wait)
			select {
			case <-f.ctx.Done():
				t.Stop()
				return fmt.Errorf("frame %d: %w (last error: %v)", i, context.Cause(f.ctx), f.lastErr)
			case <-t.C:
			}
		}
		f.retries.Add(1)
	}
}

// next moves to the next live mirror and returns how many are alive.
func (f *frameFetcher) next() int {
	alive := 0
	for _, m := range f.mirrors {
		if m.dead == nil {
			alive++
		}
	}
	if alive == 0 {
		return 0
	}
	prev := f.cur
	for k := 1; k <= len(f.mirrors); k++ {
		c := (prev + k) % len(f.mirrors)
		if f.mirrors[c].dead == nil {
			f.cur = c
			break
		}
	}
	if f.cur != prev {
		f.switches.Add(1)
		f.log.Info("switching mirror", "from", f.mirrors[prev].src.url, "to", f.mirrors[f.cur].src.url)
	}
	return alive
}

// readOnce reads the frame from the current mirror, opening it (again) at
// the frame's offset when needed.
func (f *frameFetcher) readOnce(fr Frame, buf []byte) error {
	if f.body != nil && fr.Offset > f.bodyOff && fr.Offset-f.bodyOff <= 1<<20 {
		// skipped zero frames: read past them
		n, err := io.CopyN(io.Discard, readerFunc(f.readBody), fr.Offset-f.bodyOff)
		f.bodyOff += n
		if err != nil {
			return f.readErr(err)
		}
	}
	if f.file != nil && f.bodyOff != fr.Offset {
		if _, err := f.file.Seek(fr.Offset, io.SeekStart); err != nil {
			return fmt.Errorf("seek image %s to %d: %w", f.mirrors[f.cur].src.url, fr.Offset, err)
		}
		f.bodyOff = fr.Offset
	}
	if (f.body == nil && f.file == nil) || f.bodyOff != fr.Offset {
		f.drop()
		if err := f.open(fr.Offset); err != nil {
			return err
		}
	}
	n, err := io.ReadFull(readerFunc(f.readBody), buf)
	f.bodyOff += int64(n)
	if err != nil {
		return f.readErr(err)
	}
	return nil
}

func (f *frameFetcher) readErr(err error) error {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return fmt.Errorf("GET %s: connection closed at byte %d of %d", f.mirrors[f.cur].src.url, f.bodyOff, f.size)
	}
	if c := f.attemptCause(); errors.Is(c, errStalled) {
		return fmt.Errorf("GET %s: %w (%s)", f.mirrors[f.cur].src.url, errStalled, f.opts.IdleTimeout)
	}
	return fmt.Errorf("GET %s: %w", f.mirrors[f.cur].src.url, err)
}

func (f *frameFetcher) attemptCause() error {
	if f.attempt == nil {
		return nil
	}
	return context.Cause(f.attempt)
}

func (f *frameFetcher) readBody(p []byte) (int, error) {
	if f.file != nil {
		return f.file.Read(p)
	}
	f.idle.Reset(f.opts.IdleTimeout)
	n, err := f.body.Read(p)
	f.idle.Stop()
	return n, err
}

// open starts reading the current mirror's file at off. A mirror whose file
// is not the one the manifest describes (another size) is a permanent
// failure of that mirror.
func (f *frameFetcher) open(off int64) error {
	m := f.mirrors[f.cur]
	disagree := func(size int64) error {
		return permanentError{fmt.Errorf("%s is %d bytes, its manifest says %d: truncated, or not the file the manifest describes", m.src.url, size, f.size)}
	}
	if m.src.scheme == "file" {
		file, err := os.Open(m.src.path)
		if err != nil {
			return permanentError{fmt.Errorf("open image %s: %w", m.src.url, err)}
		}
		st, err := file.Stat()
		if err == nil && st.Size() != f.size {
			file.Close()
			return disagree(st.Size())
		}
		if _, err := file.Seek(off, io.SeekStart); err != nil {
			file.Close()
			return fmt.Errorf("seek image %s to %d: %w", m.src.url, off, err)
		}
		f.file, f.bodyOff = file, off
		return nil
	}
	actx, cancel := context.WithCancelCause(f.ctx)
	f.attempt, f.cancel = actx, cancel
	if f.idle != nil {
		f.idle.Stop()
	}
	f.idle = time.AfterFunc(f.opts.IdleTimeout, func() { cancel(errStalled) })
	req, err := http.NewRequestWithContext(actx, http.MethodGet, m.src.url, nil)
	if err != nil {
		return permanentError{fmt.Errorf("GET %s: %w", m.src.url, err)}
	}
	req.Header.Set("Range", "bytes="+strconv.FormatInt(off, 10)+"-")
	resp, err := f.doer.Do(req)
	f.idle.Stop()
	if err != nil {
		if c := context.Cause(actx); errors.Is(c, errStalled) && f.ctx.Err() == nil {
			return fmt.Errorf("GET %s: %w (%s)", m.src.url, c, f.opts.IdleTimeout)
		}
		return fmt.Errorf("GET %s: %w", m.src.url, err)
	}
	fail := func(e error) error {
		resp.Body.Close()
		return e
	}
	switch {
	case resp.StatusCode == http.StatusPartialContent:
		start, total, ok := parseContentRange(resp.Header.Get("Content-Range"))
		if !ok || start != off {
			return fail(fmt.Errorf("GET %s: Range bytes=%d- answered with Content-Range %q", m.src.url, off, resp.Header.Get("Content-Range")))
		}
		if total >= 0 && total != f.size {
			return fail(disagree(total))
		}
	case resp.StatusCode == http.StatusOK:
		if resp.ContentLength >= 0 && resp.ContentLength != f.size {
			return fail(disagree(resp.ContentLength))
		}
		f.body, f.bodyOff = resp.Body, 0
		if off > 0 {
			// The server ignores Range: read up to the frame.
			f.log.Warn("server ignored Range, reading up to the frame", "mirror", m.src.url, "skip", off)
			n, err := io.CopyN(io.Discard, readerFunc(f.readBody), off)
			f.bodyOff = n
			if err != nil {
				return f.readErr(err)
			}
		}
		return nil
	case resp.StatusCode == http.StatusRequestedRangeNotSatisfiable:
		total := int64(-1)
		if _, t, ok := parseContentRange(strings.Replace(resp.Header.Get("Content-Range"), "*", "0-0", 1)); ok {
			total = t
		}
		return fail(disagree(total))
	case resp.StatusCode == http.StatusRequestTimeout || resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
		return fail(fmt.Errorf("GET %s: %s", m.src.url, resp.Status))
	default:
		return fail(permanentError{fmt.Errorf("GET %s: %s", m.src.url, resp.Status)})
	}
	f.body, f.bodyOff = resp.Body, off
	return nil
}
