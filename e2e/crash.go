package e2e

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/imprint-dev/imprint/api"
	"github.com/imprint-dev/imprint/controller"
	"github.com/imprint-dev/imprint/internal/vmtest"
)

// CrashResult is what RunCrash saw.
type CrashResult struct {
	Result
	KilledAt   string // the event the controller was killed after
	Events     []controller.Event
	Restarts   int
	ObservedOS Observed // after the provisioning, over SSH
}

// RunCrash is the loop with `imprint controller` as a process on an SQLite
// database: it is killed with SIGKILL while the node writes its image and
// started again on the same database and address. The node must finish,
// be flipped and boot its OS; then the machine is reset and must boot the
// OS again (local boot), not the bootstrap. The timeline is read over the
// controller's operator API (/v1/nodes).
func RunCrash(ctx context.Context, cfg Config, imprintBin string) (*CrashResult, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	res := &CrashResult{Result: Result{Dir: cfg.Dir, Disk: filepath.Join(cfg.Dir, "disk0.img"), SerialLog: filepath.Join(cfg.Dir, "serial.log")}}
	keyDir := filepath.Join(cfg.Dir, "ssh")
	if err := os.MkdirAll(keyDir, 0o700); err != nil {
		return nil, err
	}
	key, _, err := vmtest.NewSSHKey(keyDir)
	if err != nil {
		return nil, err
	}
	res.SSHKey = key
	var ports [3]int
	for i := range ports {
		if ports[i], err = vmtest.FreePort(); err != nil {
			return nil, err
		}
	}
	ctlPort, agentPort, sshPort := ports[0], ports[1], ports[2]
	token := randomToken()
	args := []string{"controller", "--listen", "127.0.0.1:" + strconv.Itoa(ctlPort), "--guest-url", "http://10.0.2.2",
		"--token", token, "--db", "sqlite:" + filepath.Join(cfg.Dir, "state", "controller.db"),
		"--kernel", cfg.Kernel, "--initrd", cfg.Initrd, "--local-boot", string(cfg.LocalBoot),
		"--node", fmt.Sprintf("%s=%s,agent=http://127.0.0.1:%d", cfg.MAC, cfg.Hostname, agentPort),
		"--ssh-key", key + ".pub", "--cmdline", "console=ttyS0", "--log-format", "json"}
	for _, im := range cfg.Images {
		args = append(args, "--image", im.MountPoint+"="+im.Path+":"+im.Format)
	}
	ctl := &ctlProcess{bin: imprintBin, args: args, dir: cfg.Dir, log: cfg.Logger}
	if err := ctl.start(ctx); err != nil {
		return nil, err
	}
	defer ctl.kill()
	cl := &api.ControllerClient{URL: "http://127.0.0.1:" + strconv.Itoa(ctlPort), Token: token}
	events := func() []controller.Event {
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		n, err := cl.Node(rctx, cfg.MAC)
		if err != nil {
			return nil // the controller is down or restarting: no news
		}
		out := make([]controller.Event, 0, len(n.Events))
		for _, ev := range n.Events {
			out = append(out, controller.Event{Time: ev.Time, MAC: n.MAC, Round: ev.Round, Phase: controller.Phase(ev.Phase), Detail: ev.Detail})
		}
		res.Events = out
		return out
	}
	tftp := filepath.Join(cfg.Dir, "tftp")
	if err := os.MkdirAll(tftp, 0o755); err != nil {
		return nil, err
	}
	chain := fmt.Sprintf("#!ipxe\nchain http://10.0.2.2:%d/ipxe?mac=${net0/mac}\n", ctlPort)
	if err := os.WriteFile(filepath.Join(tftp, "boot.ipxe"), []byte(chain), 0o644); err != nil {
		return nil, err
	}
	fmt.Fprintf(cfg.Out, "controller process %s (pid %d), state %s/state/controller.db; work directory %s\n", cl.URL, ctl.pid(), cfg.Dir, cfg.Dir)
	tl := &timeline{out: cfg.Out}
	tl.startRound(1)
	machine, err := StartMachine(MachineConfig{
		Dir: cfg.Dir, MAC: cfg.MAC, UUID: nodeUUID(cfg.MAC), TFTPDir: tftp, BootFile: "boot.ipxe",
		Disks:   []Disk{{Path: res.Disk, Size: cfg.DiskSize, Serial: diskSerial}},
		Forward: map[int]int{agentPort: guestAgentPort, sshPort: guestSSHPort},
		Console: cfg.Console,
	})
	if err != nil {
		return res, err
	}
	defer machine.Stop(30 * time.Second)
	tl.step("machine started", "QEMU (TCG), boot order: network, then disk")
	fail := func(phase string, err error) (*CrashResult, error) {
		res.Steps = tl.steps
		return res, fmt.Errorf("e2e crash: %s: %w\n--- controller output (tail) ---\n%s\n--- serial console (tail) ---\n%s", phase, err, ctl.tail(30), machine.Tail(60))
	}
	wait := func(p controller.Phase, d time.Duration, from int) (controller.Event, error) {
		wctx, cancel := context.WithTimeout(ctx, d)
		defer cancel()
		return waitEvent(wctx, events, machine, cfg.MAC, p, from)
	}
	ev, err := wait(controller.PhaseBootstrap, cfg.Timeouts.PXE, 0)
	if err != nil {
		return fail("PXE boot", err)
	}
	tl.step("PXE boot", ev.Detail)
	if ev, err = wait(controller.PhaseDiscovered, cfg.Timeouts.Agent, 0); err != nil {
		return fail("agent up", err)
	}
	tl.step("agent up", ev.Detail)
	// Mid-provision: the agent is writing the image.
	if ev, err = waitImages(ctx, events, machine, cfg.MAC, cfg.Timeouts.Provision); err != nil {
		return fail("image writing", err)
	}
	tl.step("writing the image", ev.Detail)
	res.KilledAt = ev.Detail
	if err := ctl.kill(); err != nil {
		return fail("SIGKILL", err)
	}
	tl.step("controller SIGKILLed", fmt.Sprintf("pid %d, after: %s", ctl.pid(), ev.Detail))
	time.Sleep(2 * time.Second) // a moment of absence: the agent's heartbeats fail
	if err := ctl.start(ctx); err != nil {
		return fail("restart", err)
	}
	res.Restarts++
	tl.step("controller restarted", fmt.Sprintf("pid %d, same database and address", ctl.pid()))
	if phase, err := untilOSUp(ctx, tl, machine, cfg.Timeouts, "provisioning after the restart", func(p controller.Phase, d time.Duration) (controller.Event, error) {
		return wait(p, d, 0)
	}); err != nil {
		return fail(phase, err)
	}
	if res.ObservedOS, err = observe(ctx, res.SSHKey, sshPort); err != nil {
		return fail("login", err)
	}
	tl.step("logged in", "hostname "+res.ObservedOS.Hostname)

	// Reset: a provisioned node network-boots again and must get its disk.
	from := len(events())
	mark := machine.Mark()
	if err := machine.Reset(); err != nil {
		return fail("reset", err)
	}
	tl.step("machine reset", "no reprovision asked")
	if ev, err = wait(controller.PhaseLocal, cfg.Timeouts.PXE, from); err != nil {
		return fail("PXE after the reset", err)
	}
	tl.step("PXE after reset", ev.Detail)
	octx, cancel := context.WithTimeout(ctx, cfg.Timeouts.OSBoot)
	_, line, err := machine.WaitLine(octx, mark, " login:")
	cancel()
	if err != nil {
		return fail("OS boot after the reset", err)
	}
	tl.step("OS up again", line)
	if _, err := observe(ctx, res.SSHKey, sshPort); err != nil {
		return fail("login after the reset", err)
	}
	tl.step("logged in again", "the provisioned OS, not the bootstrap")
	events()
	res.Steps = tl.steps
	if err := sshRun(ctx, res.SSHKey, sshPort, "systemctl poweroff"); err != nil {
		cfg.Logger.Warn("poweroff over ssh", "err", err)
	}
	select {
	case <-machine.Exited():
	case <-time.After(2 * time.Minute):
	}
	machine.Stop(30 * time.Second)
	return res, nil
}

// waitImages waits for a progress event of the images step with bytes
// written: the node is mid-provision.
func waitImages(ctx context.Context, events func() []controller.Event, m *Machine, mac string, d time.Duration) (controller.Event, error) {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	for {
		for _, ev := range events() {
			if ev.Phase == controller.PhaseProvisioned {
				return ev, errors.New("the node finished before the controller could be killed mid-provision")
			}
			if ev.Phase == controller.PhaseFailed {
				return ev, fmt.Errorf("controller: node failed: %s", ev.Detail)
			}
			if ev.Phase == controller.PhaseProgress && strings.Contains(ev.Detail, `"images"`) {
				return ev, nil
			}
		}
		select {
		case <-time.After(200 * time.Millisecond):
		case <-m.Exited():
			return controller.Event{}, errors.New("QEMU exited")
		case <-ctx.Done():
			return controller.Event{}, fmt.Errorf("no images progress: %w", ctx.Err())
		}
	}
}

// ctlProcess is `imprint controller` run as a process.
type ctlProcess struct {
	bin  string
	args []string
	dir  string
	log  interface {
		Info(string, ...any)
		Warn(string, ...any)
	}
	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{} // closed once cmd's Wait returned
	n      int
}

func httpGet(ctx context.Context, url string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

func (p *ctlProcess) start(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.n++
	logf, err := os.Create(filepath.Join(p.dir, fmt.Sprintf("controller-%d.log", p.n)))
	if err != nil {
		return err
	}
	cmd := exec.Command(p.bin, p.args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start %s controller: %w", p.bin, err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); logf.Close(); close(exited) }()
	p.cmd, p.exited = cmd, exited
	// Up when its operator API answers.
	url := ""
	for i, a := range p.args {
		if a == "--listen" {
			url = "http://" + p.args[i+1]
		}
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		resp, err := httpGet(ctx, url+"/healthz")
		if err == nil && resp == 200 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("controller process not up on %s after 30s: %v\n%s", url, err, p.tailLocked(30))
		}
	}
}

func (p *ctlProcess) pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || p.cmd.Process == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// kill sends SIGKILL and waits until the process is gone.
func (p *ctlProcess) kill() error {
	p.mu.Lock()
	cmd, exited := p.cmd, p.exited
	p.mu.Unlock()
	if cmd == nil || cmd.Process == nil {
		return nil
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	select {
	case <-exited:
		return nil
	case <-time.After(10 * time.Second):
		return fmt.Errorf("controller pid %d still alive 10s after SIGKILL", cmd.Process.Pid)
	}
}

func (p *ctlProcess) tail(n int) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.tailLocked(n)
}

func (p *ctlProcess) tailLocked(n int) string {
	b, _ := os.ReadFile(filepath.Join(p.dir, fmt.Sprintf("controller-%d.log", p.n)))
	return vmtest.TailLines(string(b), n)
}
