package controller

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/imprint-dev/imprint/api"
	"github.com/imprint-dev/imprint/internal/pgtest"
)

// storeBackends are the databases every store test runs against: SQLite
// in a temp dir and a real PostgreSQL started for the test (pgtest).
func storeBackends(t *testing.T) map[string]func(t *testing.T) string {
	var pg *pgtest.Server
	return map[string]func(t *testing.T) string{
		"sqlite": func(t *testing.T) string { return "sqlite:" + filepath.Join(t.TempDir(), "state", "controller.db") },
		"postgres": func(t *testing.T) string {
			if pg == nil {
				pg = pgtest.Start(t)
			}
			return pg.NewDatabase(t)
		},
	}
}

func openTestStore(t *testing.T, dsn string) Store {
	t.Helper()
	s, err := OpenStore(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestStore is the Store contract on each backend: migrations applied once
// and re-run harmlessly, rows and events round-trip, leases exclude.
func TestStore(t *testing.T) {
	for name, newDSN := range storeBackends(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			dsn := newDSN(t)
			s := openTestStore(t, dsn)
			if v, err := SchemaVersion(ctx, s); err != nil || v != len(migrations) {
				t.Fatalf("schema version %d, %v; want %d", v, err, len(migrations))
			}
			// A second open migrates nothing and sees the same schema.
			s2 := openTestStore(t, dsn)
			if v, err := SchemaVersion(ctx, s2); err != nil || v != len(migrations) {
				t.Fatalf("reopened: schema version %d, %v", v, err)
			}

			if _, err := s.Node(ctx, testMAC); !errors.Is(err, ErrUnknownNode) {
				t.Errorf("Node before Enroll: %v", err)
			}
			for i := 0; i < 2; i++ {
				if err := s.Enroll(ctx, testMAC); err != nil {
					t.Fatalf("Enroll #%d: %v", i+1, err)
				}
			}
			r, err := s.Node(ctx, testMAC)
			if err != nil || r.Round != 1 || r.Local || len(r.Phases) != 0 || r.Status != nil || r.Phone != nil {
				t.Fatalf("fresh node %+v, %v", r, err)
			}
			now := time.Unix(1700000000, 123456789)
			r.Round, r.Local, r.Phases = 2, true, []Phase{PhaseBootstrap, PhaseDiscovered}
			r.Token, r.PhoneSecret, r.NodeID, r.AgentURL, r.Pin = "tok", "phone", "uuid\x1b[2J", "https://10.0.2.15:9999", "AA:BB"
			r.Status = &api.Status{ID: "job-1", State: api.StateFailed, Error: &api.JobError{Step: "images", Message: "boom"}}
			r.Phone = &PhoneHome{Hostname: "n1", PubKeys: map[string]string{"ed25519": "ssh-ed25519 AAAA"}, Time: now}
			r.Doc, r.ProvStart = []byte(`{"profile":"x"}`), now
			evs := []Event{{Time: now, MAC: testMAC, Round: 2, Phase: PhaseBootstrap, Detail: "one"}, {Time: now.Add(time.Second), MAC: testMAC, Round: 2, Phase: PhaseDiscovered, Detail: "two"}}
			if err := s.Save(ctx, r, evs...); err != nil {
				t.Fatal(err)
			}
			got, err := s2.Node(ctx, testMAC) // through the other connection
			if err != nil {
				t.Fatal(err)
			}
			if got.Round != 2 || !got.Local || len(got.Phases) != 2 || got.Token != "tok" || got.PhoneSecret != "phone" || got.NodeID != "uuid\x1b[2J" ||
				got.Pin != "AA:BB" || got.Status == nil || got.Status.Error.Message != "boom" || got.Phone == nil || got.Phone.PubKeys["ed25519"] != "ssh-ed25519 AAAA" ||
				string(got.Doc) != `{"profile":"x"}` || !got.ProvStart.Equal(now) || !got.Phone.Time.Equal(now) {
				t.Errorf("round trip:\n got %+v\nwant %+v", got, r)
			}
			gotEvs, err := s2.Events(ctx, testMAC)
			if err != nil || len(gotEvs) != 2 || gotEvs[0].Detail != "one" || gotEvs[1].Phase != PhaseDiscovered || !gotEvs[1].Time.Equal(now.Add(time.Second)) {
				t.Errorf("events %+v, %v", gotEvs, err)
			}
			if err := s.Save(ctx, NodeRecord{MAC: "52:54:00:00:00:99"}); !errors.Is(err, ErrUnknownNode) {
				t.Errorf("Save of an unenrolled node: %v", err)
			}
			if all, err := s.Nodes(ctx); err != nil || len(all) != 1 {
				t.Errorf("Nodes = %d, %v", len(all), err)
			}

			// Leases: one holder at a time until expiry.
			t0 := time.Unix(1700000000, 0)
			if ok, _, err := s.Lease(ctx, testMAC, "ctl-a", t0, t0.Add(10*time.Second)); err != nil || !ok {
				t.Fatalf("a takes the free lease: %v %v", ok, err)
			}
			if ok, holder, err := s2.Lease(ctx, testMAC, "ctl-b", t0.Add(5*time.Second), t0.Add(15*time.Second)); err != nil || ok || holder == "" {
				t.Fatalf("b took a's live lease: %v %q %v", ok, holder, err)
			}
			if ok, _, _ := s.Lease(ctx, testMAC, "ctl-a", t0.Add(5*time.Second), t0.Add(15*time.Second)); !ok {
				t.Fatal("a cannot renew its own lease")
			}
			if err := s.RenewLeases(ctx, "ctl-a", t0.Add(20*time.Second)); err != nil {
				t.Fatal(err)
			}
			if ok, _, _ := s2.Lease(ctx, testMAC, "ctl-b", t0.Add(19*time.Second), t0.Add(30*time.Second)); ok {
				t.Fatal("b took a's renewed lease")
			}
			if ok, _, _ := s2.Lease(ctx, testMAC, "ctl-b", t0.Add(21*time.Second), t0.Add(30*time.Second)); !ok {
				t.Fatal("b cannot take a's expired lease")
			}
			if err := s.ReleaseLease(ctx, testMAC, "ctl-a"); err != nil { // not a's any more: no effect
				t.Fatal(err)
			}
			if r, _ := s.Node(ctx, testMAC); r.LeaseOwner != "ctl-b" {
				t.Errorf("lease owner %q after a's stale release", r.LeaseOwner)
			}
			// A save never moves the lease.
			if err := s.Save(ctx, got); err != nil {
				t.Fatal(err)
			}
			if r, _ := s.Node(ctx, testMAC); r.LeaseOwner != "ctl-b" {
				t.Errorf("lease owner %q after a save", r.LeaseOwner)
			}
			if err := s2.ReleaseLease(ctx, "", "ctl-b"); err != nil {
				t.Fatal(err)
			}
			if ok, _, _ := s.Lease(ctx, testMAC, "ctl-a", t0.Add(22*time.Second), t0.Add(40*time.Second)); !ok {
				t.Fatal("a cannot take the released lease")
			}
		})
	}
}

func TestOpenStoreErrors(t *testing.T) {
	for dsn, want := range map[string]string{
		"mysql://u:pw@h/db": `want sqlite:PATH or postgres://`,
		"sqlite:":           "needs a path",
		"postgres://u:pw@127.0.0.1:1/db?connect_timeout=2": "u:xxxxx@127.0.0.1:1",
	} {
		_, err := OpenStore(context.Background(), dsn)
		if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), ":pw@") {
			t.Errorf("OpenStore(%q) = %v, want %q and no password", dsn, err, want)
		}
	}
}
