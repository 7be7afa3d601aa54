package controller

import (
	"net/http"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"
	"github.com/imprint-dev/imprint/internal/openapitest"
)

// TestOpenAPIDocumentsOperatorRoutes keeps openapi.yaml in sync with the
// operator API: every /v1 route is documented and every documented
// operation exists.
func TestOpenAPIDocumentsOperatorRoutes(t *testing.T) {
	h := newHarness(t, nil)
	openapitest.Check(t, openapiYAML, h.ctrl.Handler().(chi.Routes), func(route string) bool {
		return strings.HasPrefix(route, "/v1/")
	})
	// Served to the operator only.
	if code, _ := h.get("/v1/openapi.yaml"); code != http.StatusUnauthorized {
		t.Errorf("GET /v1/openapi.yaml without a token: %d", code)
	}
	req, _ := http.NewRequest("GET", h.srv.URL+"/v1/openapi.yaml", nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/yaml" {
		t.Errorf("GET /v1/openapi.yaml: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
}
