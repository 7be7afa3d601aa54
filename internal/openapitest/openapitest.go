// Package openapitest keeps an OpenAPI document and a chi router in step:
// the agent's API (api/openapi.yaml) and the controller's operator API
// (controller/openapi.yaml) are each checked by it.
package openapitest

import (
	"net/http"
	"sort"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"
	"github.com/google/go-cmp/cmp"
	"go.yaml.in/yaml/v3"
)

// Check fails t unless the operations of spec (an OpenAPI 3 document) are
// exactly the routes of r that keep accepts, plus extra ("GET /healthz":
// routes served by middleware, which chi.Walk does not see). Every
// operation must document its responses. It returns the routes compared.
func Check(t testing.TB, spec []byte, r chi.Routes, keep func(route string) bool, extra ...string) []string {
	t.Helper()
	var doc struct {
		OpenAPI string                               `yaml:"openapi"`
		Paths   map[string]map[string]map[string]any `yaml:"paths"`
	}
	if err := yaml.Unmarshal(spec, &doc); err != nil {
		t.Fatalf("openapi document: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Errorf("openapi version %q, want 3.x", doc.OpenAPI)
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
	routes := append([]string(nil), extra...)
	err := chi.Walk(r, func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		route = strings.ReplaceAll(route, "/*/", "/")
		if route != "/" {
			route = strings.TrimSuffix(route, "/")
		}
		if keep == nil || keep(route) {
			routes = append(routes, method+" "+route)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(documented)
	sort.Strings(routes)
	if d := cmp.Diff(routes, documented); d != "" {
		t.Errorf("routes (-router +openapi document):\n%s", d)
	}
	return routes
}
