package agent

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/imprint-dev/imprint/api"
	"github.com/imprint-dev/imprint/inventory"
)

// Deps are the agent's collaborators. Logger and Inventory are required.
type Deps struct {
	Logger    *slog.Logger
	Inventory api.InventorySource
	// Logs backs GET /v1/logs (nil: 503).
	Logs api.Logs
	// Power backs /v1/reboot and /v1/poweroff (nil: 503).
	Power api.Power
	// Jobs backs plan, provision and events (nil: 503).
	Jobs api.Jobs
	// Metrics backs GET /v1/metrics (nil: 503).
	Metrics *Metrics
	// Reporter, if set, receives the discovery callback once serving
	// (retried until acknowledged or the agent stops).
	Reporter Reporter
	// Version is sent in discovery.
	Version string
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Agent is the long-running `imprint agent` process.
type Agent struct {
	cfg  Config
	deps Deps

	// Ready, if set, is called with the listening address once serving.
	Ready func(addr string, fingerprint string)
}

// New returns an agent; nothing happens until Run.
func New(cfg Config, deps Deps) *Agent {
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	return &Agent{cfg: cfg, deps: deps}
}

// Run listens on the configured address and serves until ctx ends.
func (a *Agent) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", a.cfg.Listen)
	if err != nil {
		return fmt.Errorf("agent: listen %q: %w", a.cfg.Listen, err)
	}
	return a.Serve(ctx, ln)
}

// Serve serves the API on ln until ctx ends, then shuts down gracefully
// (open event streams are closed, requests in flight get 10 seconds).
func (a *Agent) Serve(ctx context.Context, ln net.Listener) error {
	log := a.deps.Logger
	fingerprint := ""
	scheme := "http"
	if a.cfg.TLS {
		cert, fp, err := SelfSignedCert(a.deps.Now(), localAddrs())
		if err != nil {
			ln.Close()
			return fmt.Errorf("agent: %w", err)
		}
		fingerprint, scheme = fp, "https"
		ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	}
	auth := "token"
	switch {
	case a.cfg.Token == "" && a.cfg.Insecure:
		auth = "insecure"
		log.Warn("no token and --insecure: /v1 is open to anyone who can reach the agent")
	case a.cfg.Token == "":
		auth = "none"
		log.Warn("no token configured: only /healthz is served; set imprint.token= (kernel command line), --token-file or --token")
	}
	handler := api.NewRouter(api.Deps{
		Logger:    log.With("component", "api"),
		Token:     a.cfg.Token,
		Insecure:  a.cfg.Insecure,
		Inventory: a.deps.Inventory,
		Jobs:      a.deps.Jobs,
		Power:     a.deps.Power,
		Logs:      a.deps.Logs,
		Metrics:   a.deps.Metrics.handler(),
	})
	baseCtx, cancelBase := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelBase()
	srv := api.NewServer(handler, api.ServerOptions{
		BaseContext: func(net.Listener) context.Context { return baseCtx },
		ErrorLog:    slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	})
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()

	addr := ln.Addr().String()
	attrs := []any{"addr", addr, "url", scheme + "://" + addr, "auth", auth, "tls", a.cfg.TLS}
	if fingerprint != "" {
		attrs = append(attrs, "tls_sha256_fingerprint", fingerprint)
	}
	if a.cfg.Controller != "" {
		attrs = append(attrs, "controller", a.cfg.Controller)
	}
	log.Info("imprint agent ready", attrs...)
	if a.Ready != nil {
		a.Ready(addr, fingerprint)
	}
	discoveryDone := make(chan struct{})
	if a.deps.Reporter != nil {
		go func() {
			defer close(discoveryDone)
			a.discover(baseCtx, scheme, fingerprint)
		}()
	} else {
		close(discoveryDone)
	}

	select {
	case err := <-errc:
		return fmt.Errorf("agent: serve %s: %w", addr, err)
	case <-ctx.Done():
	}
	log.Info("imprint agent stopping", "reason", context.Cause(ctx))
	cancelBase() // ends event streams and the discovery retries
	<-discoveryDone
	if w, ok := a.deps.Jobs.(interface{ Wait() }); ok {
		w.Wait() // the running job was cancelled with ctx: let it record its failure and report
	}
	shutCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutCtx); err != nil {
		srv.Close()
		return fmt.Errorf("agent: shutdown: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("agent: serve %s: %w", addr, err)
	}
	return nil
}

// discover posts the inventory to the controller until acknowledged.
func (a *Agent) discover(ctx context.Context, scheme, fingerprint string) {
	log := a.deps.Logger
	var inv *inventory.Inventory
	if a.deps.Inventory != nil {
		var err error
		if inv, err = a.deps.Inventory.Collect(ctx); err != nil {
			log.Error("discovery: inventory", "err", err)
		}
	}
	d := api.Discovery{
		NodeID:         a.cfg.NodeID,
		Listen:         a.cfg.Listen,
		Scheme:         scheme,
		Addresses:      localAddrs(),
		TLSFingerprint: fingerprint,
		Version:        a.deps.Version,
		Inventory:      inv,
	}
	if d.NodeID == "" {
		d.NodeID = DefaultNodeID(inv)
	}
	if err := a.deps.Reporter.Discovery(ctx, d); err != nil {
		if ctx.Err() == nil {
			log.Error("discovery not delivered", "controller", a.cfg.Controller, "err", err)
		}
		return
	}
	log.Info("discovery delivered", "controller", a.cfg.Controller, "node_id", d.NodeID)
}
