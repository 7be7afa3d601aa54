package api_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/imprint-dev/imprint/api"
	"github.com/imprint-dev/imprint/inventory"
)

const token = "t0ken"

var fakeInventory = api.InventoryFunc(func(context.Context) (*inventory.Inventory, error) {
	return &inventory.Inventory{
		Disks: []inventory.Disk{{Name: "vdb", Path: "/dev/vdb", SizeBytes: 10 << 30}},
		NICs:  []inventory.NIC{{Name: "eth0", MAC: "52:54:00:12:34:56", Link: true}},
		CPU:   inventory.CPU{Count: 2, Arch: "amd64"},
	}, nil
})

// do sends one request and returns the status and body.
func do(t *testing.T, srv *httptest.Server, method, path, auth, body string) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

func TestHealthzNeedsNoToken(t *testing.T) {
	srv := httptest.NewServer(api.NewRouter(api.Deps{Token: token, Inventory: fakeInventory}))
	defer srv.Close()
	if code, _, _ := do(t, srv, "GET", "/healthz", "", ""); code != 200 {
		t.Errorf("GET /healthz = %d, want 200", code)
	}
}

func TestAuthentication(t *testing.T) {
	srv := httptest.NewServer(api.NewRouter(api.Deps{Token: token, Inventory: fakeInventory}))
	defer srv.Close()
	for _, tt := range []struct {
		name, auth string
		want       int
	}{
		{"missing", "", 401},
		{"wrong", "Bearer nope", 401},
		{"prefix of the token", "Bearer t0ke", 401},
		{"basic scheme", "Basic dDBrZW4=", 401},
		{"right", "Bearer " + token, 200},
		{"scheme case-insensitive", "bearer " + token, 200},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, body, hdr := do(t, srv, "GET", "/v1/inventory", tt.auth, "")
			if code != tt.want {
				t.Fatalf("GET /v1/inventory with %q = %d %s, want %d", tt.auth, code, body, tt.want)
			}
			if code == 401 && !strings.HasPrefix(hdr.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("401 without WWW-Authenticate: Bearer (got %q)", hdr.Get("WWW-Authenticate"))
			}
		})
	}
	// a token in the URL is not a credential
	if code, _, _ := do(t, srv, "GET", "/v1/inventory?token="+token, "", ""); code != 401 {
		t.Errorf("token in query accepted: %d", code)
	}
}

func TestInventory(t *testing.T) {
	srv := httptest.NewServer(api.NewRouter(api.Deps{Token: token, Inventory: fakeInventory}))
	defer srv.Close()
	code, body, hdr := do(t, srv, "GET", "/v1/inventory", "Bearer "+token, "")
	if code != 200 || hdr.Get("Content-Type") != "application/json" {
		t.Fatalf("GET /v1/inventory = %d %q", code, hdr.Get("Content-Type"))
	}
	var got inventory.Inventory
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatal(err)
	}
	want, _ := fakeInventory(context.Background())
	if d := cmp.Diff(*want, got); d != "" {
		t.Errorf("inventory (-want +got):\n%s", d)
	}
}

func TestNoTokenConfigured(t *testing.T) {
	srv := httptest.NewServer(api.NewRouter(api.Deps{Inventory: fakeInventory}))
	defer srv.Close()
	if code, _, _ := do(t, srv, "GET", "/healthz", "", ""); code != 200 {
		t.Errorf("healthz = %d", code)
	}
	for _, p := range []string{"GET /v1/inventory", "POST /v1/provision", "POST /v1/reboot", "GET /v1/openapi.yaml"} {
		m, path, _ := strings.Cut(p, " ")
		if code, body, _ := do(t, srv, m, path, "Bearer anything", "{}"); code != 403 || !strings.Contains(body, "no token configured") {
			t.Errorf("%s without a configured token = %d %s, want 403", p, code, body)
		}
	}
	insecure := httptest.NewServer(api.NewRouter(api.Deps{Insecure: true, Inventory: fakeInventory}))
	defer insecure.Close()
	if code, _, _ := do(t, insecure, "GET", "/v1/inventory", "", ""); code != 200 {
		t.Errorf("insecure inventory = %d, want 200", code)
	}
}
