package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/imprint-dev/imprint/controller"
	"github.com/imprint-dev/imprint/internal/vmtest"
	"github.com/imprint-dev/imprint/pxe"
)

// Config is one end-to-end run: a node that PXE-boots the bootstrap,
// is provisioned with Image by the reference controller, reboots into the
// provisioned OS, phones home, and (Rounds > 1) is reprovisioned.
type Config struct {
	Dir    string // work directory: disk, serial log, SSH key
	Kernel string // bootstrap kernel and initramfs (make initramfs)
	Initrd string
	// Images are the target OS images by mount point ("/" required; a
	// "/boot" image gets Fuel's /boot partition), each with its Fuel
	// metadata YAML beside it (vmtest.BuildTargetImage makes them).
	Images    []controller.Image
	Hostname  string // default node-1
	MAC       string // default 52:54:00:12:34:56
	DiskSize  int64  // default 6 GiB (sparse)
	Rounds    int    // provisioning rounds; default 2 (provision, then reprovision)
	LocalBoot pxe.LocalBoot
	// Firmware is the node's: SeaBIOS (zero value) or OVMF
	// (vmtest.FirmwareUEFI; its NVRAM is kept in Dir/OVMF_VARS.fd).
	Firmware vmtest.Firmware
	Timeouts Timeouts
	Logger   *slog.Logger
	// Out receives the timeline as it happens (one line a step).
	Out io.Writer
	// Console, when set, also receives the node's serial console.
	Console io.Writer
}

// Timeouts bound each phase (TCG is slow, and slower on a busy host: the
// defaults are generous; they only decide how long a broken run hangs).
type Timeouts struct {
	PXE       time.Duration // machine start or reset to the bootstrap's iPXE script served (default 3m)
	Agent     time.Duration // bootstrap served to the agent's discovery (default 4m)
	Provision time.Duration // discovery to the agent's success (default 20m)
	Reboot    time.Duration // success to the local-boot script served (default 3m)
	OSBoot    time.Duration // local boot to the login prompt, and again to the phone-home (default 20m)
}

func (t *Timeouts) defaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&t.PXE, 3*time.Minute)
	def(&t.Agent, 4*time.Minute)
	def(&t.Provision, 20*time.Minute)
	def(&t.Reboot, 3*time.Minute)
	// A booted-OS round took 3.5 min alone on 2 cores and over 10 min with
	// another VM tier sharing them: TCG slows down with the host.
	def(&t.OSBoot, 20*time.Minute)
}

// Step is one entry of the timeline.
type Step struct {
	Round  int
	Name   string
	At     time.Time
	Took   time.Duration // since the previous step (of this round)
	Detail string
}

// Round is what one provisioning round left to verify.
type Round struct {
	PhoneHome controller.PhoneHome
	// Observed is what the provisioned OS reported over SSH (with the key
	// the controller put in provision.json): hostname, system type, LVs.
	Observed Observed
}

// Observed is the provisioned OS as seen by logging in.
type Observed struct {
	Hostname       string
	SystemType     string   // /etc/nailgun_systemtype
	LogicalVolumes []string // "vg/lv size-in-MiB", from lvs
	Mounts         []string // "target source fstype" of / and /boot, from findmnt
	CloudInit      string   // cloud-init status, once it stopped running
	// CloudInitProblems are the last WARNING/ERROR lines of cloud-init.log.
	CloudInitProblems []string
	// Under UEFI: the boot mode the OS was started in ("uefi" or "bios"),
	// the SecureBoot variable (mokutil --sb-state), and the NVRAM boot
	// entries (efibootmgr -v lines "Boot0004* label<TAB>path").
	BootMode    string
	SecureBoot  string
	BootOrder   string
	BootEntries []string
}

// Result is a run's outcome and where its artifacts are.
type Result struct {
	Steps     []Step
	Rounds    []Round
	Dir       string
	Disk      string
	SerialLog string
	SSHKey    string   // the private key whose public half went into provision.json
	Documents [][]byte // the provision.json the controller posted, one a round
}

const (
	diskSerial     = "IMPRINT-E2E-0"
	guestAgentPort = 9999
	guestSSHPort   = 22
)

// Run drives the loop and returns its timeline; the error says which phase
// of which round failed, with the console's tail.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	res := &Result{Dir: cfg.Dir, Disk: filepath.Join(cfg.Dir, "disk0.img"), SerialLog: filepath.Join(cfg.Dir, "serial.log")}
	keyDir := filepath.Join(cfg.Dir, "ssh")
	if err := os.MkdirAll(keyDir, 0o700); err != nil {
		return nil, err
	}
	key, pub, err := vmtest.NewSSHKey(keyDir)
	if err != nil {
		return nil, err
	}
	res.SSHKey = key
	agentPort, err := vmtest.FreePort()
	if err != nil {
		return nil, err
	}
	sshPort, err := vmtest.FreePort()
	if err != nil {
		return nil, err
	}

	// The controller listens first: the TFTP boot file chains to it.
	var machine *Machine
	power := powerFunc(func(ctx context.Context, mac string) error {
		if machine == nil {
			return errors.New("no machine")
		}
		return machine.Reset()
	})
	store, err := controller.OpenStore(ctx, "sqlite:"+filepath.Join(cfg.Dir, "controller.db"))
	if err != nil {
		return nil, fmt.Errorf("e2e: controller: %w", err)
	}
	defer store.Close()
	ctrl, err := controller.New(controller.Config{
		Listen: "127.0.0.1:0",
		// QEMU user networking: the host is 10.0.2.2 to the node; the
		// port is the listener's.
		GuestURL: "http://10.0.2.2",
		Token:    randomToken(),
		Store:    store,
		Kernel:   cfg.Kernel, Initrd: cfg.Initrd,
		Images:    cfg.Images,
		Nodes:     []controller.Node{{MAC: cfg.MAC, Hostname: cfg.Hostname, SSHKeys: []string{pub}, AgentURL: fmt.Sprintf("http://127.0.0.1:%d", agentPort), Cmdline: []string{"console=ttyS0"}}},
		LocalBoot: cfg.LocalBoot,
		Power:     power,
		Logger:    log.With("component", "controller"),
	})
	if err != nil {
		return nil, fmt.Errorf("e2e: controller: %w", err)
	}
	cctx, stopCtrl := context.WithCancel(ctx)
	defer stopCtrl()
	url, err := ctrl.Start(cctx)
	if err != nil {
		return nil, fmt.Errorf("e2e: controller: %w", err)
	}
	guestURL := "http://10.0.2.2:" + url[strings.LastIndexByte(url, ':')+1:]
	tftp := filepath.Join(cfg.Dir, "tftp")
	if err := os.MkdirAll(tftp, 0o755); err != nil {
		return nil, err
	}
	chain := "#!ipxe\nchain " + guestURL + "/ipxe?mac=${net0/mac}\n"
	if err := os.WriteFile(filepath.Join(tftp, "boot.ipxe"), []byte(chain), 0o644); err != nil {
		return nil, err
	}
	fmt.Fprintf(cfg.Out, "controller %s (the node sees %s); work directory %s\n", url, guestURL, cfg.Dir)

	tl := &timeline{out: cfg.Out}
	for round := 1; round <= cfg.Rounds; round++ {
		tl.startRound(round)
		evFrom := len(ctrl.Events())
		if round == 1 {
			machine, err = StartMachine(MachineConfig{
				Dir: cfg.Dir, MAC: cfg.MAC, UUID: nodeUUID(cfg.MAC), TFTPDir: tftp, BootFile: "boot.ipxe",
				Disks:    []Disk{{Path: res.Disk, Size: cfg.DiskSize, Serial: diskSerial}},
				Forward:  map[int]int{agentPort: guestAgentPort, sshPort: guestSSHPort},
				Console:  cfg.Console,
				Firmware: cfg.Firmware, Vars: filepath.Join(cfg.Dir, "OVMF_VARS.fd"),
			})
			if err != nil {
				return res, err
			}
			defer machine.Stop(30 * time.Second)
			fw := "SeaBIOS"
			if cfg.Firmware.UEFI() {
				fw = "OVMF (" + string(cfg.Firmware) + "), iPXE EFI"
			}
			tl.step("machine started", "QEMU (TCG), "+fw+", boot order: network, then disk")
		} else {
			if err := ctrl.Reprovision(ctx, cfg.MAC); err != nil {
				return res, fmt.Errorf("e2e: round %d: reprovision: %w", round, err)
			}
			tl.step("reprovision requested", "node flipped back to the bootstrap and reset")
		}
		fail := func(phase string, err error) (*Result, error) {
			res.Steps = tl.steps
			return res, fmt.Errorf("e2e: round %d: %s: %w\n--- serial console (tail) ---\n%s", round, phase, err, machine.Tail(60))
		}
		wait := func(p controller.Phase, d time.Duration) (controller.Event, error) {
			wctx, cancel := context.WithTimeout(ctx, d)
			defer cancel()
			return waitEvent(wctx, ctrl.Events, machine, cfg.MAC, p, evFrom)
		}
		ev, err := wait(controller.PhaseBootstrap, cfg.Timeouts.PXE)
		if err != nil {
			return fail("PXE boot", err)
		}
		tl.step("PXE boot", ev.Detail)
		if ev, err = wait(controller.PhaseDiscovered, cfg.Timeouts.Agent); err != nil {
			return fail("agent up", err)
		}
		tl.step("agent up", ev.Detail)
		if phase, err := untilOSUp(ctx, tl, machine, cfg.Timeouts, "provisioning", wait); err != nil {
			return fail(phase, err)
		}
		ph, _ := ctrl.PhoneHome(cfg.MAC)
		obs, err := observe(ctx, res.SSHKey, sshPort)
		if err != nil {
			return fail("login", err)
		}
		tl.step("logged in", fmt.Sprintf("ssh root@ with the provisioned key: hostname %s, %d LVs", obs.Hostname, len(obs.LogicalVolumes)))
		res.Rounds = append(res.Rounds, Round{PhoneHome: ph, Observed: obs})
		if doc, ok := ctrl.Document(cfg.MAC); ok {
			res.Documents = append(res.Documents, doc)
		}
	}
	res.Steps = tl.steps
	// A clean shutdown, so the disk image is consistent for inspection.
	if err := sshRun(ctx, res.SSHKey, sshPort, "systemctl poweroff"); err != nil {
		log.Warn("poweroff over ssh", "err", err)
	}
	select {
	case <-machine.Exited():
	case <-time.After(2 * time.Minute):
		log.Warn("node still running 2m after poweroff; stopping QEMU")
	}
	machine.Stop(30 * time.Second)
	return res, nil
}

func (c *Config) defaults() error {
	var missing []string
	if len(c.Images) == 0 {
		missing = append(missing, "images")
	}
	for name, p := range map[string]string{"kernel": c.Kernel, "initrd": c.Initrd, "dir": c.Dir} {
		if p == "" {
			missing = append(missing, name)
		} else if _, err := os.Stat(p); err != nil {
			return fmt.Errorf("e2e: %s: %w", name, err)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("e2e: missing %s", strings.Join(missing, ", "))
	}
	if c.Hostname == "" {
		c.Hostname = "node-1"
	}
	if c.MAC == "" {
		c.MAC = "52:54:00:12:34:56"
	}
	if c.DiskSize == 0 {
		c.DiskSize = 6 << 30
	}
	if c.Rounds == 0 {
		c.Rounds = 2
	}
	if c.LocalBoot == "" {
		c.LocalBoot = pxe.LocalSanboot
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Out == nil {
		c.Out = io.Discard
	}
	c.Timeouts.defaults()
	return nil
}

// waitEvent waits for the node's phase among the events after from, failing
// at once when the controller records a failure or QEMU exits.
func waitEvent(ctx context.Context, events func() []controller.Event, m *Machine, mac string, p controller.Phase, from int) (controller.Event, error) {
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		evs := events()
		for _, ev := range evs[min(from, len(evs)):] {
			if !strings.EqualFold(ev.MAC, mac) {
				continue
			}
			if ev.Phase == p {
				return ev, nil
			}
			if ev.Phase == controller.PhaseFailed {
				return ev, fmt.Errorf("controller: node failed: %s", ev.Detail)
			}
		}
		select {
		case <-tick.C:
		case <-m.Exited():
			return controller.Event{}, fmt.Errorf("QEMU exited while waiting for %s", p)
		case <-ctx.Done():
			return controller.Event{}, fmt.Errorf("no %s event: %w", p, context.Cause(ctx))
		}
	}
}

type powerFunc func(ctx context.Context, mac string) error

func (f powerFunc) Reset(ctx context.Context, mac string) error { return f(ctx, mac) }

// untilOSUp follows a round from the agent provisioning the node to the
// installed OS phoning home, each step on the timeline: provisioned, the
// local-boot script served, the login prompt on the console, cloud-init's
// phone-home. On failure it returns the phase that failed (provisioning
// is named so) with the error.
func untilOSUp(ctx context.Context, tl *timeline, machine *Machine, to Timeouts, provisioning string,
	wait func(controller.Phase, time.Duration) (controller.Event, error)) (string, error) {
	ev, err := wait(controller.PhaseProvisioned, to.Provision)
	if err != nil {
		return provisioning, err
	}
	tl.step("provisioned", ev.Detail)
	if ev, err = wait(controller.PhaseLocal, to.Reboot); err != nil {
		return "reboot", err
	}
	tl.step("rebooted", "iPXE got the local-boot script: "+ev.Detail)
	mark := machine.Mark()
	octx, cancel := context.WithTimeout(ctx, to.OSBoot)
	// The getty on the serial console: the OS is up (Debian's grub
	// boots "quiet", so neither kernel nor systemd say more there).
	_, line, err := machine.WaitLine(octx, mark, " login:")
	cancel()
	if err != nil {
		return "OS boot", err
	}
	tl.step("OS up", line)
	if ev, err = wait(controller.PhaseOSUp, to.OSBoot); err != nil {
		return "cloud-init", err
	}
	tl.step("cloud-init done", "phone-home: "+ev.Detail)
	return "", nil
}

type timeline struct {
	out   io.Writer
	round int
	start time.Time
	last  time.Time
	steps []Step
}

func (t *timeline) startRound(r int) {
	t.round = r
	t.last = time.Now()
	if t.start.IsZero() {
		t.start = t.last
	}
	fmt.Fprintf(t.out, "round %d\n", r)
}

func (t *timeline) step(name, detail string) {
	now := time.Now()
	s := Step{Round: t.round, Name: name, At: now, Took: now.Sub(t.last), Detail: detail}
	t.last = now
	t.steps = append(t.steps, s)
	fmt.Fprintf(t.out, "  %7.1fs  +%6.1fs  %-22s %s\n", now.Sub(t.start).Seconds(), s.Took.Seconds(), name, controller.Printable(detail))
}

func randomToken() string {
	b := make([]byte, 16)
	f, err := os.Open("/dev/urandom")
	if err == nil {
		io.ReadFull(f, b)
		f.Close()
	}
	return fmt.Sprintf("%x", b)
}

// nodeUUID is a stable SMBIOS UUID for the node, derived from its MAC (a
// real server's comes from its vendor; the agent reports it as node id).
func nodeUUID(mac string) string {
	hw, err := net.ParseMAC(mac)
	if err != nil || len(hw) != 6 {
		return ""
	}
	return fmt.Sprintf("1a9e1a9e-0000-4000-8000-%x", []byte(hw))
}
