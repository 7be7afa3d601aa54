package vmtest

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
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
		opts.Token = randomToken()
	}
	vm := newVM(t, im, Options{BootTimeout: opts.BootTimeout, StopTimeout: 30 * time.Second, Ready: readyMarker, Token: opts.Token})
	nv := &NetVM{VM: vm, noAgentCheck: opts.NoAgentCheck || opts.DiskBoot, Monitor: filepath.Join(vm.Dir, "mon.sock"),
		Ports: map[string]int{}, SSHPorts: map[string]int{}}
	if opts.DiskBoot {
		vm.opts.Ready = KernelBanner
	}
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
	paths, dargs, err := DiskArgs(vm.Dir, opts.Disks, nil)
	if err != nil {
		t.Fatal(err)
	}
	vm.Disks = paths
	args = append(args, dargs...)
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
	vm.netns = opts.NetNS
	if err := vm.launch(t, args); err != nil {
		t.Fatal(err)
	}
	return nv
}

// Wait waits for the agent's ready line, then (unless NoAgentCheck or no
// forwarded port) for its API through the first forwarded port.
func (nv *NetVM) Wait(t testing.TB) {
	t.Helper()
	if err := nv.ready(t, !nv.noAgentCheck && nv.BaseURL != ""); err != nil {
		t.Fatal(err)
	}
}

// HMP runs a QEMU human monitor command (e.g. "set_link n0 off") and
// returns its output.
func (nv *NetVM) HMP(cmd string) (string, error) { return HMP(nv.Monitor, cmd) }

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
