package controller

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// TestAgentClientFreshConnections: the controller reboots a node and talks
// to the agent of its next boot on the same address. A connection kept from
// before the reboot is dead (the new kernel answers it with a reset; QEMU's
// slirp even accepts it first), and a POST on it fails with EOF without a
// retry. The agent client must therefore open a connection per request.
func TestAgentClientFreshConnections(t *testing.T) {
	var mu sync.Mutex
	seen := map[string]bool{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		reused := seen[r.RemoteAddr]
		seen[r.RemoteAddr] = true
		mu.Unlock()
		if reused { // the "rebooted" node: this connection is gone
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.Close()
			}
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"state":"idle"}`))
	}))
	defer srv.Close()
	h := newHarness(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cl := h.ctrl.agentClient(srv.URL, "", "node-token")
	if err := cl.Reboot(ctx); err != nil {
		t.Fatalf("reboot: %v", err)
	}
	// the next boot's agent, through a client made the same way
	for i, c := range []interface{ Reboot(context.Context) error }{cl, h.ctrl.agentClient(srv.URL, "", "node-token")} {
		if err := c.Reboot(ctx); err != nil {
			t.Fatalf("POST %d after the first: %v (a kept-alive connection was reused)", i+1, err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 3 {
		t.Errorf("%d connections for 3 requests", len(seen))
	}
}
