package controller

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/imprint-dev/imprint/configdrive"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/imprint-dev/imprint/api"
	"github.com/imprint-dev/imprint/internal/eventlog"
	"github.com/imprint-dev/imprint/power"
	"github.com/imprint-dev/imprint/provision"
	"github.com/imprint-dev/imprint/pxe"
)

// Config configures a Controller.
type Config struct {
	Listen string // default "127.0.0.1:0"
	// GuestURL is the base URL nodes reach the controller at (QEMU user
	// networking: http://10.0.2.2:PORT); every URL handed to a node (boot
	// files, callbacks, images, phone-home) is built from it, never from a
	// request's Host header. A GuestURL without a port takes the
	// listener's port. Empty: the listener's URL (then Listen must name a
	// host, not all addresses).
	GuestURL string
	// Token is the operator's bearer token: the controller's own API
	// (/v1/nodes). It never reaches a node: each node gets its own secret,
	// new every round (see NodeRecord.Token).
	Token string
	// Store keeps the nodes' state and timeline (OpenStore). Required.
	Store Store
	// ID names this controller in the nodes' leases (default: the host
	// name, so a controller restarted on its host takes its own leases
	// back at once). Controllers sharing a PostgreSQL database must have
	// distinct IDs.
	ID string
	// LeaseTTL is how long a node's lease lasts without renewal (default
	// 30s; renewed every third of it while the controller runs). Another
	// controller takes the node over once it expired.
	LeaseTTL time.Duration
	// Kernel and Initrd are the bootstrap files, served at
	// GET /boot/vmlinuz and GET /boot/initramfs.cpio.gz.
	Kernel, Initrd string
	// IPXEEFI, when set, is an iPXE EFI binary (Debian's ipxe package:
	// /usr/lib/ipxe/snponly.efi) served at GET /boot/ipxe.efi: the boot
	// file URL a DHCP server hands UEFI HTTP boot clients (vendor class
	// HTTPClient), so UEFI nodes network-boot with no TFTP at all
	// (pxe.DHCPHTTPBoot).
	IPXEEFI string
	// Images are the target images, served at GET /images/<base name>, with
	// their Fuel metadata (<stem before the first dot>.yaml beside them)
	// at GET /images/<stem>.yaml and a multi-frame zstd image's manifest at
	// GET /images/<base name>.manifest.json when they exist.
	Images []Image
	// Nodes are the known nodes, keyed by MAC.
	Nodes []Node
	// LocalBoot is the iPXE answer of a provisioned node (default exit).
	LocalBoot pxe.LocalBoot
	// Power resets a node that has no agent to ask (its OS is running), for
	// Reprovision. May be nil: the node must then be rebooted by hand.
	Power  Power
	Logger *slog.Logger
	Now    func() time.Time // default time.Now
	// OnEvent, when set, is called with every event as it is recorded
	// (outside the controller's lock, in order).
	OnEvent func(Event)
	// Network is the admin network the provisioned OS is configured for
	// (static address, gateway, DNS). Default: QEMU user-mode networking's
	// 10.0.2.0/24, gateway 10.0.2.2, DNS 10.0.2.3.
	Network Network
	// Profile is the Nailgun profile of the documents (default
	// DefaultProfile).
	Profile string
	// AgentTimeout bounds each call to an agent (default 30s).
	AgentTimeout time.Duration

	// ImageURLs are base URLs of stock HTTP servers (nginx) serving the
	// same image files under the same names (base URL + "/" + file name,
	// the manifest and metadata beside them). A node's image_data then
	// points at the first, with the others and finally the controller
	// itself as mirrors. Empty: the controller serves the images.
	ImageURLs []string
	// GroupImageURLs are ImageURLs per rack group (Node.Group): a node of
	// a group listed here gets its group's servers instead of ImageURLs.
	GroupImageURLs map[string][]string
	// MaxTransfers bounds the image downloads the controller serves at
	// once (default DefaultMaxTransfers; negative: no limit). A download
	// finding every slot busy waits up to TransferWait (default
	// DefaultTransferWait), then gets 503 with Retry-After, which the
	// agent's image writer retries.
	MaxTransfers int
	TransferWait time.Duration
	// Metrics are the Prometheus metrics served at GET /metrics (default:
	// NewMetrics on a fresh registry). The controller adds the node-state
	// gauge to its registry.
	Metrics *Metrics
	// MetricsToken, when set, is the bearer a scrape of /metrics must
	// bring (never the operator token). Empty: /metrics is open; it shows
	// counts and durations, no node identity and no secret.
	MetricsToken string

	// BMCPower drives the nodes' BMCs (default power.Drivers): power
	// actions and Reprovision of a node with an enrolled BMC.
	BMCPower BMCPower
	// PowerTimeout bounds one power action (default 2m; a cycle waits
	// for the BMC to report off before powering on).
	PowerTimeout time.Duration
}

// Image is one target image.
type Image struct {
	MountPoint string // "/" (required), "/boot", ...
	Path       string // the image file: .img.gz, .img.zst, .img.xz or raw
	Format     string // file system in the image: ext2|ext3|ext4|xfs (default ext4)
	// The container (gzip, zstd, xz, raw) comes from the file's magic.
}

// Node is one machine the controller provisions.
type Node struct {
	MAC      string   // the MAC it PXE-boots from (any case; stored lower-case aa:bb:..)
	Hostname string   // hostname and fqdn of the provisioned OS
	SSHKeys  []string // authorized keys of root (ks_meta.authorized_keys and user_accounts[root])
	// AgentURL is how the controller reaches the node's agent (QEMU
	// hostfwd: http://127.0.0.1:N). Default: the discovery's scheme, first
	// IPv4 address in the admin network (else the first address) and
	// listen port.
	AgentURL string
	// Group is the node's rack group: its images come from
	// Config.GroupImageURLs[Group] when that is set.
	Group string
	// Cmdline holds extra kernel parameters of the bootstrap; console=
	// entries replace the default consoles.
	Cmdline []string
	// KernelParams is the provisioned OS's kernel command line (default
	// DefaultKernelParams).
	KernelParams string
	// IP is the node's admin address in the provisioned OS (default: its
	// discovery address inside Config.Network).
	IP string
	// ConfigdriveFormat is the configdrive the node's agent writes
	// (ks_meta.configdrive_format: config2-vfat, config2-iso,
	// nocloud-vfat, nocloud-iso); empty: the agent's setting.
	// SetConfigdriveFormat changes it for the node's next round.
	ConfigdriveFormat string
}

// Power resets a machine.
type Power interface {
	Reset(ctx context.Context, mac string) error
}

// Phase is a step of a node's provisioning round.
type Phase string

// Phases, in the order a round goes through them.
const (
	PhaseReprovision  Phase = "reprovision"   // Reprovision flipped the node back to the bootstrap
	PhaseBootstrap    Phase = "pxe-bootstrap" // iPXE got the bootstrap script
	PhaseDiscovered   Phase = "discovered"    // the agent reported in
	PhaseProvisioning Phase = "provisioning"  // the agent accepted the provision.json
	PhaseProgress     Phase = "progress"      // the agent's heartbeat names a new step
	PhaseProvisioned  Phase = "provisioned"   // the agent reported success; iPXE flipped to local boot
	PhaseRebooting    Phase = "rebooting"     // the agent accepted the reboot
	PhaseLocal        Phase = "pxe-local"     // iPXE got the local-boot script
	PhaseOSUp         Phase = "os-up"         // cloud-init phoned home
	PhaseFailed       Phase = "failed"        // the round failed; Detail says where
)

// maxRecentEvents is how many of the events it recorded a controller keeps
// in memory (its Wait wakes on each new one); the store keeps them all.
const maxRecentEvents = 256

// Event is one entry of the timeline.
type Event struct {
	Time   time.Time
	MAC    string
	Round  int // 1 for the first provisioning; Reprovision and a new bootstrap boot start the next
	Phase  Phase
	Detail string
}

// PhoneHome is what cloud-init's phone_home module posted.
type PhoneHome struct {
	InstanceID, Hostname, FQDN string
	PubKeys                    map[string]string // "rsa", "ecdsa", "ed25519" → public key
	Time                       time.Time
}

// Controller is the reference controller: it serves the bootstrap and the
// images, answers iPXE per MAC, receives the agents' callbacks, composes and
// posts provision.json, flips nodes to local boot and reboots them.
type Controller struct {
	cfg     Config
	log     *slog.Logger
	now     func() time.Time
	store   Store
	images  map[string]string // URL name → file
	metrics *Metrics
	limit   *transferLimiter // nil: no limit
	rootImg []ComposeImage   // URIs relative to the base URL ("/images/x")
	handler http.Handler

	nodes map[string]Node // the configured nodes, by MAC
	uids  map[string]int  // Nailgun uid of each node (its position in Config.Nodes)

	mu      sync.Mutex             // guards posting, listen, srv, cdFmt
	nodeMu  map[string]*sync.Mutex // by MAC: serializes this process's read-modify-write of one node's row
	leaseMu sync.Mutex
	leases  leaseCache           // the leases this controller wrote, by MAC (under leaseMu)
	cdFmt   map[string]string    // SetConfigdriveFormat's choices, by MAC (under mu)
	posting map[string]bool      // a provision.json is being composed and posted
	events  *eventlog.Log[Event] // the events this process recorded (the store has every controller's)
	listen  string               // the listener's URL once started
	notify  sync.Mutex           // serializes OnEvent calls

	bg        context.Context
	stopBG    context.CancelFunc
	wg        sync.WaitGroup
	renewOnce sync.Once
	srv       *http.Server
}

// New validates cfg, reporting every problem with its field, and returns the
// controller (not yet listening: see Start, or use Handler).
func New(cfg Config) (*Controller, error) {
	var ce configErrors
	cfg.resolve(ce.bad)
	c := &Controller{images: map[string]string{}, nodes: map[string]Node{}, uids: map[string]int{}, posting: map[string]bool{}, events: eventlog.New[Event](maxRecentEvents),
		leases: leaseCache{}, nodeMu: map[string]*sync.Mutex{}}
	c.loadImages(&cfg, ce.bad)
	c.loadNodes(cfg, ce.bad)
	if err := errors.Join(ce.errs...); err != nil {
		return nil, fmt.Errorf("controller config: %w", err)
	}
	for mac := range c.nodes {
		if err := cfg.Store.Enroll(context.Background(), mac); err != nil {
			return nil, fmt.Errorf("controller: %w", err)
		}
	}
	c.cfg = cfg
	c.log = cfg.Logger
	c.now = cfg.Now
	c.store = cfg.Store
	c.bg, c.stopBG = context.WithCancel(context.Background())
	c.metrics = cfg.Metrics
	if err := c.metrics.reg.Register(newNodeStates(c.store, c.log.Error)); err != nil {
		return nil, fmt.Errorf("controller: metrics: %w", err)
	}
	if cfg.MaxTransfers > 0 {
		c.limit = newTransferLimiter(cfg.MaxTransfers, cfg.TransferWait, c.metrics)
	}
	c.handler = c.routes()
	return c, nil
}

// configErrors collects every problem of a Config, each naming its field.
type configErrors struct{ errs []error }

func (e *configErrors) bad(field, format string, a ...any) {
	e.errs = append(e.errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, a...)))
}

// resolve fills the defaults of cfg's settings and checks them (the images
// and nodes are loadImages' and loadNodes').
func (cfg *Config) resolve(bad func(field, format string, a ...any)) {
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	if _, _, err := net.SplitHostPort(cfg.Listen); err != nil {
		bad("listen", "%q is not host:port: %v", cfg.Listen, err)
	}
	if cfg.GuestURL != "" {
		cfg.GuestURL = strings.TrimRight(cfg.GuestURL, "/")
		u, err := url.Parse(cfg.GuestURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.User != nil {
			bad("guest-url", "%q is not an http(s)://host[:port][/path] URL", cfg.GuestURL)
		} else if strings.ContainsAny(cfg.GuestURL, " \t\"") {
			bad("guest-url", "%q contains a space or quote", cfg.GuestURL)
		}
	}
	switch {
	case cfg.Token == "":
		bad("token", "required (the agents' bearer token)")
	case strings.ContainsAny(cfg.Token, " \t\r\n\""):
		bad("token", "must not contain whitespace or quotes")
	}
	for field, p := range map[string]string{"kernel": cfg.Kernel, "initrd": cfg.Initrd} {
		if p == "" {
			bad(field, "required")
		} else if err := regularFile(p); err != nil {
			bad(field, "%v", err)
		}
	}
	if cfg.IPXEEFI != "" {
		if err := regularFile(cfg.IPXEEFI); err != nil {
			bad("ipxe-efi", "%v", err)
		}
	}
	if cfg.LocalBoot == "" {
		cfg.LocalBoot = pxe.LocalExit
	}
	if _, err := pxe.IPXELocal(cfg.LocalBoot); err != nil {
		bad("local-boot", "%v", err)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.AgentTimeout <= 0 {
		cfg.AgentTimeout = 30 * time.Second
	}
	if !cfg.Network.Prefix.IsValid() {
		cfg.Network.Prefix = netip.MustParsePrefix("10.0.2.0/24")
		if !cfg.Network.Gateway.IsValid() {
			cfg.Network.Gateway = netip.MustParseAddr("10.0.2.2")
		}
		if len(cfg.Network.NameServers) == 0 {
			cfg.Network.NameServers = []netip.Addr{netip.MustParseAddr("10.0.2.3")}
		}
	}
	if !cfg.Network.Prefix.Addr().Is4() {
		bad("network", "%s: the admin network must be IPv4", cfg.Network.Prefix)
	}
	if !cfg.Network.Gateway.IsValid() || !cfg.Network.Gateway.Is4() {
		bad("network.gateway", "required, an IPv4 address")
	}

	if cfg.GuestURL == "" {
		if h, _, err := net.SplitHostPort(cfg.Listen); err == nil {
			if a, err := netip.ParseAddr(h); h == "" || (err == nil && a.IsUnspecified()) {
				bad("guest-url", "required when listening on all addresses (%s): the URL nodes reach this controller at", cfg.Listen)
			}
		}
	}
	if cfg.Store == nil {
		bad("db", "required (a store: OpenStore)")
	}
	if cfg.ID == "" {
		h, err := os.Hostname()
		if err != nil || h == "" {
			bad("id", "required: the host has no name (%v)", err)
		}
		cfg.ID = h
	}
	if cfg.LeaseTTL <= 0 {
		cfg.LeaseTTL = 30 * time.Second
	}
	cfg.resolveImageServing(bad)
}

// loadImages checks cfg's images and registers what is served under
// /images/: each image, its Fuel metadata and its frame manifest.
func (c *Controller) loadImages(cfg *Config, bad func(field, format string, a ...any)) {
	mounts := map[string]int{}
	for i, im := range cfg.Images {
		f := fmt.Sprintf("images[%d]", i)
		if !strings.HasPrefix(im.MountPoint, "/") {
			bad(f+".mount", "%q is not an absolute mount point", im.MountPoint)
		} else if j, dup := mounts[im.MountPoint]; dup {
			bad(f+".mount", "%s already has images[%d]", im.MountPoint, j)
		}
		mounts[im.MountPoint] = i
		if im.Format == "" {
			im.Format = "ext4"
			cfg.Images[i].Format = "ext4"
		}
		if !oneOf(im.Format, provision.ImageFormats) {
			bad(f+".format", "%q: want one of %v", im.Format, provision.ImageFormats)
		}
		if err := regularFile(im.Path); err != nil {
			bad(f+".path", "%v", err)
			continue
		}
		name := filepath.Base(im.Path)
		if _, dup := c.images[name]; dup {
			bad(f+".path", "another image is also named %q", name)
			continue
		}
		container, err := containerOf(im.Path)
		if err != nil {
			bad(f+".path", "%v", err)
			continue
		}
		c.images[name] = im.Path
		ci := ComposeImage{MountPoint: im.MountPoint, URI: "/images/" + url.PathEscape(name), Format: im.Format, Container: container}
		for _, stem := range metadataStems(name) {
			meta := filepath.Join(filepath.Dir(im.Path), stem+".yaml")
			if _, err := os.Stat(meta); err != nil {
				continue
			}
			c.images[stem+".yaml"] = meta
			if ci.RawSize == 0 {
				if ci.RawSize, err = rawSize(meta, name); err != nil {
					bad(f+".path", "metadata %s: %v", meta, err)
				}
			}
		}
		// A multi-frame zstd image's manifest (imagewriter's format), which
		// the agent looks for at <image URL>.manifest.json: frames decoded
		// on every core, each checked before it is written.
		if man := im.Path + frameManifestSuffix; fileExists(man) {
			c.images[name+frameManifestSuffix] = man
		}
		c.rootImg = append(c.rootImg, ci)
	}
	if _, ok := mounts["/"]; !ok {
		bad("images", "an image for / is required")
	}
}

// loadNodes checks and enrolls cfg's nodes by MAC.
func (c *Controller) loadNodes(cfg Config, bad func(field, format string, a ...any)) {
	for i, n := range cfg.Nodes {
		f := fmt.Sprintf("nodes[%d]", i)
		hw, err := net.ParseMAC(n.MAC)
		if err != nil || len(hw) != 6 {
			bad(f+".mac", "%q is not a 6-byte MAC address", n.MAC)
			continue
		}
		n.MAC = hw.String()
		if _, dup := c.nodes[n.MAC]; dup {
			bad(f+".mac", "%s is listed twice", n.MAC)
			continue
		}
		if err := provision.CheckHostname(n.Hostname); err != nil {
			bad(f+".hostname", "%v", err)
		}
		for j, k := range n.SSHKeys {
			if strings.TrimSpace(k) == "" || strings.ContainsAny(k, "\r\n") {
				bad(fmt.Sprintf("%s.ssh_keys[%d]", f, j), "empty or more than one line")
			}
		}
		if n.AgentURL != "" {
			u, err := url.Parse(n.AgentURL)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				bad(f+".agent_url", "%q is not an http(s) URL", n.AgentURL)
			}
			n.AgentURL = strings.TrimRight(n.AgentURL, "/")
		}
		for j, p := range n.Cmdline {
			if p == "" || strings.ContainsAny(p, " \t\r\n\"") {
				bad(fmt.Sprintf("%s.cmdline[%d]", f, j), "%q is empty or contains a space or quote", p)
			}
		}
		if _, err := configdrive.ParseFormat(n.ConfigdriveFormat); err != nil {
			bad(f+".configdrive_format", "%v", err)
		}
		if n.IP != "" {
			if a, err := netip.ParseAddr(n.IP); err != nil || !cfg.Network.Prefix.Contains(a) {
				bad(f+".ip", "%q is not an address in the admin network %s", n.IP, cfg.Network.Prefix)
			}
		}
		c.nodes[n.MAC] = n
		c.uids[n.MAC] = i + 1
		c.nodeMu[n.MAC] = &sync.Mutex{}
	}
	if len(cfg.Nodes) == 0 {
		bad("nodes", "at least one node is required")
	}
}

// metadataStems are the names (without .yaml) the image writer looks for
// an image's Fuel metadata under, beside the image: the base name up to its
// first dot (fuel-agent's rule), then, for dotted names, the name without
// its compression and .img suffixes (imagewriter.FuelMetadataURLs).
func metadataStems(name string) []string {
	stem, _, _ := strings.Cut(name, ".")
	full := name
	for _, ext := range []string{".gz", ".zst", ".xz", ".raw", ".img"} {
		full = strings.TrimSuffix(full, ext)
	}
	if full != stem && full != "" {
		return []string{stem, full}
	}
	return []string{stem}
}

func regularFile(p string) error {
	st, err := os.Stat(p)
	if err != nil {
		return err
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", p)
	}
	return nil
}

func oneOf(s string, set []string) bool {
	for _, x := range set {
		if s == x {
			return true
		}
	}
	return false
}

// containerOf tells the image container from the file's magic.
func containerOf(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	head := make([]byte, 6)
	n, err := io.ReadFull(f, head)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("%s: read magic: %w", path, err)
	}
	head = head[:n]
	switch {
	case bytes.HasPrefix(head, []byte{0x1f, 0x8b}):
		return "gzip", nil
	case bytes.HasPrefix(head, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		return "zstd", nil
	case bytes.HasPrefix(head, []byte{0xfd, '7', 'z', 'X', 'Z', 0}):
		return "xz", nil
	}
	return "raw", nil
}

// Handler is the controller's HTTP handler (chi), for httptest.
func (c *Controller) Handler() http.Handler { return c.handler }

// Start listens on Config.Listen and serves until ctx ends or Close is
// called. It returns the listener's URL (http://127.0.0.1:PORT).
func (c *Controller) Start(ctx context.Context) (string, error) {
	ln, err := net.Listen("tcp", c.cfg.Listen)
	if err != nil {
		return "", fmt.Errorf("controller: listen %s: %w", c.cfg.Listen, err)
	}
	u := "http://" + ln.Addr().String()
	c.mu.Lock()
	c.listen = u
	srv := api.NewServer(c.handler, api.ServerOptions{})
	c.srv = srv.Server
	c.mu.Unlock()
	c.log.Info("controller listening", "url", u, "guest_url", c.cfg.GuestURL, "nodes", len(c.nodes), "id", c.cfg.ID)
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			c.log.Error("controller: serve", "url", u, "err", err)
		}
	}()
	go func() {
		select {
		case <-ctx.Done():
			c.Close()
		case <-c.bg.Done():
		}
	}()
	c.startRenewal()
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		c.resume(c.bg)
	}()
	return u, nil
}

// startRenewal renews this controller's leases every third of LeaseTTL
// until Close.
func (c *Controller) startRenewal() {
	c.renewOnce.Do(func() {
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			t := time.NewTicker(c.cfg.LeaseTTL / 3)
			defer t.Stop()
			for {
				select {
				case <-c.bg.Done():
					return
				case <-t.C:
					if err := c.store.RenewLeases(c.bg, c.cfg.ID, c.now().Add(c.cfg.LeaseTTL)); err != nil && c.bg.Err() == nil {
						c.log.Error("renew leases", "id", c.cfg.ID, "err", err)
					}
				}
			}
		}()
	})
}

// Close stops serving, waits for the calls to agents in flight and gives
// up this controller's leases (the store stays open: its owner closes it).
func (c *Controller) Close() error {
	err := c.stop()
	c.forgetLease("")
	if rerr := c.store.ReleaseLease(context.Background(), "", c.cfg.ID); rerr != nil {
		err = errors.Join(err, rerr)
	}
	return err
}

// stop ends serving and the background work without releasing the
// leases: what a crash leaves behind (tests use it as the kill).
func (c *Controller) stop() error {
	c.stopBG()
	c.mu.Lock()
	srv := c.srv
	c.srv = nil
	c.mu.Unlock()
	var err error
	if srv != nil {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err = srv.Shutdown(sctx)
		cancel()
	}
	c.wg.Wait()
	return err
}

// Events returns the timeline so far (empty when the store fails, which
// is logged).
func (c *Controller) Events() []Event {
	evs, err := c.store.Events(context.Background(), "")
	if err != nil {
		c.log.Error("read events", "err", err)
	}
	return evs
}

// ErrUnknownNode: the MAC is not among Config.Nodes.
var ErrUnknownNode = errors.New("unknown node")

// Wait blocks until the node reaches phase p in its current round and
// returns that event. A failure of the round is returned as an error with
// the failure's detail. Events another controller records on the shared
// database are seen within a second.
func (c *Controller) Wait(ctx context.Context, mac string, p Phase) (Event, error) {
	m, err := normMAC(mac)
	if err != nil {
		return Event{}, err
	}
	if _, ok := c.nodes[m]; !ok {
		return Event{}, fmt.Errorf("wait %s %s: %w", m, p, ErrUnknownNode)
	}
	for {
		ch := c.events.Changed()
		rec, err := c.store.Node(ctx, m)
		if err != nil {
			return Event{}, fmt.Errorf("wait for node %s to reach %s: %w", m, p, err)
		}
		evs, err := c.store.Events(ctx, m)
		if err != nil {
			return Event{}, fmt.Errorf("wait for node %s to reach %s: %w", m, p, err)
		}
		var found, failed *Event
		for i := range evs {
			ev := &evs[i]
			if ev.Round != rec.Round {
				continue
			}
			if ev.Phase == p && found == nil {
				found = ev
			}
			if ev.Phase == PhaseFailed && failed == nil {
				failed = ev
			}
		}
		if found != nil {
			return *found, nil
		}
		if failed != nil {
			return *failed, fmt.Errorf("node %s round %d failed: %s", m, failed.Round, failed.Detail)
		}
		select {
		case <-ch:
		case <-time.After(time.Second):
		case <-ctx.Done():
			return Event{}, fmt.Errorf("wait for node %s to reach %s: %w", m, p, ctx.Err())
		}
	}
}

// record reads the node's row for reading only.
func (c *Controller) node(mac string) (NodeRecord, bool) {
	m, err := normMAC(mac)
	if err != nil {
		return NodeRecord{}, false
	}
	if _, ok := c.nodes[m]; !ok {
		return NodeRecord{}, false
	}
	rec, err := c.store.Node(context.Background(), m)
	if err != nil {
		c.log.Error("read node", "mac", m, "err", err)
		return NodeRecord{}, false
	}
	return rec, true
}

// PhoneHome returns the last phone-home the node's OS sent.
func (c *Controller) PhoneHome(mac string) (PhoneHome, bool) {
	rec, ok := c.node(mac)
	if !ok || rec.Phone == nil {
		return PhoneHome{}, false
	}
	return *rec.Phone, true
}

// Document returns the last provision.json composed for the node.
func (c *Controller) Document(mac string) ([]byte, bool) {
	rec, ok := c.node(mac)
	if !ok || rec.Doc == nil {
		return nil, false
	}
	return rec.Doc, true
}

// Status returns the last job status the node's agent reported.
func (c *Controller) Status(mac string) (api.Status, bool) {
	rec, ok := c.node(mac)
	if !ok || rec.Status == nil {
		return api.Status{}, false
	}
	return *rec.Status, true
}

// SetConfigdriveFormat sets the configdrive format of the node's next
// provision.json, over Node.ConfigdriveFormat ("" restores it), for as long
// as this controller runs.
func (c *Controller) SetConfigdriveFormat(mac, format string) error {
	m, err := normMAC(mac)
	if err != nil {
		return err
	}
	if _, ok := c.nodes[m]; !ok {
		return fmt.Errorf("configdrive format of %s: %w", m, ErrUnknownNode)
	}
	if _, err := configdrive.ParseFormat(format); err != nil {
		return fmt.Errorf("configdrive format of %s: %w", m, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cdFmt == nil {
		c.cdFmt = map[string]string{}
	}
	c.cdFmt[m] = format
	return nil
}

// configdriveFormat is the node's configdrive format for its next document.
func (c *Controller) configdriveFormat(mac string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if f, ok := c.cdFmt[mac]; ok && f != "" {
		return f
	}
	return c.nodes[mac].ConfigdriveFormat
}

// Reprovision is ReprovisionFor without a reason.
func (c *Controller) Reprovision(ctx context.Context, mac string) error {
	return c.ReprovisionFor(ctx, mac, "")
}

// ReprovisionFor flips the node back to the bootstrap, starts its next
// round and restarts the node: a power cycle through its BMC when one is
// enrolled, else Config.Power, else a reboot through its agent when one
// runs (the node is still in the bootstrap); the loop then repeats (a
// fresh discovery is provisioned again, with force). It is the only way a
// provisioned node gets the bootstrap again. The reason goes into the
// node's timeline; a failed restart is recorded as the round's failure.
func (c *Controller) ReprovisionFor(ctx context.Context, mac, reason string) error {
	m, err := c.knownNode(mac)
	if err != nil {
		return fmt.Errorf("reprovision: %w", err)
	}
	bmc, err := c.store.BMC(ctx, m)
	if err != nil {
		return fmt.Errorf("reprovision %s: %w", m, err)
	}
	var round int
	var agentURL, pin, token, how string
	err = c.update(ctx, m, func(r *NodeRecord, rec recorder) error {
		switch {
		case bmc != nil:
			how = "power cycle through " + bmc.String()
		case c.cfg.Power != nil:
			how = "reset"
		case !r.Local && r.AgentURL != "" && r.Token != "":
			// The agent of the round still runs (the node never left the
			// bootstrap): it reboots the node, with the round's token.
			agentURL, pin, token = r.AgentURL, r.Pin, r.Token
			how = "reboot through its agent " + agentURL
		default:
			how = "no BMC enrolled and no agent running: reboot the node by hand"
		}
		r.Local = false
		r.Round++
		r.Phases = nil
		// The last round's credentials die with it.
		r.Token, r.PhoneSecret = "", ""
		round = r.Round
		detail := "flipped to the bootstrap; " + how
		if reason != "" {
			detail += " (reason: " + reason + ")"
		}
		rec(PhaseReprovision, detail)
		return nil
	})
	if err != nil {
		return fmt.Errorf("reprovision %s: %w", m, err)
	}
	switch {
	case bmc != nil:
		err = c.powerAction(ctx, m, *bmc, power.Cycle)
		if err == nil {
			c.recordRound(m, round, PhasePower, "power cycle through "+bmc.String())
		}
	case c.cfg.Power != nil:
		err = c.cfg.Power.Reset(ctx, m)
		c.metrics.PowerAction("qemu", "reset", PowerFailureReason(err))
		if err != nil {
			err = fmt.Errorf("power reset: %w", err)
		}
	case token != "":
		err = c.agentClient(agentURL, pin, token).Reboot(ctx)
		c.metrics.PowerAction("agent", "reset", PowerFailureReason(err))
		if err != nil {
			err = fmt.Errorf("reboot through POST %s/v1/reboot: %w", agentURL, err)
		}
	}
	if err != nil {
		err = fmt.Errorf("reprovision %s: %w", m, err)
		c.recordRound(m, round, PhaseFailed, err.Error())
		return err
	}
	return nil
}

// recorder records an event of the node's current round.
type recorder func(p Phase, detail string)

// errLeased: another controller drives the node.
type errLeased struct{ mac, holder string }

func (e errLeased) Error() string {
	return fmt.Sprintf("node %s is driven by controller %s", e.mac, e.holder)
}

// update is every change of a node's state: it takes (or renews) the
// node's lease, reads its row, lets fn change it and record events, and
// saves row and events in one transaction, then emits the events. fn's
// error discards the change.
func (c *Controller) update(ctx context.Context, mac string, fn func(r *NodeRecord, rec recorder) error) error {
	// One node at a time, nodes in parallel: a fleet's callbacks do not
	// queue behind each other's database round trips.
	nl := c.nodeMu[mac]
	if nl == nil {
		return fmt.Errorf("update %s: %w", mac, ErrUnknownNode)
	}
	nl.Lock()
	defer nl.Unlock()
	held, holder, err := c.lease(ctx, mac)
	if err != nil {
		return err
	}
	if !held {
		return errLeased{mac, holder}
	}
	r, err := c.store.Node(ctx, mac)
	if err != nil {
		return err
	}
	var evs []Event
	rec := func(p Phase, detail string) {
		r.add(p)
		evs = append(evs, Event{Time: c.now(), MAC: mac, Round: r.Round, Phase: p, Detail: detail})
	}
	if err := fn(&r, rec); err != nil {
		return err
	}
	if err := c.store.Save(ctx, r, evs...); err != nil {
		return err
	}
	for _, ev := range evs {
		c.events.Append(func(int64) Event { return ev })
	}
	for _, ev := range evs {
		c.emit(ev)
		// A node at rest (its OS up, or its round failed) is nobody's
		// to drive until it calls again.
		if ev.Phase == PhaseOSUp || ev.Phase == PhaseFailed {
			c.forgetLease(mac)
			if err := c.store.ReleaseLease(ctx, mac, c.cfg.ID); err != nil {
				c.log.Error("release lease", "mac", mac, "err", err)
			}
		}
	}
	return nil
}

// recordRound records an event only while the node is still in round (a
// Reprovision meanwhile makes a late answer of the old round moot).
func (c *Controller) recordRound(mac string, round int, p Phase, detail string) {
	err := c.update(c.bg, mac, func(r *NodeRecord, rec recorder) error {
		if r.Round != round {
			c.log.Warn("late event of a past round dropped", "mac", mac, "round", round, "phase", string(p), "detail", detail)
			return nil
		}
		rec(p, detail)
		return nil
	})
	if err != nil {
		c.log.Error("record event", "mac", mac, "phase", string(p), "detail", detail, "err", err)
	}
}

func (c *Controller) emit(ev Event) {
	lvl := slog.LevelInfo
	if ev.Phase == PhaseFailed {
		lvl = slog.LevelError
	}
	c.log.Log(context.Background(), lvl, "node event", "mac", ev.MAC, "round", ev.Round, "phase", string(ev.Phase), "detail", ev.Detail)
	if c.cfg.OnEvent != nil {
		c.notify.Lock()
		c.cfg.OnEvent(ev)
		c.notify.Unlock()
	}
}

func normMAC(s string) (string, error) {
	hw, err := net.ParseMAC(strings.ReplaceAll(strings.TrimSpace(s), "-", ":"))
	if err != nil || len(hw) != 6 {
		return "", fmt.Errorf("mac %q: not a 6-byte MAC address", s)
	}
	return hw.String(), nil
}

// newSecret is 32 random bytes, hex: a node's token or phone-home secret.
func newSecret() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic("crypto/rand: " + err.Error()) // never fails on Linux ≥ 3.17
	}
	return hex.EncodeToString(b)
}

// agentClient is the API client of a node's agent, with the node's token
// of the round; an https agent's certificate is pinned to the fingerprint
// it sent in its (authenticated) discovery.
func (c *Controller) agentClient(agentURL, pin, token string) *api.Client {
	// No keep-alive: the agent lives for one boot of the node, and a
	// connection kept from before a reboot reaches a kernel that no longer
	// knows it (over QEMU's slirp even the connect succeeds), so the next
	// POST, which the transport does not retry, fails with EOF.
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DisableKeepAlives = true
	hc := &http.Client{Timeout: c.cfg.AgentTimeout, Transport: tr}
	if strings.HasPrefix(agentURL, "https://") {
		want := strings.ToUpper(pin)
		tr.TLSClientConfig = &tls.Config{
			InsecureSkipVerify: true, // the certificate is self-signed: pinned below
			VerifyConnection: func(cs tls.ConnectionState) error {
				if len(cs.PeerCertificates) == 0 {
					return errors.New("agent sent no certificate")
				}
				if got := strings.ToUpper(api.Fingerprint(cs.PeerCertificates[0].Raw)); want == "" || got != want {
					return fmt.Errorf("agent certificate fingerprint %s does not match the discovery's %q", got, pin)
				}
				return nil
			},
		}
	}
	return &api.Client{URL: agentURL, Token: token, HTTP: hc}
}

// frameManifestSuffix is imagewriter.FrameManifestSuffix (checked by a
// test); imagewriter itself is Linux-only and the controller is not.
const frameManifestSuffix = ".manifest.json"

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}
