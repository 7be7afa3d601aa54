package api

import (
	"testing"

	"github.com/go-chi/chi/v5"
	"github.com/imprint-dev/imprint/internal/openapitest"
)

// TestOpenAPIDocumentsEveryRoute keeps openapi.yaml in sync with the router:
// every route is documented and every documented operation exists.
func TestOpenAPIDocumentsEveryRoute(t *testing.T) {
	routes := openapitest.Check(t, openapiYAML, NewRouter(Deps{}).(chi.Routes), nil,
		"GET /healthz") // middleware.Heartbeat, not a route
	if len(routes) < 10 {
		t.Errorf("walked only %d routes: %v", len(routes), routes)
	}
}
