package openapitest

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"
)

// recorder is a testing.TB that keeps the failures instead of failing.
type recorder struct {
	testing.TB
	errs []string
}

func (r *recorder) Helper() {}
func (r *recorder) Errorf(format string, a ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, a...))
}
func (r *recorder) Fatalf(format string, a ...any) { r.Errorf(format, a...); panic(r) }

func TestCheck(t *testing.T) {
	r := chi.NewRouter()
	ok := http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})
	r.Get("/v1/nodes", ok)
	r.Post("/v1/nodes/{mac}/reprovision", ok)
	r.Get("/boot/{mac}", ok)
	v1 := func(route string) bool { return strings.HasPrefix(route, "/v1/") }
	const good = `openapi: 3.0.3
paths:
  /v1/nodes:
    get: {responses: {"200": {description: ok}}}
  /v1/nodes/{mac}/reprovision:
    post: {responses: {"202": {description: ok}}}
`
	rec := &recorder{TB: t}
	if got := Check(rec, []byte(good), r, v1); len(rec.errs) != 0 || len(got) != 2 {
		t.Errorf("in step: routes %v, failures %q", got, rec.errs)
	}
	for name, tc := range map[string]struct{ spec, want string }{
		"route not documented":    {strings.Replace(good, "  /v1/nodes:\n    get: {responses: {\"200\": {description: ok}}}\n", "", 1), "-"},
		"operation without route": {good + "  /v1/gone:\n    delete: {responses: {\"204\": {description: ok}}}\n", "DELETE /v1/gone"},
		"no responses":            {strings.Replace(good, `{responses: {"202": {description: ok}}}`, `{summary: x}`, 1), "no responses"},
		"not OpenAPI 3":           {strings.Replace(good, "3.0.3", "2.0", 1), "openapi version"},
	} {
		rec := &recorder{TB: t}
		Check(rec, []byte(tc.spec), r, v1)
		if !strings.Contains(strings.Join(rec.errs, "\n"), tc.want) {
			t.Errorf("%s: failures %q, want one with %q", name, rec.errs, tc.want)
		}
	}
}
