package imagewriter

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// errStalled is the cause given to an attempt the idle timer aborted.
var errStalled = errors.New("stalled: no data received within the idle timeout")

// permanentError is a failure retrying cannot fix (404, a changed image).
type permanentError struct{ err error }

func (e permanentError) Error() string { return e.err.Error() }
func (e permanentError) Unwrap() error { return e.err }

// Is makes a permanent source failure errors.Is(err, ErrSource).
func (e permanentError) Is(target error) bool { return target == ErrSource }

// resumingReader reads one remote object from start to end. When a
// connection breaks, stalls or ends short, it reopens it with
// "Range: bytes=<delivered>-" so the reader above sees one unbroken byte
// stream; every byte it has returned is final, so the decompressor and the
// hashes that consumed them stay valid (see doc.go, "Resume").
type resumingReader struct {
	ctx  context.Context
	src  source
	opts *Options
	log  *slog.Logger
	doer HTTPDoer

	off   int64 // bytes delivered to the caller
	total int64 // object size, -1 when unknown

	// validators of the first response, to detect an object that changed
	// between attempts
	etag, lastModified string

	body       io.ReadCloser
	attemptCtx context.Context
	cancel     context.CancelCauseFunc
	idle       *time.Timer
	failures   int   // consecutive failed attempts without progress
	lastErr    error // why the last attempt ended
	reopens    atomic.Int64
	file       *os.File
}

func newResumingReader(ctx context.Context, src source, opts *Options, log *slog.Logger) *resumingReader {
	r := &resumingReader{ctx: ctx, src: src, opts: opts, log: log, total: -1, doer: opts.HTTPClient}
	if r.doer == nil && src.scheme != "file" {
		r.doer = defaultClient(opts)
	}
	return r
}

func defaultClient(opts *Options) *http.Client {
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: opts.ConnectTimeout, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout:   opts.ConnectTimeout,
		ResponseHeaderTimeout: opts.IdleTimeout,
		// Never let the transport gunzip behind our back: byte offsets
		// for Range and the digest are of the object as stored.
		DisableCompression: true,
		ReadBufferSize:     256 << 10,
		MaxIdleConns:       4,
		IdleConnTimeout:    30 * time.Second,
	}
	return &http.Client{Transport: tr}
}

// Close releases the current connection or file.
func (r *resumingReader) Close() error {
	r.dropBody()
	if r.file != nil {
		r.file.Close()
		r.file = nil
	}
	return nil
}

func (r *resumingReader) dropBody() {
	if r.body != nil {
		r.body.Close()
		r.body = nil
	}
	if r.cancel != nil {
		r.cancel(nil)
		r.cancel = nil
	}
	if r.idle != nil {
		r.idle.Stop()
	}
}

func (r *resumingReader) Read(p []byte) (int, error) {
	if r.src.scheme == "file" {
		return r.readFile(p)
	}
	for {
		if r.total >= 0 && r.off >= r.total {
			return 0, io.EOF
		}
		if r.body == nil {
			if err := r.open(); err != nil {
				return 0, err
			}
			continue
		}
		n, err := r.readBody(p)
		r.off += int64(n)
		if n > 0 {
			r.failures = 0
		}
		if err == io.EOF && (r.total < 0 || r.off >= r.total) {
			r.dropBody()
			return n, io.EOF
		}
		if err == nil {
			return n, nil
		}
		// The connection broke, stalled or ended short: reopen on the next
		// call, from r.off.
		if ctxErr := r.ctx.Err(); ctxErr != nil {
			r.dropBody()
			return n, context.Cause(r.ctx)
		}
		if err == io.EOF {
			err = fmt.Errorf("connection closed after %d of %d bytes", r.off, r.total)
		}
		r.lastErr = err
		r.log.Warn("download interrupted, will resume", "url", r.src.url, "offset", r.off, "err", err)
		r.dropBody()
		r.failures++
		if n > 0 {
			return n, nil
		}
	}
}

// readBody reads with the idle timer armed: a server that sends nothing for
// IdleTimeout gets its attempt cancelled, however long the transfer as a
// whole has been running.
func (r *resumingReader) readBody(p []byte) (int, error) {
	r.idle.Reset(r.opts.IdleTimeout)
	n, err := r.body.Read(p)
	r.idle.Stop()
	if err != nil && err != io.EOF {
		if c := context.Cause(r.attemptCtx); errors.Is(c, errStalled) {
			err = fmt.Errorf("%w (%s)", errStalled, r.opts.IdleTimeout)
		}
	}
	return n, err
}

// open starts one attempt, waiting a backoff first if the previous failed.
func (r *resumingReader) open() error {
	for {
		if r.failures > 0 {
			if r.failures > r.opts.MaxRetries {
				return fmt.Errorf("GET %s: giving up after %d attempts without progress: %w", r.src.url, r.failures, r.lastErr)
			}
			wait := r.opts.RetryBackoff << min(r.failures-1, 16)
			if wait > r.opts.MaxBackoff || wait <= 0 {
				wait = r.opts.MaxBackoff
			}
			t := time.NewTimer(wait)
			select {
			case <-r.ctx.Done():
				t.Stop()
				return fmt.Errorf("GET %s: %w (last error: %v)", r.src.url, context.Cause(r.ctx), r.lastErr)
			case <-t.C:
			}
			r.reopens.Add(1)
		}
		err := r.attempt()
		if err == nil {
			return nil
		}
		if ctxErr := r.ctx.Err(); ctxErr != nil {
			return fmt.Errorf("GET %s: %w", r.src.url, context.Cause(r.ctx))
		}
		var perm permanentError
		if errors.As(err, &perm) {
			return err
		}
		r.lastErr = err
		r.failures++
		r.log.Warn("download attempt failed", "url", r.src.url, "offset", r.off, "attempt", r.failures, "err", err)
	}
}

func (r *resumingReader) attempt() error {
	actx, cancel := context.WithCancelCause(r.ctx)
	r.attemptCtx = actx
	req, err := http.NewRequestWithContext(actx, http.MethodGet, r.src.url, nil)
	if err != nil {
		cancel(nil)
		return permanentError{fmt.Errorf("GET %s: %w", r.src.url, err)}
	}
	if r.off > 0 {
		req.Header.Set("Range", "bytes="+strconv.FormatInt(r.off, 10)+"-")
	}
	// The idle timer also covers connect and headers of this attempt.
	if r.idle != nil {
		r.idle.Stop()
	}
	r.idle = time.AfterFunc(r.opts.IdleTimeout, func() { cancel(errStalled) })
	resp, err := r.doer.Do(req)
	r.idle.Stop()
	if err != nil {
		cancel(nil)
		if c := context.Cause(actx); errors.Is(c, errStalled) && r.ctx.Err() == nil {
			return fmt.Errorf("GET %s: %w (%s)", r.src.url, c, r.opts.IdleTimeout)
		}
		return fmt.Errorf("GET %s: %w", r.src.url, err)
	}
	fail := func(e error) error {
		resp.Body.Close()
		cancel(nil)
		return e
	}
	switch {
	case resp.StatusCode == http.StatusPartialContent && r.off > 0:
		start, total, ok := parseContentRange(resp.Header.Get("Content-Range"))
		if !ok || start != r.off {
			return fail(fmt.Errorf("GET %s: Range bytes=%d- answered with Content-Range %q", r.src.url, r.off, resp.Header.Get("Content-Range")))
		}
		if err := r.sameObject(resp, total); err != nil {
			return fail(err)
		}
	case resp.StatusCode == http.StatusOK:
		total := resp.ContentLength
		if r.off == 0 {
			r.total = total
			r.etag, r.lastModified = resp.Header.Get("ETag"), resp.Header.Get("Last-Modified")
			break
		}
		if err := r.sameObject(resp, total); err != nil {
			return fail(err)
		}
		// The server ignored Range: read the object again from the start
		// and drop what was already delivered (the decoder and hashes keep
		// their state), so the transfer restarts cleanly.
		r.log.Warn("server ignored Range, re-reading from the start", "url", r.src.url, "skip", r.off)
		r.body, r.cancel = resp.Body, cancel
		if _, err := io.CopyN(io.Discard, readerFunc(r.readBody), r.off); err != nil {
			r.dropBody()
			return fmt.Errorf("GET %s: re-reading the first %d bytes: %w", r.src.url, r.off, err)
		}
		return nil
	case resp.StatusCode == http.StatusRequestedRangeNotSatisfiable && r.total >= 0 && r.off >= r.total:
		resp.Body.Close()
		cancel(nil)
		return nil // Read sees off >= total: EOF
	case resp.StatusCode == http.StatusRequestTimeout || resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
		return fail(fmt.Errorf("GET %s: %s", r.src.url, resp.Status))
	default:
		return fail(permanentError{fmt.Errorf("GET %s: %s", r.src.url, resp.Status)})
	}
	r.body, r.cancel = resp.Body, cancel
	return nil
}

// sameObject refuses to splice bytes of a different object into the stream.
func (r *resumingReader) sameObject(resp *http.Response, total int64) error {
	changed := func(what, was, now string) error {
		return permanentError{fmt.Errorf("GET %s: the image changed during the download (%s was %q, now %q)", r.src.url, what, was, now)}
	}
	if r.total >= 0 && total >= 0 && total != r.total {
		return changed("size", strconv.FormatInt(r.total, 10), strconv.FormatInt(total, 10))
	}
	if et := resp.Header.Get("ETag"); r.etag != "" && et != "" && et != r.etag {
		return changed("ETag", r.etag, et)
	}
	if lm := resp.Header.Get("Last-Modified"); r.lastModified != "" && lm != "" && lm != r.lastModified {
		return changed("Last-Modified", r.lastModified, lm)
	}
	return nil
}

// parseContentRange parses "bytes START-END/TOTAL" (TOTAL may be "*").
func parseContentRange(s string) (start, total int64, ok bool) {
	s, found := strings.CutPrefix(s, "bytes ")
	if !found {
		return 0, 0, false
	}
	rng, tot, found := strings.Cut(s, "/")
	if !found {
		return 0, 0, false
	}
	a, _, found := strings.Cut(rng, "-")
	if !found {
		return 0, 0, false
	}
	start, err := strconv.ParseInt(a, 10, 64)
	if err != nil {
		return 0, 0, false
	}
	total = -1
	if tot != "*" {
		if total, err = strconv.ParseInt(tot, 10, 64); err != nil {
			return 0, 0, false
		}
	}
	return start, total, true
}

func (r *resumingReader) readFile(p []byte) (int, error) {
	if r.file == nil {
		f, err := os.Open(r.src.path)
		if err != nil {
			return 0, permanentError{fmt.Errorf("open image %s: %w", r.src.url, err)}
		}
		if st, err := f.Stat(); err == nil && st.Mode().IsRegular() {
			r.total = st.Size()
		}
		r.file = f
	}
	n, err := r.file.Read(p)
	r.off += int64(n)
	if err != nil && err != io.EOF {
		err = fmt.Errorf("read image %s: %w", r.src.url, err)
	}
	return n, err
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

// fetchSmall GETs a small document (the metadata YAML), with the same
// timeouts; it does not resume.
func fetchSmall(ctx context.Context, src source, opts *Options, limit int64) ([]byte, error) {
	if src.scheme == "file" {
		f, err := os.Open(src.path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		return io.ReadAll(io.LimitReader(f, limit))
	}
	doer := opts.HTTPClient
	if doer == nil {
		doer = defaultClient(opts)
	}
	ctx, cancel := context.WithTimeout(ctx, opts.IdleTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, src.url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := doer.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, &httpStatusError{resp.StatusCode, resp.Status}
	}
	return io.ReadAll(io.LimitReader(resp.Body, limit))
}

type httpStatusError struct {
	code   int
	status string
}

func (e *httpStatusError) Error() string { return e.status }

// Is makes an HTTP failure errors.Is(err, ErrSource).
func (e *httpStatusError) Is(target error) bool { return target == ErrSource }
