package vmtest

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// NIC is one virtio-net NIC of a [NetVM].
type NIC struct {
	// ID is the netdev id (QEMU's set_link takes it): n0, n1, ...
	ID  string
	MAC string
	// Netdev is the -netdev value without its id: "user",
	// "user,ipv4=off,ipv6=on", "socket,listen=127.0.0.1:PORT", ...
	Netdev string
	// ForwardAgent (user netdevs): forward a free 127.0.0.1 port to the
	// guest's agent port (10.0.2.15:9999); NetVM.Ports[ID] is that port.
	ForwardAgent bool
	// ForwardSSH (user netdevs): forward a free 127.0.0.1 port to port 22
	// of this guest address (e.g. 10.0.2.15); NetVM.SSHPorts[ID] is that
	// port.
	ForwardSSH string
	// Dump, when set, records the NIC's frames in this pcap file
	// (QEMU's filter-dump).
	Dump string
	// Device: extra virtio-net-pci properties, e.g. "speed=1000,duplex=full"
	// (802.3ad needs a link speed; virtio-net reports none by default).
	Device string
}

// NetOptions configure a guest with several NICs, for network tests.
type NetOptions struct {
	NICs []NIC
	// Cmdline: kernel parameters after console=ttyS0 panic=-1
	// imprint.on_exit=poweroff. No imprint.token=: the per-node archive
	// carries it (or add it here).
	Cmdline []string
	// Initrd to boot (a per-node initramfs); default the image's.
	Initrd string
	// Token is what the API client sends (the one the archive carries).
	Token       string
	MemoryMiB   int           // default 1024
	CPUs        int           // default 2
	BootTimeout time.Duration // default 300s (two guests share the cores)
	// NoAgentCheck: do not wait for the agent's API (no forwarded port,
	// e.g. an IPv6-only guest); the ready line is enough.
	NoAgentCheck bool
	// Disks: virtio-blk disks (new sparse images of Size, or Path).
	Disks []Disk
	// DiskBoot boots the first disk through the firmware (a provisioned
	// OS) and waits for the kernel's banner instead of the agent.
	DiskBoot bool
	// NetNS runs QEMU inside this namespace, where NICs with Netdev
	// "tap,ifname=<its Tap>,script=no,downscript=no" reach its servers.
	NetNS *NetNS
	// Firmware: SeaBIOS (zero value) or OVMF, with a fresh NVRAM.
	Firmware Firmware
	// FirmwareNetBoot boots from the NICs through the firmware instead of
	// -kernel/-initrd (Cmdline and Initrd are then the controller's
	// business). Under OVMF the NICs carry no iPXE option ROM: OVMF's own
	// virtio-net driver, PXE (unless NoFirmwarePXE) and HTTP boot run,
	// unless ROM names one (IPXEEFIROM: iPXE's EFI driver).
	FirmwareNetBoot bool
	ROM             string
	// NoFirmwarePXE turns OVMF's own PXE (IPv4 and IPv6) off through
	// fw_cfg (opt/org.tianocore/IPv{4,6}PXESupport), so its network boot
	// options are HTTP boot's alone.
	NoFirmwarePXE bool
}

// NetVM is a guest with several NICs and a QEMU monitor.
type NetVM struct {
	*VM
	Monitor string         // the HMP monitor's unix socket
	Ports   map[string]int // host ports forwarded to the agent, by NIC ID
	// SSHPorts are host ports forwarded to the guest's port 22, by NIC ID.
	SSHPorts map[string]int

	noAgentCheck bool
}

// StartNet is LaunchNet, then Wait.
func StartNet(t testing.TB, opts NetOptions) *NetVM {
	t.Helper()
	nv := LaunchNet(t, opts)
	nv.Wait(t)
	return nv
}

// LaunchNet starts QEMU with the bootstrap and opts' NICs, without waiting
// (guests that talk to each other boot side by side); the guest is stopped
// in t.Cleanup.
func LaunchNet(t testing.TB, opts NetOptions) *NetVM {
	t.Helper()
	im := Require(t)
	if opts.Initrd != "" {
		im.Initrd = opts.Initrd
	}
	if opts.MemoryMiB == 0 {
		opts.MemoryMiB = 1024
	}
	if opts.CPUs == 0 {
		opts.CPUs = 2
	}
	if opts.BootTimeout == 0 {
		opts.BootTimeout = 300 * time.Second
	}
	if opts.Token == "" {
		b := make([]byte, 16)
		rand.Read(b)
		opts.Token = hex.EncodeToString(b)
	}
	vm := &VM{Dir: t.TempDir(), Image: im, Token: opts.Token, exited: make(chan struct{}),
		opts: Options{BootTimeout: opts.BootTimeout, StopTimeout: 30 * time.Second, Ready: readyMarker}}
	nv := &NetVM{VM: vm, noAgentCheck: opts.NoAgentCheck || opts.DiskBoot, Monitor: filepath.Join(vm.Dir, "mon.sock"),
		Ports: map[string]int{}, SSHPorts: map[string]int{}}
	if opts.DiskBoot {
		vm.opts.Ready = KernelBanner
	}
	vm.SerialLog = filepath.Join(vm.Dir, "serial.log")
	args := []string{
		"-accel", "tcg", "-smp", strconv.Itoa(opts.CPUs), "-m", strconv.Itoa(opts.MemoryMiB),
		"-nodefaults", "-display", "none", "-serial", "stdio", "-no-reboot",
		"-monitor", "unix:" + nv.Monitor + ",server=on,wait=off",
		"-device", "virtio-rng-pci",
	}
	if opts.Firmware.UEFI() {
		vm.Vars = filepath.Join(vm.Dir, "OVMF_VARS.fd")
		fw, err := FirmwareArgs(opts.Firmware, vm.Vars)
		if err != nil {
			t.Fatal(err)
		}
		args = append(args, fw...)
		if opts.NoFirmwarePXE {
			args = append(args, "-fw_cfg", "name=opt/org.tianocore/IPv4PXESupport,string=no",
				"-fw_cfg", "name=opt/org.tianocore/IPv6PXESupport,string=no")
		}
	}
	if opts.DiskBoot {
		args = append(args, "-boot", "order=c", "-device", "VGA")
	} else if opts.FirmwareNetBoot {
		if !opts.Firmware.UEFI() {
			args = append(args, "-boot", "order=n")
		}
	} else {
		args = append(args, "-kernel", im.Kernel, "-initrd", im.Initrd,
			"-append", strings.Join(append([]string{"console=ttyS0", "panic=-1", "imprint.on_exit=poweroff"}, opts.Cmdline...), " "))
	}
	for i, d := range opts.Disks {
		p := d.Path
		if p == "" {
			p = filepath.Join(vm.Dir, fmt.Sprintf("disk%d.img", i))
			f, err := os.Create(p)
			if err == nil {
				err = f.Truncate(d.Size)
				f.Close()
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		vm.Disks = append(vm.Disks, p)
		dev := fmt.Sprintf("virtio-blk-pci,drive=d%d", i)
		if d.Serial != "" {
			dev += ",serial=" + d.Serial
		}
		args = append(args, "-drive", fmt.Sprintf("file=%s,if=none,id=d%d,format=raw", p, i), "-device", dev)
	}
	for i, n := range opts.NICs {
		if n.ID == "" {
			n.ID = "n" + strconv.Itoa(i)
		}
		netdev := n.Netdev + ",id=" + n.ID
		if n.ForwardAgent {
			p, err := FreePort()
			if err != nil {
				t.Fatal(err)
			}
			nv.Ports[n.ID] = p
			netdev += fmt.Sprintf(",hostfwd=tcp:127.0.0.1:%d-:%d", p, AgentPort)
			if vm.BaseURL == "" {
				vm.BaseURL = "http://127.0.0.1:" + strconv.Itoa(p)
			}
		}
		if n.ForwardSSH != "" {
			p, err := FreePort()
			if err != nil {
				t.Fatal(err)
			}
			nv.SSHPorts[n.ID] = p
			netdev += fmt.Sprintf(",hostfwd=tcp:127.0.0.1:%d-%s:22", p, n.ForwardSSH)
		}
		dev := fmt.Sprintf("virtio-net-pci,netdev=%s,mac=%s,id=nic%d", n.ID, n.MAC, i)
		if n.Device != "" {
			dev += "," + n.Device
		}
		if opts.FirmwareNetBoot && opts.Firmware.UEFI() {
			dev += ",romfile=" + opts.ROM
		}
		args = append(args, "-netdev", netdev, "-device", dev)
		if n.Dump != "" {
			args = append(args, "-object", fmt.Sprintf("filter-dump,id=dump%d,netdev=%s,file=%s", i, n.ID, n.Dump))
		}
	}
	logf, err := os.Create(vm.SerialLog)
	if err != nil {
		t.Fatal(err)
	}
	vm.console = newLineWatcher(logf, vm.opts.Ready)
	vm.cmd = exec.Command(QEMU, args...)
	if opts.NetNS != nil {
		vm.cmd = opts.NetNS.Command(QEMU, args...) // ip netns exec: then execs QEMU
	}
	vm.cmd.Stdout, vm.cmd.Stderr = vm.console, vm.console
	vm.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	t.Logf("vmtest: %s %s", QEMU, strings.Join(args, " "))
	vm.started = time.Now()
	if err := vm.cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("vmtest: start %s: %v", QEMU, err)
	}
	go func() {
		vm.waitErr = vm.cmd.Wait()
		logf.Close()
		close(vm.exited)
	}()
	t.Cleanup(func() {
		if err := vm.Stop(); err != nil {
			t.Logf("vmtest: stop: %v", err)
		}
		if t.Failed() {
			t.Logf("vmtest: serial console of %s (tail):\n%s", vm.Dir, vm.Tail(120))
		}
	})
	return nv
}

// Wait waits for the agent's ready line, then (unless NoAgentCheck or no
// forwarded port) for its API through the first forwarded port.
func (nv *NetVM) Wait(t testing.TB) {
	t.Helper()
	vm := nv.VM
	if nv.noAgentCheck || vm.BaseURL == "" {
		if err := nv.waitLine(vm.opts.Ready); err != nil {
			vm.kill()
			t.Fatal(err)
		}
		t.Logf("vmtest: %q after %.1fs", vm.opts.Ready, vm.BootTime.Seconds())
		return
	}
	if err := vm.waitReady(); err != nil {
		vm.kill()
		t.Fatal(err)
	}
	vm.Client = &Client{BaseURL: vm.BaseURL, Token: vm.Token}
	t.Logf("vmtest: boot-to-API %.1fs (TCG), initramfs %.1f MiB (%s)", vm.BootTime.Seconds(), float64(vm.Image.Size())/(1<<20), vm.Image.Initrd)
}

// waitLine waits for the ready line only (the guest's API is not reachable
// from the host).
func (nv *NetVM) waitLine(ready string) error {
	vm := nv.VM
	deadline := time.NewTimer(vm.opts.BootTimeout)
	defer deadline.Stop()
	fail := func(kind BootErrorKind, detail string) error {
		return &BootError{Kind: kind, Detail: detail, Elapsed: time.Since(vm.started), Tail: vm.Tail(60)}
	}
	for {
		select {
		case ev := <-vm.console.events:
			switch ev.kind {
			case ready:
				vm.BootTime = time.Since(vm.started)
				return nil
			case panicMarker:
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
			return fail(BootTimeout, fmt.Sprintf("no %q line within %v", ready, vm.opts.BootTimeout))
		}
	}
}

// HMP runs a QEMU human monitor command (e.g. "set_link n0 off") and
// returns its output.
func (nv *NetVM) HMP(cmd string) (string, error) {
	c, err := net.DialTimeout("unix", nv.Monitor, 5*time.Second)
	if err != nil {
		return "", fmt.Errorf("vmtest: monitor: %w", err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	r := bufio.NewReader(c)
	readPrompt := func() (string, error) {
		var sb strings.Builder
		for !strings.HasSuffix(sb.String(), "(qemu) ") {
			b, err := r.ReadByte()
			if err != nil {
				return sb.String(), fmt.Errorf("vmtest: monitor: %w (read %q)", err, sb.String())
			}
			sb.WriteByte(b)
		}
		return sb.String(), nil
	}
	if _, err := readPrompt(); err != nil {
		return "", err
	}
	if _, err := fmt.Fprintf(c, "%s\n", cmd); err != nil {
		return "", fmt.Errorf("vmtest: monitor: %w", err)
	}
	out, err := readPrompt()
	out = strings.TrimSuffix(out, "(qemu) ")
	// The monitor echoes the command (with terminal escapes); keep the rest.
	if i := strings.Index(out, "\n"); i >= 0 {
		out = out[i+1:]
	}
	return strings.TrimSpace(out), err
}

// WaitConsole waits at most d for a console line containing s; it returns
// that line.
func (vm *VM) WaitConsole(s string, d time.Duration) (string, error) {
	deadline := time.Now().Add(d)
	for {
		for _, line := range strings.Split(vm.Console(), "\n") {
			if strings.Contains(line, s) {
				return line, nil
			}
		}
		select {
		case <-vm.exited:
			return "", fmt.Errorf("vmtest: QEMU exited before %q on the console", s)
		default:
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("vmtest: no %q on the console within %v", s, d)
		}
		time.Sleep(250 * time.Millisecond)
	}
}
