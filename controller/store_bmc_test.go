package controller

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/imprint-dev/imprint/power"
)

// TestStoreBMC: a node's BMC round-trips, is replaced, and removed, on
// each backend; a node without one has none.
func TestStoreBMC(t *testing.T) {
	for name, newDSN := range storeBackends(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			s := openTestStore(t, newDSN(t))
			const mac = "52:54:00:00:00:01"
			if err := s.Enroll(ctx, mac); err != nil {
				t.Fatal(err)
			}
			if b, err := s.BMC(ctx, mac); err != nil || b != nil {
				t.Fatalf("BMC of a node without one: %v %v", b, err)
			}
			want := power.BMC{Driver: power.IPMI, Address: "10.0.0.9:623", Username: "admin", Password: "pw", CipherSuite: 3}
			if err := s.SetBMC(ctx, mac, &want); err != nil {
				t.Fatal(err)
			}
			want = power.BMC{Driver: power.Redfish, Address: "https://10.0.0.9", Username: "root", Password: "pw2", Insecure: true, System: "1"}
			if err := s.SetBMC(ctx, mac, &want); err != nil {
				t.Fatal(err)
			}
			got, err := s.BMC(ctx, mac)
			if err != nil || got == nil {
				t.Fatalf("BMC: %v %v", got, err)
			}
			if d := cmp.Diff(want, *got); d != "" {
				t.Errorf("BMC (-want +got):\n%s", d)
			}
			if err := s.SetBMC(ctx, mac, nil); err != nil {
				t.Fatal(err)
			}
			if b, err := s.BMC(ctx, mac); err != nil || b != nil {
				t.Errorf("BMC after removal: %v %v", b, err)
			}
			if err := s.SetBMC(ctx, "52:54:00:00:00:99", &want); err == nil {
				t.Errorf("a BMC for a node not enrolled was stored")
			}
		})
	}
}
