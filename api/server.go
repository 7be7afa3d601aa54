package api

import (
	"context"
	"io"
	"log"
	"net"
	"net/http"
	"sync"
	"time"

	"golang.org/x/net/netutil"
)

// ServerOptions are the limits of an HTTP server facing callers that are
// not trusted until authenticated (the agent's API, the controller). Zero
// fields take DefaultServerOptions' values.
type ServerOptions struct {
	// ReadHeaderTimeout bounds reading a request's headers, ReadTimeout the
	// whole request with its body (a provision document is at most 1 MiB).
	ReadHeaderTimeout time.Duration
	ReadTimeout       time.Duration
	// WriteTimeout bounds how long a response may go without progress: a
	// caller that stops reading is cut off after it. Each write (and
	// flush) moves the deadline, so an event stream (SSE keepalives every
	// 15 s) or an image download lives as long as it moves.
	WriteTimeout time.Duration
	// IdleTimeout closes a kept-alive connection with no request.
	IdleTimeout time.Duration
	// MaxHeaderBytes caps the request line and headers.
	MaxHeaderBytes int
	// MaxConns caps open connections; further ones wait in the listen
	// backlog until one closes.
	MaxConns int

	ErrorLog    *log.Logger
	BaseContext func(net.Listener) context.Context
}

// DefaultServerOptions are generous for a provisioning controller or agent
// and small enough that idle, slow or half-open callers cannot pile up.
func DefaultServerOptions() ServerOptions {
	return ServerOptions{
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       90 * time.Second,
		MaxHeaderBytes:    64 << 10,
		MaxConns:          256,
	}
}

// Server is an http.Server whose Serve enforces ServerOptions.MaxConns.
type Server struct {
	*http.Server
	maxConns int
}

// NewServer returns a server for h with o's limits.
func NewServer(h http.Handler, o ServerOptions) *Server {
	d := DefaultServerOptions()
	if o.ReadHeaderTimeout <= 0 {
		o.ReadHeaderTimeout = d.ReadHeaderTimeout
	}
	if o.ReadTimeout <= 0 {
		o.ReadTimeout = d.ReadTimeout
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = d.WriteTimeout
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = d.IdleTimeout
	}
	if o.MaxHeaderBytes <= 0 {
		o.MaxHeaderBytes = d.MaxHeaderBytes
	}
	if o.MaxConns <= 0 {
		o.MaxConns = d.MaxConns
	}
	return &Server{
		Server: &http.Server{
			Handler:           progressDeadline(h, o.WriteTimeout),
			ReadHeaderTimeout: o.ReadHeaderTimeout,
			ReadTimeout:       o.ReadTimeout,
			IdleTimeout:       o.IdleTimeout,
			MaxHeaderBytes:    o.MaxHeaderBytes,
			ErrorLog:          o.ErrorLog,
			BaseContext:       o.BaseContext,
		},
		maxConns: o.MaxConns,
	}
}

// Serve accepts at most MaxConns connections at a time from ln.
func (s *Server) Serve(ln net.Listener) error {
	return s.Server.Serve(netutil.LimitListener(ln, s.maxConns))
}

// progressDeadline gives every response a write deadline of timeout from
// the request's start, moved forward by each write and flush.
//
// It also lifts the read deadline (ReadTimeout) once the request's body is
// read: when it passes, net/http's background read of the connection
// cancels the request's context, which would end every event stream and
// download after ReadTimeout. The body itself is read under ReadTimeout; the
// server sets fresh deadlines for the connection's next request.
func progressDeadline(h http.Handler, timeout time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		pw := &progressWriter{ResponseWriter: w, rc: rc, timeout: timeout}
		pw.extend(time.Now())
		if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
			_ = rc.SetReadDeadline(time.Time{})
		} else {
			r.Body = &bodyDeadline{ReadCloser: r.Body, rc: rc}
		}
		h.ServeHTTP(pw, r)
	})
}

// progressWriter moves the write deadline forward as the response moves
// (at most every tenth of the timeout: a deadline is a timer reset, not
// free, and a download writes thousands of times a second).
type progressWriter struct {
	http.ResponseWriter
	rc      *http.ResponseController
	timeout time.Duration

	mu   sync.Mutex
	last time.Time
}

func (p *progressWriter) extend(now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if now.Sub(p.last) < p.timeout/10 {
		return
	}
	p.last = now
	_ = p.rc.SetWriteDeadline(now.Add(p.timeout))
}

func (p *progressWriter) Write(b []byte) (int, error) {
	p.extend(time.Now())
	return p.ResponseWriter.Write(b)
}

func (p *progressWriter) Flush() {
	p.extend(time.Now())
	_ = p.rc.Flush()
}

// Unwrap lets http.ResponseController reach the connection.
func (p *progressWriter) Unwrap() http.ResponseWriter { return p.ResponseWriter }

// bodyDeadline lifts the connection's read deadline once the request body
// has been read to its end. A body that failed (timed out) keeps it: the
// server then closes the connection instead of waiting for the rest.
type bodyDeadline struct {
	io.ReadCloser
	rc   *http.ResponseController
	done bool
}

func (b *bodyDeadline) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF && !b.done {
		b.done = true
		_ = b.rc.SetReadDeadline(time.Time{})
	}
	return n, err
}
