package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/imprint-dev/imprint/api"
)

// statusServer answers GET /v1/provision with states[i] on the i-th call
// (the last one repeated), as job jid, and /healthz with 200.
func statusServer(t *testing.T, jid string, states ...string) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/healthz":
			w.Write([]byte("ok"))
		case "/v1/provision":
			if r.Header.Get("Authorization") != "Bearer "+token {
				w.WriteHeader(http.StatusUnauthorized)
				json.NewEncoder(w).Encode(api.Error{Error: "unauthorized"})
				return
			}
			n := int(calls.Add(1)) - 1
			st := api.Status{ID: jid, State: states[min(n, len(states)-1)], Step: "images"}
			json.NewEncoder(w).Encode(st)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv, &calls
}

func TestClientWait(t *testing.T) {
	srv, calls := statusServer(t, "j1", api.StateRunning, api.StateRunning, api.StateSucceeded)
	c := &api.Client{URL: srv.URL, Token: token}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := (&api.Client{URL: srv.URL}).Healthz(ctx); err != nil {
		t.Errorf("Healthz without a token: %v", err)
	}
	st, err := c.Wait(ctx, "j1", time.Millisecond)
	if err != nil || st.State != api.StateSucceeded || calls.Load() != 3 {
		t.Fatalf("Wait = %+v, %v after %d polls; want succeeded after 3", st, err, calls.Load())
	}
}

func TestClientWaitOtherJobNeverEnds(t *testing.T) {
	// The agent reports another job (an older one that failed): Wait keeps
	// polling for its own until ctx ends, naming the job and its state.
	srv, _ := statusServer(t, "old", api.StateFailed)
	c := &api.Client{URL: srv.URL, Token: token}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	st, err := c.Wait(ctx, "j2", time.Millisecond)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "wait for job j2: the agent reports job old failed") || st == nil || st.ID != "old" {
		t.Fatalf("Wait = %+v, %v; want the deadline, naming job j2", st, err)
	}
}

func TestClientWaitStatusError(t *testing.T) {
	srv, _ := statusServer(t, "j1", api.StateRunning)
	c := &api.Client{URL: srv.URL, Token: "wrong"}
	_, err := c.Wait(context.Background(), "j1", time.Millisecond)
	var re *api.ResponseError
	if !errors.As(err, &re) || re.StatusCode != http.StatusUnauthorized || !strings.Contains(err.Error(), "wait for job j1") {
		t.Fatalf("Wait with a wrong token = %v, want the 401 naming the job", err)
	}
}
