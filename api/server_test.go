package api_test

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/imprint-dev/imprint/api"
)

// Short limits so each case takes well under a second.
var testLimits = api.ServerOptions{
	ReadHeaderTimeout: 200 * time.Millisecond,
	ReadTimeout:       300 * time.Millisecond,
	WriteTimeout:      300 * time.Millisecond,
	IdleTimeout:       300 * time.Millisecond,
	MaxHeaderBytes:    4 << 10,
	MaxConns:          2,
}

func serve(t *testing.T, h http.Handler, o api.ServerOptions) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := api.NewServer(h, o)
	done := make(chan struct{})
	go func() { defer close(done); s.Serve(ln) }()
	t.Cleanup(func() { s.Close(); <-done })
	return ln.Addr().String()
}

// closedWithin reads c until the server closes it and fails when that
// takes longer than max.
func closedWithin(t *testing.T, what string, c net.Conn, max time.Duration) {
	t.Helper()
	start := time.Now()
	c.SetReadDeadline(start.Add(max + time.Second))
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("%s: the server kept the connection open for over %v", what, max+time.Second)
	}
	if d := time.Since(start); d > max {
		t.Errorf("%s: closed after %v, want within %v", what, d, max)
	}
}

func TestServerStreamOutlivesTimeouts(t *testing.T) {
	// An event stream writes every 100 ms for 1.2 s: four times the read
	// and write timeouts. It must neither be cut nor see its context end.
	ctxEnded := make(chan error, 1)
	addr := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body) // a body (POST) is read under ReadTimeout
		w.Header().Set("Content-Type", "text/event-stream")
		for i := range 12 {
			select {
			case <-r.Context().Done():
				ctxEnded <- fmt.Errorf("context ended after %d events: %w", i, r.Context().Err())
				return
			case <-time.After(100 * time.Millisecond):
			}
			fmt.Fprintf(w, "data: %d\n\n", i)
			w.(http.Flusher).Flush()
		}
		ctxEnded <- nil
	}), testLimits)
	for _, method := range []string{"GET", "POST"} {
		var body io.Reader
		if method == "POST" {
			body = strings.NewReader("{}")
		}
		req, _ := http.NewRequest(method, "http://"+addr+"/v1/events", body)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(resp.Body)
		n := 0
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "data: ") {
				n++
			}
		}
		resp.Body.Close()
		if err := <-ctxEnded; err != nil || n != 12 || sc.Err() != nil {
			t.Errorf("%s: got %d of 12 events (%v), handler: %v", method, n, sc.Err(), err)
		}
	}
}

func TestServerStalledReaderCut(t *testing.T) {
	// A caller that never reads its response: the handler's writes fail
	// once the write deadline passes, instead of blocking forever.
	werr := make(chan error, 1)
	addr := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		buf := make([]byte, 64<<10)
		for range 1 << 14 { // 1 GiB, far more than socket buffers hold
			if _, err := w.Write(buf); err != nil {
				werr <- err
				return
			}
		}
		werr <- nil
	}), testLimits)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "GET /image HTTP/1.1\r\nHost: x\r\n\r\n")
	select {
	case err := <-werr:
		if err == nil {
			t.Fatal("1 GiB written to a caller that reads nothing")
		}
	case <-time.After(3 * time.Second):
		t.Fatal("the handler was still writing to a stalled caller after 3 s (write timeout 300 ms)")
	}
}

func TestServerConnectionLimits(t *testing.T) {
	addr := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		fmt.Fprint(w, "ok")
	}), testLimits)
	dial := func() net.Conn {
		t.Helper()
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}

	t.Run("idle keep-alive closed", func(t *testing.T) {
		c := dial()
		fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("first request: %v %v", resp, err)
		}
		io.Copy(io.Discard, resp.Body)
		closedWithin(t, "idle keep-alive connection", c, 800*time.Millisecond)
	})
	t.Run("slow headers closed", func(t *testing.T) {
		c := dial()
		fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: x\r\n") // and never the blank line
		closedWithin(t, "connection sending headers slowly", c, 700*time.Millisecond)
	})
	t.Run("slow body cut", func(t *testing.T) {
		c := dial()
		fmt.Fprintf(c, "POST /v1/plan HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{")
		// ReadTimeout, then net/http's 500 ms wait before closing a
		// connection with unread body (so the answer is not lost to a RST).
		closedWithin(t, "connection sending its body slowly", c, 1500*time.Millisecond)
	})
	t.Run("header size", func(t *testing.T) {
		c := dial()
		fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: x\r\nX-Big: %s\r\n\r\n", strings.Repeat("a", 16<<10))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil || resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Fatalf("16 KiB header with a 4 KiB limit: %v %v; want 431", resp, err)
		}
	})
	t.Run("connection cap", func(t *testing.T) {
		// Two connections hold both slots (the idle one is closed by the
		// server only after its timeouts): a third caller waits.
		a, b := dial(), dial()
		fmt.Fprintf(a, "GET / HTTP/1.1\r\nHost: x\r\n")
		fmt.Fprintf(b, "GET / HTTP/1.1\r\nHost: x\r\n")
		time.Sleep(50 * time.Millisecond)
		client := &http.Client{Timeout: 100 * time.Millisecond, Transport: &http.Transport{DisableKeepAlives: true}}
		if resp, err := client.Get("http://" + addr + "/"); err == nil {
			resp.Body.Close()
			t.Fatal("a third connection was served while two held the cap of 2")
		}
		a.Close()
		b.Close()
		client.Timeout = 2 * time.Second
		resp, err := client.Get("http://" + addr + "/")
		if err != nil {
			t.Fatalf("after the two closed: %v", err)
		}
		resp.Body.Close()
	})
}

func TestDefaultServerOptions(t *testing.T) {
	d := api.DefaultServerOptions()
	s := api.NewServer(http.NotFoundHandler(), api.ServerOptions{})
	if s.ReadHeaderTimeout != d.ReadHeaderTimeout || s.ReadTimeout != d.ReadTimeout || s.IdleTimeout != d.IdleTimeout ||
		s.MaxHeaderBytes != d.MaxHeaderBytes || s.WriteTimeout != 0 {
		t.Errorf("NewServer with zero options = %+v; want the defaults (the write timeout is per response, not the server's)", s.Server)
	}
	if d.ReadHeaderTimeout <= 0 || d.ReadTimeout <= 0 || d.WriteTimeout <= 0 || d.IdleTimeout <= 0 || d.MaxHeaderBytes <= 0 || d.MaxConns <= 0 {
		t.Errorf("a default limit is off: %+v", d)
	}
}

// The controller serves images with http.ServeContent through the server's
// response wrapper: whole and ranged (resumed) downloads are intact.
func TestServerServeContent(t *testing.T) {
	img := make([]byte, 8<<20)
	for i := range img {
		img[i] = byte(i * 7 / 5)
	}
	addr := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeContent(w, r, "", time.Time{}, strings.NewReader(string(img)))
	}), testLimits)
	for _, tc := range []struct {
		rng  string
		code int
		want []byte
	}{
		{"", 200, img},
		{"bytes=5000000-", 206, img[5000000:]},
		{"bytes=10-19", 206, img[10:20]},
	} {
		req, _ := http.NewRequest("GET", "http://"+addr+"/images/x", nil)
		if tc.rng != "" {
			req.Header.Set("Range", tc.rng)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != tc.code || string(got) != string(tc.want) {
			t.Errorf("Range %q: %d, %d bytes, %v; want %d and %d bytes", tc.rng, resp.StatusCode, len(got), err, tc.code, len(tc.want))
		}
	}
}
