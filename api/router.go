package api

import (
	"context"
	"crypto/subtle"
	_ "embed"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"

	"github.com/imprint-dev/imprint/inventory"
)

//go:embed openapi.yaml
var openapiYAML []byte

// InventorySource collects the node's hardware.
type InventorySource interface {
	Collect(ctx context.Context) (*inventory.Inventory, error)
}

// InventoryFunc adapts a function to InventorySource.
type InventoryFunc func(ctx context.Context) (*inventory.Inventory, error)

// Collect calls f.
func (f InventoryFunc) Collect(ctx context.Context) (*inventory.Inventory, error) { return f(ctx) }

// Deps is everything the routes act on. Logger and Inventory are required;
// a nil Jobs, Power or Logs makes its routes answer 503.
type Deps struct {
	Logger *slog.Logger
	// Token is the bearer token every /v1 call must present. Empty means no
	// token is configured: /v1 is refused (403) unless Insecure is set.
	Token    string
	Insecure bool

	Inventory InventorySource
	Jobs      Jobs
	Power     Power
	Logs      Logs
	// Metrics serves GET /v1/metrics (Prometheus), behind the token like
	// the rest of /v1; nil: 503.
	Metrics http.Handler
}

// NewRouter returns the agent's HTTP handler.
func NewRouter(deps Deps) http.Handler {
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	r := chi.NewRouter()
	r.Use(middleware.RequestID)
	r.Use(RequestLogger(deps.Logger))
	r.Use(middleware.Recoverer)
	r.Use(middleware.Heartbeat("/healthz"))
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such resource: "+r.URL.Path)
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusMethodNotAllowed, r.Method+" is not allowed on "+r.URL.Path)
	})
	r.Route("/v1", func(r chi.Router) {
		r.Use(authenticate(deps.Token, deps.Insecure))
		r.Get("/openapi.yaml", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/yaml")
			w.Write(openapiYAML)
		})
		r.Mount("/inventory", inventoryResource{deps.Inventory}.Routes())
		r.Mount("/plan", planResource{deps.Jobs}.Routes())
		r.Mount("/provision", provisionResource{deps.Jobs}.Routes())
		r.Mount("/events", eventsResource{deps.Jobs}.Routes())
		r.Mount("/logs", logsResource{deps.Logs}.Routes())
		r.Get("/metrics", func(w http.ResponseWriter, r *http.Request) {
			if deps.Metrics == nil {
				writeError(w, http.StatusServiceUnavailable, "this agent serves no metrics")
				return
			}
			deps.Metrics.ServeHTTP(w, r)
		})
		power := powerResource{deps.Power, deps.Logger}
		r.Post("/reboot", power.reboot)
		r.Post("/poweroff", power.poweroff)
	})
	return r
}

// authenticate requires "Authorization: Bearer <token>". With no token
// configured every call is refused, unless insecure.
func authenticate(token string, insecure bool) func(http.Handler) http.Handler {
	want := []byte(token)
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if token == "" {
				if insecure {
					next.ServeHTTP(w, r)
					return
				}
				writeError(w, http.StatusForbidden, "the agent has no token configured (imprint.token= on the kernel command line, --token-file or --token); /v1 is disabled unless started with --insecure")
				return
			}
			auth := r.Header.Get("Authorization")
			scheme, got, ok := strings.Cut(auth, " ")
			if !ok || !strings.EqualFold(scheme, "Bearer") {
				w.Header().Set("WWW-Authenticate", `Bearer realm="imprint"`)
				writeError(w, http.StatusUnauthorized, "missing \"Authorization: Bearer <token>\" header")
				return
			}
			if subtle.ConstantTimeCompare([]byte(strings.TrimSpace(got)), want) != 1 {
				w.Header().Set("WWW-Authenticate", `Bearer realm="imprint", error="invalid_token"`)
				writeError(w, http.StatusUnauthorized, "invalid bearer token")
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// RequestLogger is chi middleware logging one line per request with its
// id, status and duration (the agent's API and the reference controller).
func RequestLogger(log *slog.Logger) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			t0 := time.Now()
			ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
			defer func() {
				log.LogAttrs(r.Context(), slog.LevelInfo, "http request",
					slog.String("req_id", middleware.GetReqID(r.Context())),
					slog.String("method", r.Method),
					slog.String("path", r.URL.Path),
					slog.String("remote", r.RemoteAddr),
					slog.Int("status", ww.Status()),
					slog.Int("bytes", ww.BytesWritten()),
					slog.Duration("duration", time.Since(t0)))
			}()
			next.ServeHTTP(ww, r)
		})
	}
}

// Error is the body of every non-2xx answer.
type Error struct {
	Error    string       `json:"error"`
	Problems []FieldError `json:"problems,omitempty"`
	Warnings []FieldError `json:"warnings,omitempty"`
}

// FieldError is one validation problem, with the path of the field.
type FieldError struct {
	Path string `json:"path"`
	Msg  string `json:"msg"`
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, Error{Error: msg})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

type inventoryResource struct{ src InventorySource }

func (res inventoryResource) Routes() chi.Router {
	r := chi.NewRouter()
	r.Get("/", func(w http.ResponseWriter, r *http.Request) {
		if res.src == nil {
			writeError(w, http.StatusServiceUnavailable, "inventory is not available")
			return
		}
		inv, err := res.src.Collect(r.Context())
		if err != nil {
			writeError(w, http.StatusInternalServerError, "collect inventory: "+err.Error())
			return
		}
		writeJSON(w, http.StatusOK, inv)
	})
	return r
}
