package controller

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"go.yaml.in/yaml/v3"

	"github.com/imprint-dev/imprint/api"
	"github.com/imprint-dev/imprint/bootstrap/nodearchive"
	"github.com/imprint-dev/imprint/pxe"
)

// maxCallbackBytes bounds a callback body (a discovery carries the
// inventory).
const maxCallbackBytes = 8 << 20

func (c *Controller) routes() http.Handler {
	r := chi.NewRouter()
	r.Use(middleware.RequestID)
	r.Use(api.RequestLogger(c.log))
	r.Use(middleware.Recoverer)
	r.Use(middleware.Heartbeat("/healthz"))
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		httpError(w, http.StatusNotFound, "no such resource: "+r.URL.Path)
	})
	// Unauthenticated, as PXE needs: boot files, images, the iPXE script
	// (which carries that node's credentials of the round, and only
	// them).
	m := c.metrics
	r.Method(http.MethodGet, "/ipxe", m.timeCallback("ipxe", http.HandlerFunc(c.ipxe)))
	r.Get("/boot/vmlinuz", c.file(c.cfg.Kernel, "kernel"))
	r.Get("/boot/initramfs.cpio.gz", c.file(c.cfg.Initrd, "initrd"))
	r.Get("/images/{name}", c.image)
	if c.cfg.IPXEEFI != "" {
		// application/efi: UEFI HTTP boot's name for an EFI image (it
		// falls back to the URL's .efi extension).
		serve := c.file(c.cfg.IPXEEFI, "ipxe")
		efi := func(w http.ResponseWriter, r *http.Request) { serve(efiContentType{w}, r) }
		r.Get("/boot/ipxe.efi", efi)
		// OVMF's HTTP boot asks HEAD first (the size) and gives up on
		// an error.
		r.Head("/boot/ipxe.efi", efi)
	}
	// The node's own initramfs: the shared one with its per-node archive
	// (its token of the round) appended; its boot script names it.
	r.Get("/boot/initramfs/{mac}", InitrdHandler(c.cfg.Initrd, NodeArchiveFunc(c.nodeArchive), c.log).ServeHTTP)
	// A node's agent calls back under its own path, with its own token.
	r.Route("/agent/{mac}", func(r chi.Router) {
		r.Use(m.timeAgentCallbacks) // the token check included
		r.Use(c.authenticateNode)
		r.Post("/discovery", c.discovery)
		r.Post("/progress", c.progress)
		r.Post("/result", c.result)
	})
	// cloud-init's phone_home sends no credentials: the secret is in the
	// URL the configdrive gave it.
	r.Method(http.MethodPost, "/phone-home/{mac}/{secret}", m.timeCallback("phone-home", http.HandlerFunc(c.phoneHome)))
	// Prometheus (Config.MetricsToken; never the operator's token).
	r.Method(http.MethodGet, "/metrics", m.metricsHandler(c.cfg.MetricsToken))
	r.Post("/phone-home/{mac}", func(w http.ResponseWriter, r *http.Request) {
		httpError(w, http.StatusForbidden, "phone-home needs the node's secret (/phone-home/<mac>/<secret>, from its configdrive)")
	})
	r.Route("/v1", c.operatorRoutes)
	return r
}

type ctxKey int

const nodeKey ctxKey = 0

// authenticateNode requires the node's own token of the round: no
// bearer → 401, any other bearer (another node's, an old round's, the
// operator's) → 403.
func (c *Controller) authenticateNode(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mac, err := normMAC(chi.URLParam(r, "mac"))
		if err != nil {
			httpError(w, http.StatusBadRequest, err.Error())
			return
		}
		if _, ok := c.nodes[mac]; !ok {
			httpError(w, http.StatusNotFound, "unknown node "+mac)
			return
		}
		scheme, got, ok := strings.Cut(r.Header.Get("Authorization"), " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(got) == "" {
			c.log.Warn("callback refused: no bearer token", "mac", mac, "path", r.URL.Path, "remote", r.RemoteAddr)
			w.Header().Set("WWW-Authenticate", `Bearer realm="imprint-controller"`)
			httpError(w, http.StatusUnauthorized, "missing bearer token (the node's token from its boot script)")
			return
		}
		rec, err := c.store.Node(r.Context(), mac)
		if err != nil {
			httpError(w, http.StatusInternalServerError, err.Error())
			return
		}
		if rec.Token == "" || subtle.ConstantTimeCompare([]byte(strings.TrimSpace(got)), []byte(rec.Token)) != 1 {
			c.log.Warn("callback refused: not this node's token of this round", "mac", mac, "path", r.URL.Path, "remote", r.RemoteAddr)
			httpError(w, http.StatusForbidden, "the bearer token is not node "+mac+"'s token of its current round")
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), nodeKey, mac)))
	})
}

func nodeOf(r *http.Request) string { return r.Context().Value(nodeKey).(string) }

func httpError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(api.Error{Error: msg})
}

// updateError answers a failed update: 503 with Retry-After while another
// controller holds the node's lease (the agent retries), else 500.
func (c *Controller) updateError(w http.ResponseWriter, mac string, err error) {
	var le errLeased
	if errors.As(err, &le) {
		w.Header().Set("Retry-After", "5")
		httpError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	c.log.Error("node update", "mac", mac, "err", err)
	httpError(w, http.StatusInternalServerError, err.Error())
}

func (c *Controller) file(path, kind string) http.HandlerFunc {
	served := c.metrics.served(kind)
	return func(w http.ResponseWriter, r *http.Request) {
		w = countingWriter{ResponseWriter: w, c: served}
		f, err := os.Open(path)
		if err != nil {
			c.log.Error("serve file", "path", path, "err", err)
			httpError(w, http.StatusInternalServerError, "open "+r.URL.Path+": "+err.Error())
			return
		}
		defer f.Close()
		st, err := f.Stat()
		if err != nil {
			httpError(w, http.StatusInternalServerError, "stat "+r.URL.Path+": "+err.Error())
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		http.ServeContent(w, r, "", st.ModTime(), f) // Range: resumable image downloads
	}
}

// baseURL is the URL nodes reach us at, from the configuration only:
// Config.GuestURL (its port defaulting to the listener's), else the
// listener's URL. Never a request's Host header.
func (c *Controller) baseURL() string {
	c.mu.Lock()
	l := c.listen
	c.mu.Unlock()
	g := c.cfg.GuestURL
	if g == "" {
		return l
	}
	u, _ := url.Parse(g)
	if u.Port() == "" {
		if lu, err := url.Parse(l); err == nil && l != "" {
			u.Host = net.JoinHostPort(u.Hostname(), lu.Port())
			return u.String()
		}
	}
	return g
}

// ipxe answers GET /ipxe?mac=${net0/mac}: the local boot once the node is
// provisioned (until an operator asks for a reprovision), else the
// bootstrap with the node's fresh credentials. Every bootstrap script
// starts the node's credentials anew: the last ones stop working.
func (c *Controller) ipxe(w http.ResponseWriter, r *http.Request) {
	raw := r.URL.Query().Get("mac")
	mac, err := normMAC(raw)
	if err != nil {
		c.log.Warn("ipxe: bad mac", "mac", raw, "remote", r.RemoteAddr)
		http.Error(w, "imprint controller: "+err.Error()+" (chain /ipxe?mac=${net0/mac})", http.StatusBadRequest)
		return
	}
	node, ok := c.nodes[mac]
	if !ok {
		c.log.Warn("ipxe: unknown node", "mac", mac, "remote", r.RemoteAddr)
		http.Error(w, "imprint controller: unknown node "+mac+" (not among the configured nodes)", http.StatusNotFound)
		return
	}
	base := c.baseURL()
	var script string
	err = c.update(r.Context(), mac, func(rec *NodeRecord, record recorder) error {
		if rec.Local {
			s, err := pxe.IPXELocal(c.cfg.LocalBoot)
			if err != nil {
				return err
			}
			script = s
			record(PhaseLocal, "local boot ("+string(c.cfg.LocalBoot)+")")
			return nil
		}
		if rec.has(PhaseBootstrap) {
			// A second bootstrap boot without Reprovision (the node was
			// reset, or the last round failed): a new round.
			rec.Round++
			rec.Phases = nil
		}
		rec.Token, rec.PhoneSecret = newSecret(), newSecret()
		rec.Status, rec.LastStep = nil, ""
		// The token travels in the node's initramfs (its per-node
		// archive), not on the kernel command line: it stays out of
		// console logs and /proc/cmdline.
		p := pxe.PXE{
			KernelURL:  base + "/boot/vmlinuz",
			InitrdURL:  base + "/boot/initramfs/" + strings.ReplaceAll(mac, ":", "-"),
			Controller: base + "/agent/" + mac,
		}
		for _, a := range node.Cmdline {
			if v, ok := strings.CutPrefix(a, "console="); ok {
				p.Consoles = append(p.Consoles, v)
			} else {
				p.Extra = append(p.Extra, a)
			}
		}
		s, err := p.IPXEBoot()
		if err != nil {
			return err
		}
		script = s
		record(PhaseBootstrap, "bootstrap "+p.KernelURL+", controller "+p.Controller+" (new node token, in "+p.InitrdURL+")")
		return nil
	})
	if err != nil {
		var le errLeased
		if errors.As(err, &le) {
			http.Error(w, "imprint controller: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		c.log.Error("ipxe", "mac", mac, "err", err)
		http.Error(w, "imprint controller: ipxe script for "+mac+": "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	io.WriteString(w, script)
}

// efiContentType makes a file answer application/efi.
type efiContentType struct{ http.ResponseWriter }

func (e efiContentType) WriteHeader(code int) {
	if code == http.StatusOK || code == http.StatusPartialContent {
		e.Header().Set("Content-Type", "application/efi")
	}
	e.ResponseWriter.WriteHeader(code)
}

// nodeArchive is what the node's per-node initramfs carries: its token of
// the round. It is served only between the bootstrap script and the
// agent's discovery (the window in which the node's ramdisk loads it): a
// node in any other state gets errNotBootstrapping.
func (c *Controller) nodeArchive(hw net.HardwareAddr) (nodearchive.Contents, bool, error) {
	rec, ok := c.node(hw.String())
	if !ok {
		return nodearchive.Contents{}, false, nil
	}
	if rec.Local || rec.Token == "" || !rec.has(PhaseBootstrap) || rec.has(PhaseDiscovered) {
		return nodearchive.Contents{}, true, fmt.Errorf("%w: node %s has no bootstrap boot under way (fetch /ipxe?mac= first)", errNotBootstrapping, hw)
	}
	return nodearchive.Contents{Token: rec.Token}, true, nil
}

func decodeBody(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxCallbackBytes))
	if err := dec.Decode(v); err != nil {
		httpError(w, http.StatusBadRequest, "decode "+r.URL.Path+" body: "+err.Error())
		return false
	}
	return true
}

// discovery takes the agent's report (authenticated as the node by its
// token; its inventory must hold one of the node's enrolled MACs),
// answers, then composes and posts the provision.json in the background.
func (c *Controller) discovery(w http.ResponseWriter, r *http.Request) {
	mac := nodeOf(r)
	var d api.Discovery
	if !decodeBody(w, r, &d) {
		return
	}
	if d.Inventory == nil {
		httpError(w, http.StatusBadRequest, "discovery without inventory")
		return
	}
	var macs []string
	enrolled := false
	for _, nic := range d.Inventory.NICs {
		m, err := normMAC(nic.MAC)
		if err != nil {
			continue
		}
		macs = append(macs, m)
		enrolled = enrolled || m == mac
	}
	if !enrolled {
		c.log.Warn("discovery: the inventory lacks the node's MAC", "mac", mac, "macs", macs, "remote", r.RemoteAddr)
		httpError(w, http.StatusForbidden, fmt.Sprintf("node %s's discovery lists none of its enrolled MACs (it lists %v)", mac, macs))
		return
	}
	node := c.nodes[mac]
	agentURL, urlErr := agentURLOf(node, d, c.cfg.Network.Prefix)
	c.mu.Lock()
	busy := c.posting[mac]
	if !busy && urlErr == nil {
		c.posting[mac] = true
	}
	c.mu.Unlock()
	if busy {
		// A discovery while the last one is being composed and posted is a
		// duplicate.
		c.log.Info("discovery: the node's provision.json is being posted; duplicate ignored", "mac", mac, "node_id", d.NodeID)
		w.WriteHeader(http.StatusNoContent)
		return
	}
	var round int
	var force, again bool
	var token string
	err := c.update(r.Context(), mac, func(rec *NodeRecord, record recorder) error {
		// Any repeated discovery in a round means the agent restarted (its
		// job, if any, died with it): provision again, forced.
		again = rec.has(PhaseDiscovered)
		force = rec.Round > 1 || again
		round, token = rec.Round, rec.Token
		rec.NodeID, rec.AgentURL, rec.Pin, rec.Status, rec.LastStep = d.NodeID, agentURL, d.TLSFingerprint, nil, ""
		rec.Discovery, _ = json.Marshal(d)
		rec.Remote, _, _ = net.SplitHostPort(r.RemoteAddr)
		record(PhaseDiscovered, fmt.Sprintf("agent %q at %s (reports node id %q, %d disks, %d NICs)", d.Version, agentURL, d.NodeID, len(d.Inventory.Disks), len(d.Inventory.NICs)))
		if urlErr != nil {
			record(PhaseFailed, fmt.Sprintf("discovery of %s: %v", mac, urlErr))
		}
		return nil
	})
	if err != nil {
		c.mu.Lock()
		delete(c.posting, mac)
		c.mu.Unlock()
		c.updateError(w, mac, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
	if urlErr != nil {
		return
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		defer func() {
			c.mu.Lock()
			delete(c.posting, mac)
			c.mu.Unlock()
		}()
		c.provision(c.bg, mac, round, force, again, d, agentURL, token)
	}()
}

// agentURLOf is Node.AgentURL, else built from the discovery: its scheme,
// its first IPv4 address in the admin network (else its first address) and
// the port of its listen address.
func agentURLOf(n Node, d api.Discovery, prefix netip.Prefix) (string, error) {
	if n.AgentURL != "" {
		return n.AgentURL, nil
	}
	host, port, err := net.SplitHostPort(d.Listen)
	if err != nil {
		return "", fmt.Errorf("agent listen address %q: %w", d.Listen, err)
	}
	if a, err := netip.ParseAddr(host); host == "" || (err == nil && a.IsUnspecified()) {
		host = ""
		for _, s := range d.Addresses {
			a, err := netip.ParseAddr(s)
			if err != nil {
				continue
			}
			if host == "" || (a.Is4() && prefix.Contains(a)) {
				host = a.String()
			}
			if a.Is4() && prefix.Contains(a) {
				break
			}
		}
		if host == "" {
			return "", fmt.Errorf("the agent listens on %q and reported no address", d.Listen)
		}
	}
	scheme := d.Scheme
	if scheme == "" {
		scheme = "http"
	}
	if scheme != "http" && scheme != "https" {
		return "", fmt.Errorf("agent scheme %q: want http or https", scheme)
	}
	return scheme + "://" + net.JoinHostPort(host, port), nil
}

// provision composes the node's document and posts it to its agent.
// force is set from the second round on, and when the agent was discovered
// again in the same round (again: then a job the agent already has in this
// boot is adopted rather than started a second time).
func (c *Controller) provision(ctx context.Context, mac string, round int, force, again bool, d api.Discovery, agentURL, token string) {
	node, uid := c.nodes[mac], c.uids[mac]
	base := c.baseURL()
	images := c.nodeImages(node, base)
	masterIP := c.cfg.Network.Gateway.String()
	if u, err := url.Parse(base); err == nil {
		if a, err := netip.ParseAddr(u.Hostname()); err == nil {
			masterIP = a.String()
		}
	}
	var doc []byte
	var pin string
	cdFormat := c.configdriveFormat(mac) // takes c.mu: not from inside update
	err := c.update(ctx, mac, func(rec *NodeRecord, record recorder) error {
		if rec.Round != round {
			return fmt.Errorf("round %d is over (the node is in round %d)", round, rec.Round)
		}
		var err error
		doc, err = Compose(ComposeRequest{
			Node: node, UID: uid, Inventory: d.Inventory, Addresses: d.Addresses, Images: images,
			Network: c.cfg.Network, MasterIP: masterIP, PhoneHomeURL: base + "/phone-home/" + mac + "/" + rec.PhoneSecret, Profile: c.cfg.Profile,
			ConfigdriveFormat: cdFormat,
		})
		if err != nil {
			record(PhaseFailed, "compose provision.json: "+err.Error())
			return nil
		}
		rec.Doc, rec.ProvStart, pin = doc, c.now(), rec.Pin
		return nil
	})
	if err != nil {
		c.log.Error("provision", "mac", mac, "round", round, "err", err)
		return
	}
	if doc == nil {
		return
	}
	cl := c.agentClient(agentURL, pin, token)
	if again && c.adoptExistingJob(ctx, cl, mac, round) {
		return
	}
	start, err := cl.Provision(ctx, doc, force)
	if err != nil && c.adoptRunningJob(ctx, cl, mac, round, err) {
		return
	}
	if err != nil {
		c.recordRound(mac, round, PhaseFailed, fmt.Sprintf("POST %s/v1/provision (force=%v): %v", agentURL, force, err))
		return
	}
	c.recordRound(mac, round, PhaseProvisioning, fmt.Sprintf("job %q accepted by %s (force=%v, %d bytes of provision.json)", start.ID, agentURL, force, len(doc)))
}

func (c *Controller) progress(w http.ResponseWriter, r *http.Request) {
	mac := nodeOf(r)
	var cb api.Callback
	if !decodeBody(w, r, &cb) {
		return
	}
	st := cb.Status
	err := c.update(r.Context(), mac, func(rec *NodeRecord, record recorder) error {
		rec.Status = &st
		if st.Step != "" && st.Step != rec.LastStep {
			detail := fmt.Sprintf("step %q", st.Step)
			if st.BytesTotal > 0 {
				detail += fmt.Sprintf(" (%d/%d MiB)", st.BytesDone>>20, st.BytesTotal>>20)
			}
			record(PhaseProgress, detail)
		}
		rec.LastStep = st.Step
		return nil
	})
	if err != nil {
		c.updateError(w, mac, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// result flips a successful node to local boot and reboots it through its
// agent; a failure leaves it on the bootstrap.
func (c *Controller) result(w http.ResponseWriter, r *http.Request) {
	mac := nodeOf(r)
	var cb api.Callback
	if !decodeBody(w, r, &cb) {
		return
	}
	st := cb.Status
	var dup bool
	var round int
	var agentURL, pin, token string
	err := c.update(r.Context(), mac, func(rec *NodeRecord, record recorder) error {
		rec.Status = &st
		round, agentURL, pin, token = rec.Round, rec.AgentURL, rec.Pin, rec.Token
		dup = rec.has(PhaseProvisioned) || rec.has(PhaseFailed)
		if dup {
			return nil
		}
		took := c.now().Sub(rec.ProvStart).Round(time.Second)
		c.observeResult(st, rec.ProvStart)
		if st.State == api.StateSucceeded {
			rec.Local = true
			record(PhaseProvisioned, fmt.Sprintf("job %q succeeded in %s; iPXE flipped to local boot", st.ID, took))
			return nil
		}
		detail := fmt.Sprintf("job %q %s", st.ID, st.State)
		if e := st.Error; e != nil {
			detail += fmt.Sprintf(": step %s", e.Step)
			if e.Device != "" {
				detail += " device " + e.Device
			}
			if e.Reason != "" {
				detail += " (" + e.Reason + ")"
			}
			detail += ": " + e.Message
		}
		record(PhaseFailed, detail)
		return nil
	})
	if err != nil {
		c.updateError(w, mac, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
	if dup {
		c.log.Info("result already handled in this round", "mac", mac, "state", st.State)
		return
	}
	if st.State != api.StateSucceeded {
		return
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		c.reboot(c.bg, mac, round, agentURL, pin, token)
	}()
}

// reboot asks the agent to reboot, retrying while it answers 409 (its job
// is still finishing) for up to a minute.
func (c *Controller) reboot(ctx context.Context, mac string, round int, agentURL, pin, token string) {
	cl := c.agentClient(agentURL, pin, token)
	deadline := c.now().Add(time.Minute)
	for attempt := 1; ; attempt++ {
		err := cl.Reboot(ctx)
		if err == nil {
			c.recordRound(mac, round, PhaseRebooting, "POST "+agentURL+"/v1/reboot accepted")
			return
		}
		var re *api.ResponseError
		if errors.As(err, &re) && re.StatusCode == http.StatusConflict && c.now().Before(deadline) {
			c.log.Info("agent busy; retrying reboot", "mac", mac, "attempt", attempt, "err", err)
			select {
			case <-time.After(time.Second):
				continue
			case <-ctx.Done():
				err = ctx.Err()
			}
		}
		c.recordRound(mac, round, PhaseFailed, fmt.Sprintf("reboot through POST %s/v1/reboot: %v", agentURL, err))
		return
	}
}

// phoneHome records cloud-init's phone_home POST (form fields instance_id,
// hostname, fqdn, pub_key_rsa, pub_key_ecdsa, pub_key_ed25519; "N/A" for a
// missing one) to /phone-home/<mac>/<the node's phone-home secret>.
func (c *Controller) phoneHome(w http.ResponseWriter, r *http.Request) {
	mac, err := normMAC(chi.URLParam(r, "mac"))
	if err != nil {
		httpError(w, http.StatusBadRequest, err.Error())
		return
	}
	if _, ok := c.nodes[mac]; !ok {
		c.log.Warn("phone-home: unknown node", "mac", mac, "remote", r.RemoteAddr)
		httpError(w, http.StatusNotFound, "unknown node "+mac)
		return
	}
	rec, err := c.store.Node(r.Context(), mac)
	if err != nil {
		httpError(w, http.StatusInternalServerError, err.Error())
		return
	}
	if rec.PhoneSecret == "" || subtle.ConstantTimeCompare([]byte(chi.URLParam(r, "secret")), []byte(rec.PhoneSecret)) != 1 {
		c.log.Warn("phone-home refused: wrong secret", "mac", mac, "remote", r.RemoteAddr)
		httpError(w, http.StatusForbidden, "not node "+mac+"'s phone-home secret of its current round")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
	if err := r.ParseForm(); err != nil {
		httpError(w, http.StatusBadRequest, "phone-home "+mac+": parse form: "+err.Error())
		return
	}
	val := func(k string) string {
		v := strings.TrimSpace(r.PostForm.Get(k))
		if v == "N/A" {
			return ""
		}
		return v
	}
	ph := &PhoneHome{InstanceID: val("instance_id"), Hostname: val("hostname"), FQDN: val("fqdn"), PubKeys: map[string]string{}, Time: c.now()}
	for _, k := range []string{"rsa", "ecdsa", "ed25519", "dsa"} {
		if v := val("pub_key_" + k); v != "" {
			ph.PubKeys[k] = v
		}
	}
	err = c.update(r.Context(), mac, func(rec *NodeRecord, record recorder) error {
		rec.Phone = ph
		if rec.has(PhaseOSUp) {
			// cloud-init retries a phone-home whose answer it did not get
			// (a controller killed after saving it): the same boot, not a
			// second one.
			c.log.Info("phone-home repeated in the round; kept, no new event", "mac", mac, "round", rec.Round)
			return nil
		}
		record(PhaseOSUp, fmt.Sprintf("hostname %q, fqdn %q, instance %q, %d host keys", ph.Hostname, ph.FQDN, ph.InstanceID, len(ph.PubKeys)))
		return nil
	})
	if err != nil {
		c.updateError(w, mac, err)
		return
	}
	w.WriteHeader(http.StatusOK)
}

// rawSize reads raw_size of the image named container from Fuel's metadata
// YAML.
func rawSize(meta, container string) (int64, error) {
	b, err := os.ReadFile(meta)
	if err != nil {
		return 0, err
	}
	var m struct {
		Images []struct {
			ContainerName string `yaml:"container_name"`
			RawSize       int64  `yaml:"raw_size"`
		} `yaml:"images"`
	}
	if err := yaml.Unmarshal(b, &m); err != nil {
		return 0, fmt.Errorf("parse: %w", err)
	}
	for _, im := range m.Images {
		if im.ContainerName == container {
			return im.RawSize, nil
		}
	}
	return 0, nil
}
