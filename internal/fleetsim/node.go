package fleetsim

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/imprint-dev/imprint/agent"
	"github.com/imprint-dev/imprint/api"
	"github.com/imprint-dev/imprint/bootstrap/nodearchive"
	"github.com/imprint-dev/imprint/imagewriter"
	"github.com/imprint-dev/imprint/internal/promscrape"
	"github.com/imprint-dev/imprint/inventory"
	"github.com/imprint-dev/imprint/prepare"
)

// node is one simulated machine: its firmware's iPXE fetch, the real agent
// (API, job runner, prepare, callbacks, power endpoint) with the disk,
// configdrive and bootloader steps simulated and the images step writing
// the image through the real image writer into a sparse file, then a
// simulated reboot (iPXE again, which must answer local boot) and
// cloud-init's phone-home.
type node struct {
	i        int
	mac, ip  string
	hostname string
	sim      *sim

	// What happened to it.
	start, end     time.Time
	imgStart       time.Time
	imgEnd         time.Time
	bytesWritten   int64
	bytesRead      int64
	imageWrites    atomic.Int32 // images steps started: more than one is a node provisioned twice
	provisionPosts atomic.Int32 // POST /v1/provision accepted by its agent
	boots          int          // iPXE bootstrap scripts fetched
	err            error
	phoneHomeURL   atomic.Value // string, from the prepared document
	rebooted       chan struct{}
	rebootOnce     sync.Once
	refused        atomic.Value // string: why its agent refused a document
	giveUp         context.CancelFunc
	metricsURL     string
	metricsToken   string
	agentMetrics   *agent.Metrics
}

func (n *node) fail(format string, a ...any) error {
	n.err = fmt.Errorf("node %s (%s): %s", n.hostname, n.mac, fmt.Sprintf(format, a...))
	return n.err
}

// get GETs u until it answers below 500, retrying a controller that is
// down (as firmware does) until ctx ends; any other answer but 200 is an
// error. The body is read up to limit bytes.
func (n *node) get(ctx context.Context, u string, limit int64) ([]byte, error) {
	var last error
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return nil, fmt.Errorf("GET %s: %w (last: %v)", u, ctx.Err(), last)
			case <-time.After(n.sim.retryWait(attempt)):
			}
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		resp, err := n.sim.http.Do(req)
		if err != nil {
			last = err
			continue
		}
		b, _ := io.ReadAll(io.LimitReader(resp.Body, limit))
		resp.Body.Close()
		if resp.StatusCode >= 500 {
			last = fmt.Errorf("%s: %s", resp.Status, b)
			continue
		}
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("GET %s: %s: %.200q", u, resp.Status, b)
		}
		return b, nil
	}
}

// ipxe is the node's firmware asking for its boot script.
func (n *node) ipxe(ctx context.Context) (string, error) {
	b, err := n.get(ctx, n.sim.ctlURL()+"/ipxe?mac="+url.QueryEscape(n.mac), 64<<10)
	return string(b), err
}

// initrdLine is the URL of the script's initrd line.
func initrdLine(script string) string {
	for _, l := range strings.Split(script, "\n") {
		if f := strings.Fields(l); len(f) > 0 && f[0] == "initrd" {
			return f[len(f)-1]
		}
	}
	return ""
}

// nodeToken fetches the node's own initramfs and reads its token from the
// per-node archive appended to the shared one, as the ramdisk finds it.
func (n *node) nodeToken(ctx context.Context, u string) (string, error) {
	b, err := n.get(ctx, u, 1<<20)
	if err != nil {
		return "", err
	}
	if !bytes.HasPrefix(b, []byte(simInitrd)) {
		return "", fmt.Errorf("GET %s: not the shared initramfs with an archive appended: %.200q", u, b)
	}
	files, err := nodearchive.Read(b[len(simInitrd):])
	if err != nil {
		return "", fmt.Errorf("GET %s: the node's archive: %w", u, err)
	}
	tok := strings.TrimSpace(string(files[nodearchive.TokenFile].Content))
	if tok == "" {
		return "", fmt.Errorf("GET %s: no token in the node's archive", u)
	}
	return tok, nil
}

func cmdlineValue(script, key string) string {
	for _, f := range strings.Fields(script) {
		if v, ok := strings.CutPrefix(f, key); ok {
			return v
		}
	}
	return ""
}

// run is the node's whole life: boot, provision, reboot, phone home.
func (n *node) run(ctx context.Context) error {
	n.start = time.Now()
	defer func() { n.end = time.Now() }()
	n.rebooted = make(chan struct{})
	ctx, n.giveUp = context.WithCancel(ctx)
	defer n.giveUp()
	// Boot: iPXE until it hands out the bootstrap (a node whose script was
	// lost with a killed controller boots again, as firmware does).
	script, err := n.ipxe(ctx)
	if err != nil {
		return n.fail("PXE: %v", err)
	}
	n.boots++
	ctlURL, initrdURL := cmdlineValue(script, "imprint.controller="), initrdLine(script)
	if ctlURL == "" || initrdURL == "" {
		return n.fail("the iPXE script carries no bootstrap (controller %q, initrd %q):\n%s", ctlURL, initrdURL, script)
	}
	// The token, as the ramdisk finds it: in the node's own initramfs.
	token, err := n.nodeToken(ctx, initrdURL)
	if err != nil {
		return n.fail("per-node initramfs: %v", err)
	}
	// The agent, as the bootstrap starts it.
	actx, stopAgent := context.WithCancel(ctx)
	defer stopAgent()
	log := n.sim.log.With("node", n.hostname)
	inv := &inventory.Inventory{
		// A disk name no host has (never /dev/vda, this machine's own):
		// nothing opens it anyway, every disk step is simulated.
		Disks: []inventory.Disk{{Name: "simdisk0", Path: "/dev/simdisk0", SizeBytes: 20 << 30, LogicalSectorSize: 512, PhysicalSectorSize: 512, Bus: "virtio",
			Serial: "SIM-" + n.hostname, ByID: []string{"/dev/disk/by-id/virtio-SIM-" + n.hostname}}},
		NICs:   []inventory.NIC{{Name: "eth0", MAC: n.mac, Link: true}},
		CPU:    inventory.CPU{Count: 2, Arch: "amd64"},
		Memory: inventory.Memory{TotalBytes: 4 << 30},
		DMI:    inventory.DMI{UUID: fmt.Sprintf("00000000-0000-4000-8000-%012x", n.i)},
	}
	invSrc := api.InventoryFunc(func(context.Context) (*inventory.Inventory, error) { return inv, nil })
	n.agentMetrics = agent.NewMetrics(nil)
	rep := &agent.CallbackClient{URL: ctlURL, Token: token, Logger: log.With("component", "callbacks"), Metrics: n.agentMetrics,
		Backoff: 200 * time.Millisecond, MaxBackoff: 2 * time.Second, Client: &http.Client{Timeout: 30 * time.Second}}
	steps := agent.Steps{
		Prepare:     prepare.Options{FS: simFS{}},
		Inventory:   invSrc,
		Disks:       simStep{n: n, what: "disks"},
		Configdrive: simStep{n: n, what: "configdrive"},
		Images:      simImages{n: n},
		Bootloader:  simStep{n: n, what: "bootloader"},
	}
	jobs, err := agent.NewJobs(actx, steps, agent.JobsOptions{Logger: log, AllowDestructive: true, Reporter: rep,
		Heartbeat: n.sim.cfg.Heartbeat, ReportTimeout: 10 * time.Minute, Metrics: n.agentMetrics})
	if err != nil {
		return n.fail("agent: %v", err)
	}
	power := &agent.Power{Enabled: true, Delay: time.Second, Logger: log, // the real agent's delay
		Busy: func() bool { s := jobs.Status().State; return s == api.StateRunning || s == api.StatePending },
		Do: func(action string) error {
			n.rebootOnce.Do(func() { close(n.rebooted) })
			return nil
		}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return n.fail("agent listen: %v", err)
	}
	n.metricsURL, n.metricsToken = "http://"+ln.Addr().String()+"/v1/metrics", token
	ag := agent.New(agent.Config{Listen: ln.Addr().String(), Token: token, Controller: ctlURL},
		agent.Deps{Logger: log, Inventory: invSrc, Jobs: countingJobs{Jobs: jobs, n: n}, Power: power, Reporter: rep, Metrics: n.agentMetrics, Version: "fleet-sim"})
	served := make(chan error, 1)
	go func() { served <- ag.Serve(actx, ln) }()

	// Provisioned, the controller asks the agent to reboot.
	select {
	case <-n.rebooted:
	case err := <-served:
		return n.fail("agent stopped before the reboot: %v", err)
	case <-ctx.Done():
		if why, _ := n.refused.Load().(string); why != "" {
			return n.fail("its agent refused the controller's document: %s", why)
		}
		st := jobs.Status()
		detail := st.State
		if st.Error != nil {
			detail += ": " + st.Error.Message
		}
		return n.fail("no reboot asked (job %s): %v", detail, ctx.Err())
	}
	if st := jobs.Status(); st.State != api.StateSucceeded {
		return n.fail("rebooted with the job %s", st.State)
	}
	if n.sim.cfg.ScrapeAgents {
		fam, err := promscrape.Scrape(ctx, nil, n.metricsURL, n.metricsToken)
		if err != nil {
			return n.fail("scrape the agent: %v", err)
		}
		n.sim.scrapeMu.Lock()
		n.sim.scraped[n.mac] = fam
		n.sim.scrapeMu.Unlock()
	}
	stopAgent()
	<-served

	// The reboot: the firmware network-boots again and must get the local
	// boot, not the bootstrap.
	script, err = n.ipxe(ctx)
	if err != nil {
		return n.fail("PXE after the reboot: %v", err)
	}
	if strings.Contains(script, "imprint.controller=") {
		return n.fail("after the reboot iPXE handed out the bootstrap again (provisioned twice?)")
	}
	// The provisioned OS's cloud-init phones home.
	ph, _ := n.phoneHomeURL.Load().(string)
	if ph == "" {
		return n.fail("the document carried no phone_home_url")
	}
	if err := n.phoneHome(ctx, ph); err != nil {
		return n.fail("phone-home: %v", err)
	}
	return nil
}

// phoneHome posts what cloud-init's phone_home module posts, retrying
// while the controller is away.
func (n *node) phoneHome(ctx context.Context, u string) error {
	form := url.Values{"instance_id": {"sim-" + n.hostname}, "hostname": {n.hostname}, "fqdn": {n.hostname + ".sim"},
		"pub_key_ed25519": {"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFleetSimulationKeyFleetSimulationKey000 root@" + n.hostname}}
	var last error
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return fmt.Errorf("%w (last: %v)", ctx.Err(), last)
			case <-time.After(n.sim.retryWait(attempt)):
			}
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, u, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := n.sim.http.Do(req)
		if err != nil {
			last = err
			continue
		}
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		if resp.StatusCode >= 500 {
			last = fmt.Errorf("%s: %s", resp.Status, b)
			continue
		}
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("POST phone-home: %s: %s", resp.Status, b)
		}
		return nil
	}
}

// countingJobs counts the provisions the agent accepted.
type countingJobs struct {
	*agent.Jobs
	n *node
}

func (c countingJobs) Start(ctx context.Context, data []byte, force bool) (api.Status, error) {
	st, err := c.Jobs.Start(ctx, data, force)
	if err == nil {
		c.n.provisionPosts.Add(1)
	} else {
		var ve *api.ValidationError
		if errors.As(err, &ve) {
			// The document was refused: the node would sit in its ramdisk
			// for ever; the simulation stops waiting for it.
			c.n.refused.Store(err.Error())
			c.n.giveUp()
		}
	}
	return st, err
}

// simFS resolves the simulated devices to themselves: none exists on this
// host, and no simulated step opens one.
type simFS struct{}

func (simFS) EvalSymlinks(p string) (string, error) { return p, nil }
func (simFS) Rdev(string) (uint64, bool)            { return 0, false }

// simStep is a simulated step (disks, configdrive, bootloader): it checks
// what prepare made for it and touches nothing.
type simStep struct {
	n    *node
	what string
}

func (s simStep) Apply(ctx context.Context, job *prepare.Job) error { return s.check(job) }
func (s simStep) Write(ctx context.Context, job *prepare.Job) error { return s.check(job) }
func (s simStep) Install(ctx context.Context, job *prepare.Job) error {
	return s.check(job)
}

func (s simStep) check(job *prepare.Job) error {
	switch s.what {
	case "disks":
		if job.Plan == nil || len(job.Plan.Disks) == 0 {
			return errors.New("simulated disks step: the prepared plan has no disk")
		}
		s.n.phoneHomeURL.Store(job.Doc.KsMeta.PhoneHomeURL)
	case "configdrive":
		if job.Configdrive == nil || job.Configdrive.Content == nil {
			return errors.New("simulated configdrive step: nothing prepared")
		}
	}
	return nil
}

// simImages writes each image with the real image writer into a fresh
// sparse file (removed once written: the disk is simulated), its memory
// bounded for one process holding many nodes.
type simImages struct{ n *node }

func (s simImages) Write(ctx context.Context, job *prepare.Job, img prepare.Image, progress agent.ProgressFunc) (agent.ImageResult, error) {
	n := s.n
	n.imageWrites.Add(1)
	release, err := n.sim.imageSlot(ctx)
	if err != nil {
		return agent.ImageResult{}, err
	}
	defer release()
	target := filepath.Join(n.sim.cfg.Dir, "disks", n.hostname+strings.ReplaceAll(img.Mount, "/", "_")+".img")
	defer os.Remove(target)
	counter := n.agentMetrics.ImageCounter()
	opts := n.sim.writerOptions()
	opts.Progress = func(p imagewriter.Progress) {
		counter.Progress(p)
		progress(p.BytesWritten, p.TotalWritten)
	}
	n.imgStart = time.Now()
	res, err := imagewriter.Write(ctx, imagewriter.Request{URL: img.URI, Mirrors: img.Mirrors, Device: target, Container: imagewriter.Container(img.Container), SHA256: img.SHA256}, opts)
	n.imgEnd = time.Now()
	if err != nil {
		return agent.ImageResult{}, err
	}
	counter.Done(res)
	n.bytesWritten += res.BytesWritten
	n.bytesRead += res.BytesRead
	return agent.ImageResult{VerifiedBy: res.Verified}, nil
}

// writerOptions are the image writer's options of every simulated node
// and of the nginx-alone baseline: one decode goroutine and small buffers,
// since one process holds many machines' memory.
func (s *sim) writerOptions() imagewriter.Options {
	return imagewriter.Options{
		AllowRegularFile: true, FrameWorkers: 1, BufferSize: 1 << 20, Buffers: 2,
		Logger: s.log.With("component", "imagewriter"), ProgressInterval: time.Second,
		RetryBackoff: 200 * time.Millisecond, MaxBackoff: 2 * time.Second,
	}
}
