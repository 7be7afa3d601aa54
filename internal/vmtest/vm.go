package vmtest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/imprint-dev/imprint/api"
)

// QEMU is the emulator binary.
const QEMU = "qemu-system-x86_64"

// AgentPort is the agent's port in the guest (imprint agent's default).
const AgentPort = 9999

// Disk is one virtual disk: a raw sparse image file on virtio-blk, or on
// virtio-scsi.
type Disk struct {
	Size   int64  // bytes
	Serial string // virtio-blk serial (max 20 bytes); the guest's /sys/block/vdX/serial
	// Bus is BusVirtioBlk (the default: vda, vdb, ...) or BusSCSI: a
	// scsi-hd on one virtio-scsi controller, SCSI target = its index among
	// the SCSI disks, LUN 0 (sda, sdb, ... in that order); Serial is then
	// the unit serial number.
	Bus string
	// Path attaches an existing image (a previous VM's disk: reboot tests)
	// instead of creating a new sparse one; Size is then ignored.
	Path string
	// WWN is a SCSI disk's world wide name (scsi-hd wwn=, e.g.
	// "0x5000c50015ea71ac").
	WWN string
	// Shared lets several disks of the VM be the same image file
	// (share-rw=on): the paths of one multipath disk.
	Shared bool
}

// Disk buses.
const (
	BusVirtioBlk = "virtio-blk"
	BusSCSI      = "scsi"
)

// NetBoot boots from the NIC's iPXE ROM through QEMU's built-in DHCP/TFTP
// server instead of -kernel/-initrd; the disks come next in the boot order.
type NetBoot struct {
	TFTPDir  string // served by QEMU's TFTP server
	BootFile string // the DHCP boot file name in TFTPDir (an iPXE script)
}

// Options configure a VM.
type Options struct {
	Disks       []Disk
	Cmdline     []string      // extra kernel parameters
	Token       string        // agent bearer token; default random
	MemoryMiB   int           // default 1024
	CPUs        int           // default 2
	BootTimeout time.Duration // QEMU start to agent ready; default 180s
	StopTimeout time.Duration // poweroff to QEMU exit before it is killed; default 30s
	Image       *Image        // default FindImage (built if missing)
	// NetBoot: PXE instead of a direct kernel boot; the kernel command line
	// (token, imprint.on_exit=poweroff) is then the iPXE script's business
	// and Cmdline is ignored.
	NetBoot *NetBoot
	// Ready is the serial console line marking success (default "imprint
	// agent ready", then /healthz is checked and Client set). Any other
	// marker, e.g. a local disk's boot message, only waits for the line.
	Ready string
	// DiskBoot boots the first disk through the firmware (SeaBIOS, then
	// the disk's boot code: the grub of a provisioned OS), with no kernel,
	// initramfs or network boot; Image and Cmdline are ignored and Ready
	// must be set (e.g. KernelBanner).
	DiskBoot bool
	// Firmware is SeaBIOS (the zero value) or OVMF (FirmwareUEFI,
	// FirmwareSecureBoot). A direct kernel boot under OVMF goes through
	// the kernel's EFI stub: the ramdisk sees /sys/firmware/efi.
	Firmware Firmware
	// Vars is the OVMF NVRAM file: an existing one (a previous VM's
	// VM.Vars: the same machine's NVRAM) is used as is, else a copy of the
	// firmware's template is made in the VM's directory.
	Vars string
}

// KernelBanner is the first line a Linux kernel prints on a console=ttyS0
// serial console: the Ready marker of a DiskBoot that got through grub.
const KernelBanner = "Linux version "

// VM is a running guest.
type VM struct {
	Dir       string   // the test's directory for this VM
	SerialLog string   // path of the serial console log
	Disks     []string // image paths, in Options.Disks order (vda, vdb, ...)
	Image     Image
	BaseURL   string // http://127.0.0.1:PORT
	SSHAddr   string // DiskBoot: 127.0.0.1:PORT forwarded to the guest's port 22
	Token     string
	BootTime  time.Duration // QEMU start to the agent's ready line
	Client    *api.Client   // the agent's API with Token
	Vars      string        // OVMF NVRAM file (UEFI firmware only)

	opts    Options
	netns   *NetNS // QEMU runs in it (NetOptions.NetNS)
	cmd     *exec.Cmd
	console *lineWatcher
	started time.Time
	exited  chan struct{}
	waitErr error
	stop    sync.Once
}

// BootErrorKind classifies why a guest did not come up.
type BootErrorKind string

// Boot failure kinds.
const (
	KernelPanic   BootErrorKind = "kernel panic"
	AgentExited   BootErrorKind = "agent or ramdisk-init exited"
	QEMUExited    BootErrorKind = "qemu exited"
	BootTimeout   BootErrorKind = "boot timeout"
	APIUnanswered BootErrorKind = "api did not answer"
)

// BootError is a guest that did not reach a serving agent; it carries the
// tail of the serial log.
type BootError struct {
	Kind    BootErrorKind
	Detail  string
	Elapsed time.Duration
	Tail    string
}

func (e *BootError) Error() string {
	return fmt.Sprintf("vmtest: %s after %.1fs: %s\n--- serial console (tail) ---\n%s", e.Kind, e.Elapsed.Seconds(), e.Detail, e.Tail)
}

// Start boots a VM and waits for its agent; any failure fails the test
// with the serial log's tail. The VM is stopped in t.Cleanup.
func Start(t testing.TB, opts Options) *VM {
	t.Helper()
	vm, err := Boot(t, opts)
	if err != nil {
		t.Fatal(err)
	}
	return vm
}

// Boot is Start returning the failure instead of failing the test; the
// returned VM (nil on error) is stopped in t.Cleanup either way.
func Boot(t testing.TB, opts Options) (*VM, error) {
	t.Helper()
	switch {
	case opts.DiskBoot:
		if opts.Ready == "" {
			return nil, fmt.Errorf("vmtest: DiskBoot needs a Ready marker (the booted OS has no agent)")
		}
		if len(opts.Disks) == 0 {
			return nil, fmt.Errorf("vmtest: DiskBoot needs a disk")
		}
		if _, err := exec.LookPath(QEMU); err != nil {
			return nil, fmt.Errorf("vmtest: %w", err)
		}
		if opts.Image == nil {
			opts.Image = &Image{}
		}
	case opts.Image == nil:
		im := Require(t)
		opts.Image = &im
	}
	if opts.MemoryMiB == 0 {
		opts.MemoryMiB = 1024
	}
	if opts.CPUs == 0 {
		opts.CPUs = 2
	}
	if opts.BootTimeout == 0 {
		opts.BootTimeout = 180 * time.Second
	}
	if opts.StopTimeout == 0 {
		opts.StopTimeout = 30 * time.Second
	}
	if opts.Ready == "" {
		opts.Ready = readyMarker
	}
	if opts.Token == "" {
		opts.Token = randomToken()
	}
	vm := newVM(t, *opts.Image, opts)
	args, err := vm.qemuArgs()
	if err != nil {
		return nil, err
	}
	if err := vm.launch(t, args); err != nil {
		return nil, err
	}
	if err := vm.ready(t, opts.Ready == readyMarker); err != nil {
		return nil, err
	}
	return vm, nil
}

func newVM(t testing.TB, im Image, opts Options) *VM {
	vm := &VM{Dir: t.TempDir(), Image: im, Token: opts.Token, opts: opts, exited: make(chan struct{})}
	vm.SerialLog = filepath.Join(vm.Dir, "serial.log")
	return vm
}

// launch starts QEMU with args, its console going to SerialLog and watched
// for the Ready marker; the guest is stopped in t.Cleanup.
func (vm *VM) launch(t testing.TB, args []string) error {
	logf, err := os.Create(vm.SerialLog)
	if err != nil {
		return err
	}
	vm.console = newLineWatcher(logf, vm.opts.Ready)
	t.Logf("vmtest: %s %s", QEMU, strings.Join(args, " "))
	vm.started = time.Now()
	vm.cmd, err = startQEMUIn(vm.netns, args, vm.console, func(err error) {
		vm.waitErr = err
		logf.Close()
		close(vm.exited)
	})
	if err != nil {
		logf.Close()
		return err
	}
	t.Cleanup(func() {
		if err := vm.Stop(); err != nil {
			t.Logf("vmtest: stop: %v", err)
		}
		if t.Failed() {
			t.Logf("vmtest: serial console of %s (tail):\n%s", vm.Dir, vm.Tail(120))
		}
	})
	return nil
}

// ready waits for the Ready line and, with checkAPI, for the agent's API
// (then Client is set); on failure QEMU is killed.
func (vm *VM) ready(t testing.TB, checkAPI bool) error {
	if err := vm.waitReady(checkAPI); err != nil {
		vm.kill()
		return err
	}
	if !checkAPI {
		t.Logf("vmtest: %q after %.1fs", vm.opts.Ready, vm.BootTime.Seconds())
		return nil
	}
	vm.Client = vm.apiClient(vm.BaseURL, vm.Token)
	t.Logf("vmtest: boot-to-API %.1fs (TCG), initramfs %.1f MiB (%s)", vm.BootTime.Seconds(),
		float64(vm.Image.Size())/(1<<20), vm.Image.Initrd)
	return nil
}

func (vm *VM) qemuArgs() ([]string, error) {
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	vm.BaseURL = "http://127.0.0.1:" + strconv.Itoa(port)
	cmdline := append([]string{"console=ttyS0", "panic=-1", "imprint.token=" + vm.Token, "imprint.on_exit=poweroff"}, vm.opts.Cmdline...)
	netdev := fmt.Sprintf("user,id=n0,hostfwd=tcp:127.0.0.1:%d-:%d", port, AgentPort)
	if vm.opts.DiskBoot { // a provisioned OS: its sshd too
		sp, err := FreePort()
		if err != nil {
			return nil, err
		}
		netdev += fmt.Sprintf(",hostfwd=tcp:127.0.0.1:%d-:22", sp)
		vm.SSHAddr = "127.0.0.1:" + strconv.Itoa(sp)
	}
	args := []string{
		"-accel", "tcg", "-smp", strconv.Itoa(vm.opts.CPUs), "-m", strconv.Itoa(vm.opts.MemoryMiB),
		"-nodefaults", "-display", "none", "-serial", "stdio", "-no-reboot",
	}
	uefi := vm.opts.Firmware.UEFI()
	if uefi {
		vm.Vars = vm.opts.Vars
		if vm.Vars == "" {
			vm.Vars = filepath.Join(vm.Dir, "OVMF_VARS.fd")
		}
	}
	fw, err := FirmwareArgs(vm.opts.Firmware, vm.Vars)
	if err != nil {
		return nil, err
	}
	args = append(args, fw...)
	// OVMF takes its boot order from the devices' bootindex (fw_cfg) when
	// there is one, not from -boot order.
	nicBoot, diskBoot := "", func(int) string { return "" }
	if nb := vm.opts.NetBoot; vm.opts.DiskBoot {
		// A VGA card as real machines have: Debian's grub.cfg (gfxterm,
		// load_video) stalls before loading the kernel without one.
		if uefi {
			diskBoot = func(i int) string { return fmt.Sprintf(",bootindex=%d", i+1) }
		} else {
			args = append(args, "-boot", "order=c")
		}
		args = append(args, "-device", "VGA")
	} else if nb != nil {
		netdev += ",tftp=" + nb.TFTPDir + ",bootfile=" + nb.BootFile
		if uefi {
			// No bootindex: OVMF would put every network entry of the NIC
			// before the disks at each boot (see e2e.MachineConfig).
			nicBoot = ",romfile=" + IPXEEFIROM
		} else {
			args = append(args, "-boot", "order=nc")
		}
	} else {
		args = append(args, "-kernel", vm.Image.Kernel, "-initrd", vm.Image.Initrd, "-append", strings.Join(cmdline, " "))
	}
	args = append(args, "-device", "virtio-rng-pci", "-netdev", netdev, "-device", "virtio-net-pci,netdev=n0"+nicBoot)
	paths, dargs, err := DiskArgs(vm.Dir, vm.opts.Disks, diskBoot)
	if err != nil {
		return nil, err
	}
	vm.Disks = paths
	args = append(args, dargs...)
	return args, nil
}

// Markers on the serial console.
const (
	readyMarker = "imprint agent ready"
	panicMarker = "Kernel panic"
)

var exitMarkers = []string{"imprint agent exited", "imprint ramdisk-init failed", "imprint ramdisk-init: refusing"}

// waitReady waits for the Ready line, then with checkAPI for /healthz.
func (vm *VM) waitReady(checkAPI bool) error {
	deadline := time.NewTimer(vm.opts.BootTimeout)
	defer deadline.Stop()
	fail := func(kind BootErrorKind, detail string) error {
		return &BootError{Kind: kind, Detail: detail, Elapsed: time.Since(vm.started), Tail: vm.Tail(60)}
	}
	for {
		select {
		case ev := <-vm.console.events:
			switch ev.kind {
			case vm.opts.Ready:
				vm.BootTime = time.Since(vm.started)
				if !checkAPI {
					return nil
				}
				return vm.waitAPI()
			case panicMarker:
				// Let the panic message and trace reach the log.
				select {
				case <-vm.exited:
				case <-time.After(3 * time.Second):
				}
				return fail(KernelPanic, ev.line)
			default:
				select {
				case <-vm.exited:
				case <-time.After(2 * time.Second):
				}
				return fail(AgentExited, ev.line)
			}
		case <-vm.exited:
			return fail(QEMUExited, fmt.Sprintf("%v before the agent was ready", vm.waitErr))
		case <-deadline.C:
			return fail(BootTimeout, fmt.Sprintf("no %q line within %v", vm.opts.Ready, vm.opts.BootTimeout))
		}
	}
}

// apiClient is a client of the agent at url (60 s a request).
func (vm *VM) apiClient(url, token string) *api.Client {
	return &api.Client{URL: url, Token: token, HTTP: &http.Client{Timeout: 60 * time.Second}}
}

// waitAPI checks that /healthz answers through the port forward (bounded).
func (vm *VM) waitAPI() error {
	c := vm.apiClient(vm.BaseURL, "")
	deadline := time.Now().Add(20 * time.Second)
	var last error
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		last = c.Healthz(ctx)
		cancel()
		if last == nil {
			return nil
		}
		select {
		case <-vm.exited:
			return &BootError{Kind: QEMUExited, Detail: fmt.Sprintf("after the ready line: %v", vm.waitErr), Elapsed: time.Since(vm.started), Tail: vm.Tail(60)}
		case <-time.After(250 * time.Millisecond):
		}
	}
	return &BootError{Kind: APIUnanswered, Detail: fmt.Sprintf("GET %s/healthz: %v", vm.BaseURL, last), Elapsed: time.Since(vm.started), Tail: vm.Tail(60)}
}

// Stop powers the guest off through the agent (POST /v1/poweroff), waits
// at most StopTimeout for QEMU to exit, then kills it. It is idempotent.
func (vm *VM) Stop() error {
	var err error
	vm.stop.Do(func() {
		select {
		case <-vm.exited:
			return
		default:
		}
		if vm.Client != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			perr := vm.Client.PowerOff(ctx)
			cancel()
			if perr == nil {
				select {
				case <-vm.exited:
					return
				case <-time.After(vm.opts.StopTimeout):
					err = fmt.Errorf("guest still running %v after POST /v1/poweroff; killed", vm.opts.StopTimeout)
				}
			} else {
				err = fmt.Errorf("POST /v1/poweroff: %w; killed QEMU", perr)
			}
		}
		vm.kill()
	})
	return err
}

// WaitExit waits at most d for QEMU to exit (a guest powering itself off).
func (vm *VM) WaitExit(d time.Duration) error {
	select {
	case <-vm.exited:
		return nil
	case <-time.After(d):
		return fmt.Errorf("vmtest: QEMU still running after %v", d)
	}
}

func (vm *VM) kill() {
	select {
	case <-vm.exited:
		return
	default:
	}
	_ = vm.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-vm.exited:
	case <-time.After(5 * time.Second):
		_ = vm.cmd.Process.Kill()
		<-vm.exited
	}
}

// Tail returns the last n lines of the serial console.
func (vm *VM) Tail(n int) string {
	b, err := os.ReadFile(vm.SerialLog)
	if err != nil {
		return fmt.Sprintf("(serial log unreadable: %v)", err)
	}
	return TailLines(string(b), n)
}

// Console returns the whole serial console log so far.
func (vm *VM) Console() string {
	b, _ := os.ReadFile(vm.SerialLog)
	return string(b)
}

// TailLines returns the last n lines of s (a console log).
func TailLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago,
// for QEMU's host forwards.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("vmtest: pick a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// lineWatcher copies the console into the log file and reports the lines
// holding a marker.
type lineWatcher struct {
	ready     string
	readySeen bool // the Ready marker was reported from a line not yet ended
	mu        sync.Mutex
	w         *os.File
	buf       []byte
	events    chan consoleEvent
}

type consoleEvent struct{ kind, line string }

func newLineWatcher(w *os.File, ready string) *lineWatcher {
	return &lineWatcher{w: w, ready: ready, events: make(chan consoleEvent, 64)}
}

func (lw *lineWatcher) Write(p []byte) (int, error) {
	lw.mu.Lock()
	defer lw.mu.Unlock()
	n, err := lw.w.Write(p)
	lw.buf = append(lw.buf, p...)
	for {
		i := bytes.IndexByte(lw.buf, '\n')
		if i < 0 {
			break
		}
		lw.scan(string(lw.buf[:i]))
		lw.buf = lw.buf[i+1:]
	}
	if len(lw.buf) > 64<<10 { // a line without end: scan what we have
		lw.scan(string(lw.buf))
		lw.buf = lw.buf[:0]
	}
	// A prompt ("host login: ") ends no line until someone types: the
	// Ready marker counts in the pending text too (once).
	if !lw.readySeen && lw.ready != readyMarker && bytes.Contains(lw.buf, []byte(lw.ready)) {
		lw.readySeen = true
		select {
		case lw.events <- consoleEvent{lw.ready, strings.TrimSpace(string(lw.buf))}:
		default:
		}
	}
	return n, err
}

func (lw *lineWatcher) scan(line string) {
	kind := ""
	switch {
	case strings.Contains(line, lw.ready):
		kind = lw.ready
	case strings.Contains(line, panicMarker):
		kind = panicMarker
	default:
		for _, m := range exitMarkers {
			if strings.Contains(line, m) {
				kind = m
			}
		}
	}
	if kind == "" {
		return
	}
	select {
	case lw.events <- consoleEvent{kind, strings.TrimSpace(line)}:
	default:
	}
}

// ProvisionAndReboot posts doc to the guest's agent, waits at most limit
// for the job to end, fails the test (with the console's tail) unless it
// succeeded, then has the agent reboot and waits for QEMU to exit (the
// guests run with -no-reboot): the disks are then the provisioned node's.
// It returns the job's final status.
func (vm *VM) ProvisionAndReboot(ctx context.Context, t testing.TB, doc []byte, limit time.Duration) *api.Status {
	t.Helper()
	t0 := time.Now()
	r, err := vm.Client.Provision(ctx, doc, false)
	if err != nil {
		t.Fatalf("provision: %v", err)
	}
	wctx, cancel := context.WithTimeout(ctx, limit)
	st, err := vm.Client.Wait(wctx, r.ID, 3*time.Second)
	cancel()
	if err != nil {
		t.Fatalf("provision: %v\n%s", err, vm.Tail(60))
	}
	if st.State != api.StateSucceeded {
		t.Fatalf("provision failed: %+v\n%s", st.Error, vm.Tail(150))
	}
	t.Logf("phase provision: %s; steps %+v", time.Since(t0).Round(time.Second), st.Steps)
	if err := vm.Client.Reboot(ctx); err != nil {
		t.Fatalf("reboot: %v", err)
	}
	if err := vm.WaitExit(120 * time.Second); err != nil {
		t.Fatalf("bootstrap did not reboot: %v\n%s", err, vm.Tail(40))
	}
	return st
}
