package vmtest

import (
	"net"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"
)

// GuestHost is the host's loopback as a guest on QEMU's user-mode network
// sees it.
const GuestHost = "10.0.2.2"

// HostServer is an HTTP server on the host's 127.0.0.1 that guests reach at
// http://10.0.2.2:PORT: a stand-in controller, or the source of OS images
// and PXE files. It counts the requests per path.
type HostServer struct {
	Port int
	mux  *http.ServeMux
	mu   sync.Mutex
	hits map[string]int
}

// NewHostServer starts a server closed in t.Cleanup.
func NewHostServer(t testing.TB) *HostServer {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("vmtest: host server: %v", err)
	}
	s := &HostServer{Port: l.Addr().(*net.TCPAddr).Port, mux: http.NewServeMux(), hits: map[string]int{}}
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.hits[r.URL.Path]++
		s.mu.Unlock()
		s.mux.ServeHTTP(w, r)
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return s
}

// Handle registers a handler (http.ServeMux patterns).
func (s *HostServer) Handle(pattern string, h http.Handler) { s.mux.Handle(pattern, h) }

// File serves the host file at path.
func (s *HostServer) File(path, file string) {
	s.mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) { http.ServeFile(w, r, file) })
}

// GuestURL is the URL of path as the guest reaches it.
func (s *HostServer) GuestURL(path string) string {
	return "http://" + GuestHost + ":" + strconv.Itoa(s.Port) + path
}

// URL is the URL of path from the host.
func (s *HostServer) URL(path string) string {
	return "http://127.0.0.1:" + strconv.Itoa(s.Port) + path
}

// Hits is how many requests path has had.
func (s *HostServer) Hits(path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hits[path]
}
