// Package fleetsim is imprint's fleet simulation (`make fleet-sim`): the
// real controller (`imprint controller` as a process, on SQLite or
// PostgreSQL), Debian's stock nginx serving a real image (an ext4 file
// system as a multi-frame zstd image), and N simulated nodes.
//
// A simulated node is the real agent code in this process: its firmware's
// iPXE fetch, the agent's API server on its own loopback port with the
// node's token, the discovery, the job runner with the real prepare
// (validation, planning, configdrive rendering), the heartbeats and the
// result callbacks, the controller's reboot call, then iPXE again (local
// boot expected) and cloud-init's phone-home. Its image is streamed by the
// real image writer (frames checked against the manifest) into a sparse
// file per node, removed once written. The disk, configdrive and
// bootloader steps are SIMULATED (they check what prepare made and touch
// nothing), and the output says so.
//
// The nodes are goroutines of one process, not processes: a thousand Go
// processes would cost a thousand runtimes' memory and scheduler on a
// 2-core machine shared with others, measuring the host rather than the
// controller. Each node still has its own listener, token, HTTP clients
// and agent state. Because one process holds every node's image writer,
// the writers run with small buffers and one decoder each, and at most
// ImageSlots write at once; the nginx-alone baseline runs under the same
// bound, so the two are compared like for like.
package fleetsim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/imprint-dev/imprint/api"
	"github.com/imprint-dev/imprint/controller"
	"github.com/imprint-dev/imprint/imagewriter"
	"github.com/imprint-dev/imprint/internal/promscrape"
)

// Config is one simulated run.
type Config struct {
	Bin      string // the imprint binary (controller, convert-image)
	Dir      string // work directory: controller state and logs, node disks
	Nodes    int
	DB       string // --db of the controller: sqlite:PATH or postgres://...
	DBName   string // for the table: "SQLite", "PostgreSQL"
	Image    string // the .zst image (manifest beside), served by nginx
	NginxURL string // nginx base URL serving Image's directory
	// ImageURLs are the controller's --image-url servers (default:
	// NginxURL): the first is in the nodes' documents, the others and the
	// controller are their mirrors.
	ImageURLs []string
	// ImageSlots bounds the image writes running at once in this process
	// (default 64); the baseline uses the same bound.
	ImageSlots int
	// Heartbeat is the agents' progress interval (default 2s).
	Heartbeat time.Duration
	// Kill: SIGKILL the controller once half the nodes have started
	// writing their image, and start it again after RestartDelay (default
	// 2s) on the same database and address.
	Kill         bool
	RestartDelay time.Duration
	// Timeout bounds the run (default 30 min).
	Timeout time.Duration
	Logger  *slog.Logger
	// ScrapeAgents scrapes every agent's /v1/metrics before it reboots
	// (the harness test checks them).
	ScrapeAgents bool
}

// Report is one run's figures.
type Report struct {
	Name          string
	Nodes         int
	Provisioned   int // reached os-up, checked by the node and the controller
	Failures      []string
	Wall          time.Duration // first iPXE to last phone-home
	NodesPerMin   float64
	P50, P99      time.Duration // per node: first iPXE to phone-home acknowledged
	WrittenMBps   float64       // image bytes written by all nodes / the data window
	ReadMBps      float64       // image bytes downloaded / the data window
	NginxMBps     float64       // the same N clients on nginx alone (written bytes)
	CallbackP99   time.Duration // the controller's /metrics, every callback kind
	PeakRSS       int64         // the controller process's VmHWM (largest over restarts)
	Kills         int
	Lost          int // nodes that never reached os-up
	Twice         int // nodes provisioned more than once
	ImageSlots    int
	ImageMiB      float64                        // uncompressed
	AgentFamilies map[string]promscrape.Families // by MAC, with ScrapeAgents
}

// Ratio is the throughput against nginx alone.
func (r Report) Ratio() float64 {
	if r.NginxMBps <= 0 {
		return 0
	}
	return r.WrittenMBps / r.NginxMBps
}

// simInitrd is the shared "initramfs" the simulation's controller serves;
// a node's own is it with the node's archive (its token) appended.
const simInitrd = "simulated initramfs: never booted"

type sim struct {
	cfg   Config
	log   *slog.Logger
	http  *http.Client
	url   string
	slots chan struct{}
	imgs  atomic.Int32 // nodes that started writing their image

	scrapeMu sync.Mutex
	scraped  map[string]promscrape.Families
}

func (s *sim) ctlURL() string { return s.url }

func (s *sim) retryWait(attempt int) time.Duration {
	d := 200 * time.Millisecond << min(attempt, 5)
	return min(d, 2*time.Second)
}

func (s *sim) imageSlot(ctx context.Context) (func(), error) {
	select {
	case s.slots <- struct{}{}:
		s.imgs.Add(1)
		return func() { <-s.slots }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (c *Config) defaults() error {
	if c.ImageSlots <= 0 {
		c.ImageSlots = 64
	}
	if c.Heartbeat <= 0 {
		c.Heartbeat = 2 * time.Second
	}
	if c.RestartDelay <= 0 {
		c.RestartDelay = 2 * time.Second
	}
	if c.Timeout <= 0 {
		c.Timeout = 30 * time.Minute
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Nodes <= 0 || c.Nodes > 60000 {
		return fmt.Errorf("nodes: %d: want 1 to 60000", c.Nodes)
	}
	if c.Bin == "" || c.Dir == "" || c.DB == "" || c.Image == "" || c.NginxURL == "" {
		return errors.New("fleetsim: Bin, Dir, DB, Image and NginxURL are required")
	}
	return os.MkdirAll(filepath.Join(c.Dir, "disks"), 0o755)
}

func macOf(i int) string {
	return fmt.Sprintf("52:54:01:%02x:%02x:%02x", (i>>16)&0xff, (i>>8)&0xff, i&0xff)
}

// Run simulates one fleet provisioning run and measures it.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	st, err := os.Stat(cfg.Image)
	if err != nil {
		return nil, err
	}
	_ = st
	rep := &Report{Name: cfg.DBName, Nodes: cfg.Nodes, ImageSlots: cfg.ImageSlots}
	if cfg.Kill {
		rep.Name += ", controller SIGKILLed mid-run"
	}
	// Same bound and writer settings: nginx alone first, on the same N.
	s := &sim{cfg: cfg, log: cfg.Logger, slots: make(chan struct{}, cfg.ImageSlots), scraped: map[string]promscrape.Families{},
		http: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64, IdleConnTimeout: 10 * time.Second}}}
	imageURL := cfg.NginxURL + "/" + url.PathEscape(filepath.Base(cfg.Image))
	before, mib, err := s.nginxAlone(ctx, imageURL)
	if err != nil {
		return rep, fmt.Errorf("nginx alone: %w", err)
	}
	rep.ImageMiB = mib

	port, err := FreePort()
	if err != nil {
		return rep, err
	}
	s.url = "http://127.0.0.1:" + strconv.Itoa(port)
	kernel := filepath.Join(cfg.Dir, "vmlinuz")
	initrd := filepath.Join(cfg.Dir, "initramfs.cpio.gz")
	os.WriteFile(kernel, []byte("simulated kernel: never booted"), 0o644)
	os.WriteFile(initrd, []byte(simInitrd), 0o644)
	token := fmt.Sprintf("fleet-sim-operator-%d", time.Now().UnixNano())
	args := []string{"controller", "--listen", "127.0.0.1:" + strconv.Itoa(port), "--token", token, "--db", cfg.DB,
		"--id", "fleet-sim-controller", "--kernel", kernel, "--initrd", initrd, "--image", "/=" + cfg.Image + ":ext4",
		"--network", "10.200.0.0/16", "--gateway", "10.200.0.1", "--dns", "10.200.0.1",
		"--log-format", "json"}
	if len(cfg.ImageURLs) == 0 {
		cfg.ImageURLs = []string{cfg.NginxURL}
	}
	for _, u := range cfg.ImageURLs {
		args = append(args, "--image-url", u)
	}
	nodes := make([]*node, cfg.Nodes)
	for i := range nodes {
		n := &node{i: i + 1, mac: macOf(i + 1), hostname: fmt.Sprintf("sim-%05d", i+1), sim: s}
		n.ip = fmt.Sprintf("10.200.%d.%d", (i+2)/250, (i+2)%250+1)
		nodes[i] = n
		args = append(args, "--node", n.mac+"="+n.hostname+",ip="+n.ip)
	}
	ctl := &controllerProc{bin: cfg.Bin, args: args, dir: cfg.Dir, url: s.url}
	if err := ctl.start(ctx); err != nil {
		return rep, err
	}
	defer ctl.stop()
	stopRSS := make(chan struct{})
	go func() {
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stopRSS:
				return
			case <-t.C:
				ctl.sampleRSS()
			}
		}
	}()
	defer close(stopRSS)

	// The killer: half the nodes writing, SIGKILL, a pause, the restart.
	killed := make(chan error, 1)
	if cfg.Kill {
		go func() {
			for s.imgs.Load() < int32((cfg.Nodes+1)/2) {
				select {
				case <-ctx.Done():
					killed <- ctx.Err()
					return
				case <-time.After(20 * time.Millisecond):
				}
			}
			ctl.kill()
			fmt.Fprintf(logOut(cfg), "fleet-sim: controller SIGKILLed with %d/%d nodes past the start of their image\n", s.imgs.Load(), cfg.Nodes)
			time.Sleep(cfg.RestartDelay)
			killed <- ctl.start(ctx)
		}()
	} else {
		close(killed)
	}

	var wg sync.WaitGroup
	for _, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := n.run(ctx); err != nil {
				cfg.Logger.Error("node failed", "node", n.hostname, "err", err)
			}
		}()
	}
	wg.Wait()
	if err, ok := <-killed; ok && err != nil {
		return rep, fmt.Errorf("controller restart: %w", err)
	}
	if cfg.Kill {
		rep.Kills = 1
	}

	// nginx alone again, after: the baseline is the mean of the runs
	// before and after, so a neighbour's load drifting on a shared machine
	// weighs on both sides.
	after, _, err := s.nginxAlone(ctx, imageURL)
	if err != nil {
		return rep, fmt.Errorf("nginx alone, after: %w", err)
	}
	rep.NginxMBps = (before + after) / 2

	// The controller's figures, from its /metrics.
	fam, err := promscrape.Scrape(ctx, nil, s.url+"/metrics", "")
	if err != nil {
		return rep, err
	}
	rep.CallbackP99 = time.Duration(fam.Histogram("imprint_controller_callback_duration_seconds", nil).Quantile(0.99) * float64(time.Second))
	var kinds []string
	for _, k := range []string{"ipxe", "discovery", "progress", "result", "phone-home"} {
		h := fam.Histogram("imprint_controller_callback_duration_seconds", map[string]string{"callback": k})
		kinds = append(kinds, fmt.Sprintf("%s %d p50 %.0fms p99 %.0fms", k, h.Count, 1000*h.Quantile(0.5), 1000*h.Quantile(0.99)))
	}
	fmt.Fprintf(logOut(cfg), "fleet-sim: %s, %d nodes: controller callbacks: %s\n", rep.Name, cfg.Nodes, strings.Join(kinds, "; "))
	osUp := fam.Value("imprint_controller_nodes", map[string]string{"state": string(controller.PhaseOSUp)})
	// Its timeline, over the operator API: one provisioned event per node,
	// whatever the rounds.
	cl := &api.ControllerClient{URL: s.url, Token: token}
	ctl.sampleRSS()
	rep.PeakRSS = ctl.peakRSS

	var times []time.Duration
	var first, last, imgFirst, imgLast time.Time
	var written, read int64
	for _, n := range nodes {
		if n.err != nil {
			rep.Failures = append(rep.Failures, n.err.Error())
			rep.Lost++
			continue
		}
		if n.imageWrites.Load() != 1 || n.provisionPosts.Load() != 1 {
			rep.Twice++
			rep.Failures = append(rep.Failures, fmt.Sprintf("node %s: %d provisions accepted, %d image writes", n.hostname, n.provisionPosts.Load(), n.imageWrites.Load()))
		}
		d, err := cl.Node(ctx, n.mac)
		if err != nil {
			rep.Failures = append(rep.Failures, fmt.Sprintf("node %s: operator API: %v", n.hostname, err))
			continue
		}
		prov, up := 0, 0
		for _, ev := range d.Events {
			switch controller.Phase(ev.Phase) {
			case controller.PhaseProvisioned:
				prov++
			case controller.PhaseOSUp:
				up++
			}
		}
		if prov != 1 || up != 1 {
			rep.Twice += boolInt(prov > 1)
			rep.Failures = append(rep.Failures, fmt.Sprintf("node %s: the controller's timeline has %d provisioned and %d os-up events", n.hostname, prov, up))
			continue
		}
		rep.Provisioned++
		times = append(times, n.end.Sub(n.start))
		first, last = minTime(first, n.start), maxTime(last, n.end)
		imgFirst, imgLast = minTime(imgFirst, n.imgStart), maxTime(imgLast, n.imgEnd)
		written += n.bytesWritten
		read += n.bytesRead
		if cfg.ScrapeAgents {
			s.scrapeMu.Lock()
			if rep.AgentFamilies == nil {
				rep.AgentFamilies = map[string]promscrape.Families{}
			}
			rep.AgentFamilies[n.mac] = s.scraped[n.mac]
			s.scrapeMu.Unlock()
		}
	}
	if int(osUp) != rep.Provisioned && len(rep.Failures) == 0 {
		rep.Failures = append(rep.Failures, fmt.Sprintf("the controller's /metrics counts %v nodes os-up, the nodes %d", osUp, rep.Provisioned))
	}
	if len(times) > 0 {
		sort.Slice(times, func(i, j int) bool { return times[i] < times[j] })
		rep.P50, rep.P99 = percentile(times, 0.50), percentile(times, 0.99)
		rep.Wall = last.Sub(first)
		rep.NodesPerMin = float64(len(times)) / rep.Wall.Minutes()
		if w := imgLast.Sub(imgFirst).Seconds(); w > 0 {
			rep.WrittenMBps = float64(written) / 1e6 / w
			rep.ReadMBps = float64(read) / 1e6 / w
		}
	}
	return rep, nil
}

func logOut(cfg Config) io.Writer {
	if cfg.ScrapeAgents {
		return io.Discard
	}
	return os.Stderr
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func percentile(sorted []time.Duration, q float64) time.Duration {
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

func minTime(a, b time.Time) time.Time {
	if a.IsZero() || (!b.IsZero() && b.Before(a)) {
		return b
	}
	return a
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// nginxAlone is the baseline: the same N clients, through the same image
// writer with the same bound, fetching the image straight from nginx, no
// controller. It returns the aggregate MB/s written and the image's
// uncompressed MiB.
func (s *sim) nginxAlone(ctx context.Context, imageURL string) (float64, float64, error) {
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first, last time.Time
	var written int64
	var errs []error
	for i := 0; i < s.cfg.Nodes; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			release, err := s.imageSlot(ctx)
			if err != nil {
				return
			}
			defer release()
			target := filepath.Join(s.cfg.Dir, "disks", fmt.Sprintf("nginx-alone-%05d.img", i))
			defer os.Remove(target)
			t0 := time.Now()
			res, err := imagewriter.Write(ctx, imagewriter.Request{URL: imageURL, Device: target}, s.writerOptions())
			t1 := time.Now()
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				return
			}
			first, last = minTime(first, t0), maxTime(last, t1)
			written += res.BytesWritten
		}()
	}
	wg.Wait()
	s.imgs.Store(0)
	if len(errs) > 0 {
		return 0, 0, fmt.Errorf("%d of %d downloads failed, first: %w", len(errs), s.cfg.Nodes, errs[0])
	}
	w := last.Sub(first).Seconds()
	return float64(written) / 1e6 / w, float64(written) / float64(s.cfg.Nodes) / (1 << 20), nil
}

// Table renders reports as the README's Markdown table.
func Table(reports []*Report) string {
	var b strings.Builder
	b.WriteString("| run | nodes | image MiB | provisioned | nodes/min | p50 node | p99 node | MB/s written (read) | nginx alone MB/s | ratio | controller p99 callback | controller peak RSS | lost | provisioned twice | failures |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range reports {
		fmt.Fprintf(&b, "| %s | %d | %.0f | %d | %.0f | %s | %s | %.0f (%.0f) | %.0f | %.0f%% | %s | %.0f MiB | %d | %d | %d |\n",
			r.Name, r.Nodes, r.ImageMiB, r.Provisioned, r.NodesPerMin, r.P50.Round(10*time.Millisecond), r.P99.Round(10*time.Millisecond),
			r.WrittenMBps, r.ReadMBps, r.NginxMBps, 100*r.Ratio(), r.CallbackP99.Round(100*time.Microsecond), float64(r.PeakRSS)/(1<<20),
			r.Lost, r.Twice, len(r.Failures))
	}
	return b.String()
}
