package api

import (
	"net/http"
	"sort"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"
	"github.com/google/go-cmp/cmp"
	"go.yaml.in/yaml/v3"
)

// TestOpenAPIDocumentsEveryRoute keeps openapi.yaml in sync with the router:
// every route is documented and every documented operation exists.
func TestOpenAPIDocumentsEveryRoute(t *testing.T) {
	var doc struct {
		OpenAPI string                               `yaml:"openapi"`
		Paths   map[string]map[string]map[string]any `yaml:"paths"`
	}
	if err := yaml.Unmarshal(openapiYAML, &doc); err != nil {
		t.Fatalf("openapi.yaml: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Errorf("openapi version %q", doc.OpenAPI)
	}
	var documented []string
	for path, ops := range doc.Paths {
		for method, op := range ops {
			documented = append(documented, strings.ToUpper(method)+" "+path)
			if _, ok := op["responses"]; !ok {
				t.Errorf("%s %s: no responses", method, path)
			}
		}
	}

	r := NewRouter(Deps{}).(chi.Routes)
	routes := []string{"GET /healthz"} // middleware.Heartbeat, not a route
	err := chi.Walk(r, func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		route = strings.ReplaceAll(route, "/*/", "/")
		if route != "/" {
			route = strings.TrimSuffix(route, "/")
		}
		routes = append(routes, method+" "+route)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(routes) < 10 {
		t.Errorf("walked only %d routes: %v", len(routes), routes)
	}
	sort.Strings(documented)
	sort.Strings(routes)
	if d := cmp.Diff(routes, documented); d != "" {
		t.Errorf("routes (-router +openapi.yaml):\n%s", d)
	}
}
