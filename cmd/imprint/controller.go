//go:build !imprint_ramdisk

package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	neturl "net/url"
	"os"
	"strings"
	"time"

	"github.com/imprint-dev/imprint/controller"
	"github.com/imprint-dev/imprint/provision"
	"github.com/imprint-dev/imprint/pxe"
)

const controllerUsage = `usage: imprint controller --kernel F --initrd F --image /=IMAGE --node MAC=HOSTNAME [flags]

Runs the reference controller: serves the bootstrap (/boot/vmlinuz,
/boot/initramfs.cpio.gz) and the images (/images/<name>), answers iPXE per MAC
(/ipxe?mac=${net0/mac}), receives the agents' discovery, progress and result,
posts each node a Nailgun provision.json for its disks, flips it to local boot
and reboots it; the provisioned OS phones home. Each node gets its own secret,
new every round, in its boot script only. State (nodes, rounds, timelines,
leases) lives in --db, so a restarted controller carries on. Events are
printed as they happen. Point the nodes' iPXE at it with:

  #!ipxe
  chain <guest-url>/ipxe?mac=${net0/mac}

--node takes MAC=HOSTNAME, optionally followed by ,agent=URL (how this
controller reaches the agent, e.g. a QEMU hostfwd), ,ip=ADDR (the node's
address in the provisioned OS) and ,group=GROUP (its rack group, for
--group-image-url).

Prometheus metrics are at /metrics (--metrics-token-file to require a
bearer; never the operator token).
`

// controllerFlags are the parsed command line of imprint controller.
type controllerFlags struct {
	cfg       controller.Config
	db        string
	logFormat string
	verbose   bool
	// tokenGenerated: no --token was given; the random one is printed.
	tokenGenerated bool
}

// printEvent prints one timeline entry; what the node reported is in
// Detail and is escaped (a node must not write to the operator's terminal).
func printEvent(w io.Writer, start time.Time, ev controller.Event) {
	fmt.Fprintf(w, "%8s  %s  round %d  %-13s %s\n", ev.Time.Sub(start).Round(time.Second), ev.MAC, ev.Round, ev.Phase, controller.Printable(ev.Detail))
}

// redactDB hides a password in a postgres:// URL.
func redactDB(dsn string) string {
	u, err := neturl.Parse(dsn)
	if err != nil || u.User == nil {
		return dsn
	}
	if _, ok := u.User.Password(); ok {
		u.User = neturl.UserPassword(u.User.Username(), "xxxxx")
	}
	return u.String()
}

func parseControllerFlags(args []string, stderr io.Writer) (controllerFlags, int, bool) {
	fs := flag.NewFlagSet("controller", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, controllerUsage); fs.PrintDefaults() }
	var f controllerFlags
	var images, nodes, keys stringList
	fs.StringVar(&f.cfg.Listen, "listen", "127.0.0.1:8080", "address (host:port) to listen on")
	fs.StringVar(&f.cfg.GuestURL, "guest-url", "", "base URL the nodes reach the controller at, e.g. http://10.0.2.2 (a missing port is the listener's; default: the Host each node's request used)")
	fs.StringVar(&f.cfg.Token, "token", "", "operator token of the controller's API (/v1/nodes, imprint nodes); never given to a node (default: a random one, printed)")
	fs.StringVar(&f.db, "db", "sqlite:"+defaultDB, "state database: sqlite:PATH or postgres://USER@HOST/DB (several controllers may share one PostgreSQL database)")
	fs.StringVar(&f.cfg.ID, "id", "", "this controller's name in the nodes' leases; controllers sharing a database need distinct ones (default: the host name)")
	fs.DurationVar(&f.cfg.LeaseTTL, "lease-ttl", 30*time.Second, "how long a node's lease outlives this controller's last renewal")
	fs.DurationVar(&f.cfg.PowerTimeout, "power-timeout", 2*time.Minute, "bound of one power action through a node's BMC (imprint nodes power, reprovision), a cycle's wait for off included")
	fs.StringVar(&f.cfg.Kernel, "kernel", "", "bootstrap kernel (build/bootstrap/<flavour>/vmlinuz)")
	fs.StringVar(&f.cfg.Initrd, "initrd", "", "bootstrap initramfs (build/bootstrap/<flavour>/initramfs.cpio.gz)")
	fs.StringVar(&f.cfg.IPXEEFI, "ipxe-efi", "", "iPXE EFI binary served at /boot/ipxe.efi for UEFI HTTP boot (e.g. /usr/lib/ipxe/snponly.efi; see imprint pxe --dnsmasq)")
	fs.Var(&images, "image", "target image MOUNT=PATH[:FORMAT] (repeatable; / required; FORMAT ext4 by default)")
	fs.Var(&nodes, "node", "node MAC=HOSTNAME[,agent=URL][,ip=ADDR][,group=GROUP][,configdrive=config2-vfat|config2-iso|nocloud-vfat|nocloud-iso] (repeatable)")
	fs.Var(&keys, "ssh-key", "file of SSH public keys for root on every node (repeatable)")
	localBoot := fs.String("local-boot", "exit", "how a provisioned node boots its disk: exit (firmware's next device) or sanboot (first BIOS disk)")
	cmdline := fs.String("cmdline", "", "extra bootstrap kernel parameters, space separated (console= entries replace the default consoles)")
	kernelParams := fs.String("kernel-params", "", "the provisioned OS's kernel command line (default: "+controller.DefaultKernelParams+")")
	network := fs.String("network", "10.0.2.0/24", "admin network of the provisioned nodes (CIDR)")
	gateway := fs.String("gateway", "10.0.2.2", "admin network gateway")
	dns := fs.String("dns", "10.0.2.3", "name servers, comma separated")
	var imageURLs, groupURLs stringList
	fs.Var(&imageURLs, "image-url", "base URL of a stock HTTP server (nginx) serving the same image files (repeatable: the first is used, the others and this controller are the mirrors)")
	fs.Var(&groupURLs, "group-image-url", "GROUP=URL: an image server for the nodes of rack group GROUP (--node ...,group=GROUP) instead of --image-url (repeatable)")
	fs.IntVar(&f.cfg.MaxTransfers, "max-transfers", controller.DefaultMaxTransfers, "image downloads served at once (negative: no limit); the others wait, then get 503 and retry")
	fs.DurationVar(&f.cfg.TransferWait, "transfer-wait", controller.DefaultTransferWait, "how long a download waits for a transfer slot before its 503")
	metricsTokenFile := fs.String("metrics-token-file", "", "file holding the bearer token a scrape of /metrics must bring (default: /metrics is open; it shows no node identity or secret)")
	fs.StringVar(&f.logFormat, "log-format", "text", "log format on stderr: text or json")
	fs.BoolVar(&f.verbose, "v", false, "debug logging")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return f, 0, false
		}
		return f, 2, false
	}
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if fs.NArg() > 0 {
		bad("unexpected argument %q", fs.Arg(0))
	}
	for _, s := range images {
		im, err := parseImageFlag(s)
		if err != nil {
			bad("--image %q: %v", s, err)
			continue
		}
		f.cfg.Images = append(f.cfg.Images, im)
	}
	var sshKeys []string
	for _, file := range keys {
		b, err := os.ReadFile(file)
		if err != nil {
			bad("--ssh-key: %v", err)
			continue
		}
		n := 0
		for _, line := range strings.Split(string(b), "\n") {
			if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
				sshKeys = append(sshKeys, line)
				n++
			}
		}
		if n == 0 {
			bad("--ssh-key %s: no key in the file", file)
		}
	}
	for _, s := range nodes {
		n, err := parseNodeFlag(s)
		if err != nil {
			bad("--node %q: %v", s, err)
			continue
		}
		n.SSHKeys = sshKeys
		n.Cmdline = strings.Fields(*cmdline)
		n.KernelParams = *kernelParams
		f.cfg.Nodes = append(f.cfg.Nodes, n)
	}
	f.cfg.ImageURLs = imageURLs
	for _, s := range groupURLs {
		g, u, ok := strings.Cut(s, "=")
		if !ok || g == "" || u == "" {
			bad("--group-image-url %q: want GROUP=URL", s)
			continue
		}
		if f.cfg.GroupImageURLs == nil {
			f.cfg.GroupImageURLs = map[string][]string{}
		}
		f.cfg.GroupImageURLs[g] = append(f.cfg.GroupImageURLs[g], u)
	}
	if *metricsTokenFile != "" {
		b, err := os.ReadFile(*metricsTokenFile)
		if err != nil {
			bad("--metrics-token-file: %v", err)
		} else if f.cfg.MetricsToken = strings.TrimSpace(string(b)); f.cfg.MetricsToken == "" {
			bad("--metrics-token-file %s: empty", *metricsTokenFile)
		}
	}
	switch lb := pxe.LocalBoot(*localBoot); lb {
	case pxe.LocalExit, pxe.LocalSanboot:
		f.cfg.LocalBoot = lb
	default:
		bad("--local-boot %q: want exit or sanboot", *localBoot)
	}
	var err error
	if f.cfg.Network.Prefix, err = netip.ParsePrefix(*network); err != nil {
		bad("--network: %v", err)
	}
	if f.cfg.Network.Gateway, err = netip.ParseAddr(*gateway); err != nil {
		bad("--gateway: %v", err)
	}
	for _, s := range strings.Split(*dns, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			bad("--dns: %v", err)
			continue
		}
		f.cfg.Network.NameServers = append(f.cfg.Network.NameServers, a)
	}
	switch f.logFormat {
	case "text", "json":
	default:
		bad("--log-format %q: want text or json", f.logFormat)
	}
	if f.cfg.Token == "" {
		f.tokenGenerated = true
		b := make([]byte, 16)
		if _, err := rand.Read(b); err != nil {
			bad("generate a token: %v", err)
		}
		f.cfg.Token = hex.EncodeToString(b)
	}
	if !strings.HasPrefix(f.db, "sqlite:") && !strings.HasPrefix(f.db, "postgres://") && !strings.HasPrefix(f.db, "postgresql://") {
		bad("--db %q: want sqlite:PATH or postgres://USER@HOST/DB", f.db)
	}
	if err := errors.Join(errs...); err != nil {
		fmt.Fprintf(stderr, "imprint controller: %v\n", err)
		return f, 2, false
	}
	return f, 0, true
}

// defaultDB is where the controller keeps its state without --db.
const defaultDB = "/var/lib/imprint/controller.db"

// parseImageFlag parses MOUNT=PATH[:FORMAT]; a suffix after the last colon
// is a format only when it names one.
func parseImageFlag(s string) (controller.Image, error) {
	mount, path, ok := strings.Cut(s, "=")
	if !ok || mount == "" || path == "" {
		return controller.Image{}, errors.New("want MOUNT=PATH[:FORMAT]")
	}
	im := controller.Image{MountPoint: mount, Path: path}
	if i := strings.LastIndexByte(path, ':'); i >= 0 {
		for _, f := range provision.ImageFormats {
			if path[i+1:] == f {
				im.Path, im.Format = path[:i], f
			}
		}
		if im.Format == "" {
			return controller.Image{}, fmt.Errorf("format %q: want one of %v", path[i+1:], provision.ImageFormats)
		}
	}
	return im, nil
}

// parseNodeFlag parses MAC=HOSTNAME[,agent=URL][,ip=ADDR][,group=GROUP].
func parseNodeFlag(s string) (controller.Node, error) {
	parts := strings.Split(s, ",")
	mac, host, ok := strings.Cut(parts[0], "=")
	if !ok || mac == "" || host == "" {
		return controller.Node{}, errors.New("want MAC=HOSTNAME[,agent=URL][,ip=ADDR][,group=GROUP][,configdrive=FORMAT]")
	}
	n := controller.Node{MAC: mac, Hostname: host}
	for _, p := range parts[1:] {
		k, v, _ := strings.Cut(p, "=")
		switch k {
		case "agent":
			n.AgentURL = v
		case "ip":
			n.IP = v
		case "group":
			n.Group = v
		case "configdrive":
			n.ConfigdriveFormat = v
		default:
			return controller.Node{}, fmt.Errorf("unknown option %q (want agent=URL, ip=ADDR, group=GROUP or configdrive=FORMAT)", k)
		}
	}
	return n, nil
}

func runController(ctx context.Context, env *cmdEnv, args []string) int {
	f, code, ok := parseControllerFlags(args, env.stderr)
	if !ok {
		return code
	}
	log := slog.New(logHandler(env.stderr, f.verbose, f.logFormat == "json"))
	cfg := f.cfg
	cfg.Logger = log
	start := time.Now()
	cfg.OnEvent = func(ev controller.Event) { printEvent(env.stdout, start, ev) }
	store, err := controller.OpenStore(ctx, f.db)
	if err != nil {
		fmt.Fprintf(env.stderr, "imprint controller: --db: %v\n", err)
		return 1
	}
	defer store.Close()
	cfg.Store = store
	c, err := controller.New(cfg)
	if err != nil {
		fmt.Fprintf(env.stderr, "imprint controller: %v\n", err)
		return 2
	}
	url, err := c.Start(ctx)
	if err != nil {
		fmt.Fprintf(env.stderr, "imprint controller: %v\n", err)
		return 1
	}
	guest := cfg.GuestURL
	if guest == "" {
		guest = url
	} else if u, err := neturl.Parse(guest); err == nil && u.Port() == "" {
		u.Host = net.JoinHostPort(u.Hostname(), url[strings.LastIndexByte(url, ':')+1:])
		guest = u.String()
	}
	fmt.Fprintf(env.stdout, "controller on %s; nodes chain %s/ipxe?mac=${net0/mac}; state in %s\n", url, guest, redactDB(f.db))
	if f.tokenGenerated {
		fmt.Fprintf(env.stdout, "operator token (imprint nodes --token): %s\n", cfg.Token)
	}
	<-ctx.Done()
	if err := c.Close(); err != nil {
		fmt.Fprintf(env.stderr, "imprint controller: shutdown: %v\n", err)
		return 1
	}
	return 0
}
