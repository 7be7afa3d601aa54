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
	r.Get("/ipxe", c.ipxe)
	r.Get("/boot/vmlinuz", c.file(c.cfg.Kernel))
	r.Get("/boot/initramfs.cpio.gz", c.file(c.cfg.Initrd))
	r.Get("/images/{name}", func(w http.ResponseWriter, r *http.Request) {
		p, ok := c.images[chi.URLParam(r, "name")]
		if !ok {
			httpError(w, http.StatusNotFound, "no such image: "+r.URL.Path)
			return
		}
		c.file(p)(w, r)
	})
	r.Group(func(r chi.Router) {
		r.Use(c.authenticate)
		r.Post("/discovery", c.discovery)
		r.Post("/progress", c.progress)
		r.Post("/result", c.result)
	})
	// cloud-init's phone_home sends no credentials.
	r.Post("/phone-home/{mac}", c.phoneHome)
	return r
}

// authenticate requires "Authorization: Bearer <Config.Token>".
func (c *Controller) authenticate(next http.Handler) http.Handler {
	want := []byte(c.cfg.Token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		scheme, got, ok := strings.Cut(r.Header.Get("Authorization"), " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") || subtle.ConstantTimeCompare([]byte(strings.TrimSpace(got)), want) != 1 {
			c.log.Warn("callback refused: missing or wrong bearer token", "path", r.URL.Path, "remote", r.RemoteAddr)
			w.Header().Set("WWW-Authenticate", `Bearer realm="imprint-controller"`)
			httpError(w, http.StatusUnauthorized, "missing or wrong bearer token")
			return
		}
		next.ServeHTTP(w, r)
	})
}

func httpError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(api.Error{Error: msg})
}

func (c *Controller) file(path string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
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

// baseURL is the URL a node reaches us at: Config.GuestURL (its port
// defaulting to the listener's), else the scheme and Host of its request.
func (c *Controller) baseURL(r *http.Request) string {
	if g := c.cfg.GuestURL; g != "" {
		u, _ := url.Parse(g)
		if u.Port() == "" {
			c.mu.Lock()
			l := c.listen
			c.mu.Unlock()
			if lu, err := url.Parse(l); err == nil && l != "" {
				u.Host = net.JoinHostPort(u.Hostname(), lu.Port())
				return u.String()
			}
		}
		return g
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// ipxe answers GET /ipxe?mac=${net0/mac}: the bootstrap while the node is
// to be provisioned, the local boot once it is.
func (c *Controller) ipxe(w http.ResponseWriter, r *http.Request) {
	raw := r.URL.Query().Get("mac")
	mac, err := normMAC(raw)
	if err != nil {
		c.log.Warn("ipxe: bad mac", "mac", raw, "remote", r.RemoteAddr)
		http.Error(w, "imprint controller: "+err.Error()+" (chain /ipxe?mac=${net0/mac})", http.StatusBadRequest)
		return
	}
	c.mu.Lock()
	n, ok := c.nodes[mac]
	var local bool
	var node Node
	if ok {
		local, node = n.local, n.Node
		if !local && n.phases[PhaseBootstrap] {
			// A second bootstrap boot without Reprovision (the node was
			// reset, or the last round failed): a new round.
			n.round++
			n.phases = map[Phase]bool{}
		}
	}
	c.mu.Unlock()
	if !ok {
		c.log.Warn("ipxe: unknown node", "mac", mac, "remote", r.RemoteAddr)
		http.Error(w, "imprint controller: unknown node "+mac+" (not among the configured nodes)", http.StatusNotFound)
		return
	}
	var script string
	if local {
		if script, err = pxe.IPXELocal(c.cfg.LocalBoot); err == nil {
			defer c.record(mac, PhaseLocal, "local boot ("+string(c.cfg.LocalBoot)+")")
		}
	} else {
		base := c.baseURL(r)
		p := pxe.PXE{
			KernelURL:  base + "/boot/vmlinuz",
			InitrdURL:  base + "/boot/initramfs.cpio.gz",
			Controller: base,
			Token:      c.cfg.Token,
		}
		for _, a := range node.Cmdline {
			if v, ok := strings.CutPrefix(a, "console="); ok {
				p.Consoles = append(p.Consoles, v)
			} else {
				p.Extra = append(p.Extra, a)
			}
		}
		if script, err = p.IPXEBoot(); err == nil {
			defer c.record(mac, PhaseBootstrap, "bootstrap "+p.KernelURL+", controller "+base)
		}
	}
	if err != nil {
		c.log.Error("ipxe: render", "mac", mac, "err", err)
		http.Error(w, "imprint controller: ipxe script for "+mac+": "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	io.WriteString(w, script)
}

func decodeBody(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxCallbackBytes))
	if err := dec.Decode(v); err != nil {
		httpError(w, http.StatusBadRequest, "decode "+r.URL.Path+" body: "+err.Error())
		return false
	}
	return true
}

// discovery matches the agent's node by the MACs of its inventory, answers,
// then composes and posts the provision.json in the background.
func (c *Controller) discovery(w http.ResponseWriter, r *http.Request) {
	var d api.Discovery
	if !decodeBody(w, r, &d) {
		return
	}
	if d.Inventory == nil {
		httpError(w, http.StatusBadRequest, "discovery without inventory")
		return
	}
	var macs []string
	mac := ""
	c.mu.Lock()
	for _, nic := range d.Inventory.NICs {
		m, err := normMAC(nic.MAC)
		if err != nil {
			continue
		}
		macs = append(macs, m)
		if _, ok := c.nodes[m]; ok && mac == "" {
			mac = m
		}
	}
	if mac == "" {
		c.mu.Unlock()
		c.log.Warn("discovery: unknown node", "node_id", d.NodeID, "macs", macs, "remote", r.RemoteAddr)
		httpError(w, http.StatusNotFound, fmt.Sprintf("no configured node has any of the MACs %v of node %q", macs, d.NodeID))
		return
	}
	n := c.nodes[mac]
	// A discovery while the last one is being composed and posted is a
	// duplicate; any other repeated discovery in a round means the agent
	// restarted (its job, if any, died with it): provision again, forced.
	busy := n.posting
	again := n.phases[PhaseDiscovered]
	agentURL, err := agentURLOf(n.Node, d, c.cfg.Network.Prefix)
	if !busy && err == nil {
		n.posting = true
	}
	if !busy {
		if d.NodeID != "" {
			if n.nodeID != "" && n.nodeID != d.NodeID {
				delete(c.byID, n.nodeID)
			}
			n.nodeID = d.NodeID
			c.byID[d.NodeID] = mac
		}
		n.agentURL, n.pin, n.discovered, n.status, n.lastStep = agentURL, d.TLSFingerprint, c.now(), nil, ""
		n.remote, _, _ = net.SplitHostPort(r.RemoteAddr)
	}
	round := n.round
	c.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
	if busy {
		c.log.Info("discovery: the node's provision.json is being posted; duplicate ignored", "mac", mac, "node_id", d.NodeID)
		return
	}
	c.record(mac, PhaseDiscovered, fmt.Sprintf("agent %s at %s (node %s, %d disks, %d NICs)", d.Version, agentURL, d.NodeID, len(d.Inventory.Disks), len(d.Inventory.NICs)))
	if err != nil {
		c.record(mac, PhaseFailed, fmt.Sprintf("discovery of %s: %v", mac, err))
		return
	}
	base := c.baseURL(r)
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		defer func() {
			c.mu.Lock()
			c.nodes[mac].posting = false
			c.mu.Unlock()
		}()
		c.provision(c.bg, mac, round, round > 1 || again, base, d, agentURL)
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
	return scheme + "://" + net.JoinHostPort(host, port), nil
}

// provision composes the node's document and posts it to its agent.
// force is set from the second round on, and when the agent was discovered
// again in the same round.
func (c *Controller) provision(ctx context.Context, mac string, round int, force bool, base string, d api.Discovery, agentURL string) {
	c.mu.Lock()
	n := c.nodes[mac]
	node, uid, pin := n.Node, n.uid, n.pin
	c.mu.Unlock()
	images := make([]ComposeImage, len(c.rootImg))
	for i, im := range c.rootImg {
		im.URI = base + im.URI
		images[i] = im
	}
	masterIP := c.cfg.Network.Gateway.String()
	if u, err := url.Parse(base); err == nil {
		if a, err := netip.ParseAddr(u.Hostname()); err == nil {
			masterIP = a.String()
		}
	}
	doc, err := Compose(ComposeRequest{
		Node: node, UID: uid, Inventory: d.Inventory, Addresses: d.Addresses, Images: images,
		Network: c.cfg.Network, MasterIP: masterIP, PhoneHomeURL: base + "/phone-home/" + mac, Profile: c.cfg.Profile,
	})
	if err != nil {
		c.recordRound(mac, round, PhaseFailed, "compose provision.json: "+err.Error())
		return
	}
	c.mu.Lock()
	n.doc = doc
	n.provStart = c.now()
	c.mu.Unlock()
	cl := c.agentClient(agentURL, pin)
	start, err := cl.Provision(ctx, doc, force)
	if err != nil {
		c.recordRound(mac, round, PhaseFailed, fmt.Sprintf("POST %s/v1/provision (force=%v): %v", agentURL, force, err))
		return
	}
	c.recordRound(mac, round, PhaseProvisioning, fmt.Sprintf("job %s accepted by %s (force=%v, %d bytes of provision.json)", start.ID, agentURL, force, len(doc)))
}

// recordRound records an event only while the node is still in round (a
// Reprovision meanwhile makes a late answer of the old round moot).
func (c *Controller) recordRound(mac string, round int, p Phase, detail string) {
	c.mu.Lock()
	if c.nodes[mac].round != round {
		c.mu.Unlock()
		c.log.Warn("late event of a past round dropped", "mac", mac, "round", round, "phase", string(p), "detail", detail)
		return
	}
	ev := c.recordLocked(mac, p, detail)
	c.mu.Unlock()
	c.emit(ev)
}

// callbackNode finds the node of a progress or result callback.
func (c *Controller) callbackNode(w http.ResponseWriter, r *http.Request, cb *api.Callback) (string, bool) {
	if !decodeBody(w, r, cb) {
		return "", false
	}
	host, _, _ := net.SplitHostPort(r.RemoteAddr)
	c.mu.Lock()
	mac, ok := c.byID[cb.NodeID]
	if !ok && cb.NodeID == "" {
		mac, ok = c.byRemoteLocked(host)
	}
	c.mu.Unlock()
	if !ok {
		c.log.Warn("callback from an undiscovered node", "path", r.URL.Path, "node_id", cb.NodeID, "remote", r.RemoteAddr)
		httpError(w, http.StatusNotFound, fmt.Sprintf("node %q has not sent a discovery", cb.NodeID))
		return "", false
	}
	return mac, true
}

// byRemoteLocked finds the node of a callback without node_id (the agent's
// reporter sends its configured node id, empty by default, while its
// discovery carries the DMI UUID): the one node discovered from the same
// host in its current round, if exactly one was.
func (c *Controller) byRemoteLocked(host string) (string, bool) {
	found := ""
	for mac, n := range c.nodes {
		if n.phases[PhaseDiscovered] && n.remote == host {
			if found != "" {
				return "", false
			}
			found = mac
		}
	}
	return found, found != ""
}

func (c *Controller) progress(w http.ResponseWriter, r *http.Request) {
	var cb api.Callback
	mac, ok := c.callbackNode(w, r, &cb)
	if !ok {
		return
	}
	st := cb.Status
	c.mu.Lock()
	n := c.nodes[mac]
	n.status = &st
	changed := st.Step != "" && st.Step != n.lastStep
	n.lastStep = st.Step
	var ev Event
	if changed {
		detail := "step " + st.Step
		if st.BytesTotal > 0 {
			detail += fmt.Sprintf(" (%d/%d MiB)", st.BytesDone>>20, st.BytesTotal>>20)
		}
		ev = c.recordLocked(mac, PhaseProgress, detail)
	}
	c.mu.Unlock()
	if changed {
		c.emit(ev)
	}
	w.WriteHeader(http.StatusNoContent)
}

// result flips a successful node to local boot and reboots it through its
// agent; a failure leaves it on the bootstrap.
func (c *Controller) result(w http.ResponseWriter, r *http.Request) {
	var cb api.Callback
	mac, ok := c.callbackNode(w, r, &cb)
	if !ok {
		return
	}
	st := cb.Status
	c.mu.Lock()
	n := c.nodes[mac]
	n.status = &st
	round, agentURL, pin := n.round, n.agentURL, n.pin
	dup := n.phases[PhaseProvisioned] || n.phases[PhaseFailed]
	took := c.now().Sub(n.provStart).Round(time.Second)
	var ev Event
	if !dup {
		if st.State == api.StateSucceeded {
			n.local = true
			ev = c.recordLocked(mac, PhaseProvisioned, fmt.Sprintf("job %s succeeded in %s; iPXE flipped to local boot", st.ID, took))
		} else {
			detail := fmt.Sprintf("job %s %s", st.ID, st.State)
			if e := st.Error; e != nil {
				detail += fmt.Sprintf(": step %s", e.Step)
				if e.Device != "" {
					detail += " device " + e.Device
				}
				detail += ": " + e.Message
			}
			ev = c.recordLocked(mac, PhaseFailed, detail)
		}
	}
	c.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
	if dup {
		c.log.Info("result already handled in this round", "mac", mac, "state", st.State)
		return
	}
	c.emit(ev)
	if st.State != api.StateSucceeded {
		return
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		c.reboot(c.bg, mac, round, agentURL, pin)
	}()
}

// reboot asks the agent to reboot, retrying while it answers 409 (its job
// is still finishing) for up to a minute.
func (c *Controller) reboot(ctx context.Context, mac string, round int, agentURL, pin string) {
	cl := c.agentClient(agentURL, pin)
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
// missing one).
func (c *Controller) phoneHome(w http.ResponseWriter, r *http.Request) {
	mac, err := normMAC(chi.URLParam(r, "mac"))
	if err != nil {
		httpError(w, http.StatusBadRequest, err.Error())
		return
	}
	c.mu.Lock()
	_, ok := c.nodes[mac]
	c.mu.Unlock()
	if !ok {
		c.log.Warn("phone-home: unknown node", "mac", mac, "remote", r.RemoteAddr)
		httpError(w, http.StatusNotFound, "unknown node "+mac)
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
	c.mu.Lock()
	c.nodes[mac].phone = ph
	ev := c.recordLocked(mac, PhaseOSUp, fmt.Sprintf("hostname %s, fqdn %s, instance %s, %d host keys", ph.Hostname, ph.FQDN, ph.InstanceID, len(ph.PubKeys)))
	c.mu.Unlock()
	c.emit(ev)
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
