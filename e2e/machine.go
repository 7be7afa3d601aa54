package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/imprint-dev/imprint/internal/vmtest"
)

// Disk is one virtio-blk disk of a Machine: an existing image at Path, or
// a new sparse one of Size bytes when Path does not exist yet (Serial: at
// most 20 bytes, no ',', '=' or space).
type Disk = vmtest.Disk

// MachineConfig describes a bare-metal-like node: firmware (SeaBIOS) that
// boots the NIC's iPXE ROM first and the disks next, the way a PXE fleet is
// set up, with user-mode networking whose TFTP server hands out BootFile.
type MachineConfig struct {
	Dir       string // serial log and monitor socket go here
	MAC       string // the NIC's MAC, e.g. 52:54:00:12:34:56
	UUID      string // SMBIOS system UUID (the agent's default node id); none when empty
	TFTPDir   string
	BootFile  string // the DHCP boot file in TFTPDir: an iPXE script
	Disks     []Disk
	MemoryMiB int // default 1536
	CPUs      int // default 2
	// Forward maps host ports on 127.0.0.1 to guest TCP ports (the agent's
	// API, the provisioned OS's sshd).
	Forward map[int]int
	// Console, when set, also receives the serial console.
	Console io.Writer
	// Firmware is SeaBIOS (zero value) or OVMF (vmtest.FirmwareUEFI): then
	// the NIC boots iPXE's EFI driver (ipxe-qemu's efi-virtio.rom) and the
	// boot order is the NIC, then the disks (bootindex).
	Firmware vmtest.Firmware
	// Vars is the OVMF NVRAM file (created from the template when missing),
	// kept across the machine's resets like a real node's.
	Vars string
}

// Machine is a running QEMU node. Guest reboots go through the firmware
// again (no -no-reboot), so every boot asks PXE first, as on real hardware.
type Machine struct {
	cfg       MachineConfig
	SerialLog string
	cmd       *exec.Cmd
	monitor   string
	console   *console
	exited    chan struct{}
	waitErr   error
	stopOnce  sync.Once
	startedAt time.Time
}

// StartMachine starts QEMU; it does not wait for anything in the guest.
func StartMachine(cfg MachineConfig) (*Machine, error) {
	if cfg.MemoryMiB == 0 {
		cfg.MemoryMiB = 1536
	}
	if cfg.CPUs == 0 {
		cfg.CPUs = 2
	}
	if _, err := net.ParseMAC(cfg.MAC); err != nil {
		return nil, fmt.Errorf("machine: MAC %q: %w", cfg.MAC, err)
	}
	m := &Machine{cfg: cfg, SerialLog: filepath.Join(cfg.Dir, "serial.log"),
		monitor: filepath.Join(cfg.Dir, "monitor.sock"), exited: make(chan struct{})}
	args, err := m.args()
	if err != nil {
		return nil, err
	}
	logf, err := os.OpenFile(m.SerialLog, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("machine: serial log: %w", err)
	}
	m.console = newConsole(logf, cfg.Console)
	m.startedAt = time.Now()
	m.cmd, err = vmtest.StartQEMU(args, m.console, func(err error) {
		m.waitErr = err
		m.console.close()
		logf.Close()
		close(m.exited)
	})
	if err != nil {
		logf.Close()
		return nil, fmt.Errorf("machine: %w", err)
	}
	return m, nil
}

func (m *Machine) args() ([]string, error) {
	c := m.cfg
	netdev := "user,id=n0,tftp=" + c.TFTPDir + ",bootfile=" + c.BootFile
	for host, guest := range c.Forward {
		netdev += fmt.Sprintf(",hostfwd=tcp:127.0.0.1:%d-:%d", host, guest)
	}
	args := []string{
		"-accel", "tcg", "-smp", strconv.Itoa(c.CPUs), "-m", strconv.Itoa(c.MemoryMiB),
		// A VGA card as real servers have (Debian's grub.cfg stalls before
		// the kernel without one); nothing displays it, the serial port is
		// the console.
		"-nodefaults", "-vga", "std", "-display", "none", "-serial", "stdio",
		"-monitor", "unix:" + m.monitor + ",server=on,wait=off",
		"-device", "virtio-rng-pci",
	}
	fw, err := vmtest.FirmwareArgs(c.Firmware, c.Vars)
	if err != nil {
		return nil, fmt.Errorf("machine: %w", err)
	}
	args = append(args, fw...)
	nic, diskBoot := "virtio-net-pci,netdev=n0,mac="+c.MAC, func(int) string { return "" }
	if c.Firmware.UEFI() {
		// No bootindex: the NVRAM's BootOrder decides, as on a server.
		// With one, OVMF re-sorts BootOrder at every boot and puts all of
		// the NIC's entries (iPXE, its own PXEv4/v6, HTTPv4/v6) before the
		// disk, so the flip's "exit" waits out four network timeouts
		// (5 min under TCG). A fresh NVRAM lists the disk, then the NIC:
		// a blank disk fails at once and the NIC boots.
		nic += ",romfile=" + vmtest.IPXEEFIROM
	} else {
		args = append(args, "-boot", "order=nc")
	}
	args = append(args, "-netdev", netdev, "-device", nic)
	if c.UUID != "" {
		args = append(args, "-uuid", c.UUID)
	}
	_, dargs, err := vmtest.DiskArgs(c.Dir, c.Disks, diskBoot)
	if err != nil {
		return nil, fmt.Errorf("machine: %w", err)
	}
	return append(args, dargs...), nil
}

// Reset presses the node's reset button (the monitor's system_reset): what
// a controller does through IPMI when the OS on the node cannot be asked.
func (m *Machine) Reset() error { return m.hmp("system_reset") }

// hmp sends one human-monitor command and waits for its prompt.
func (m *Machine) hmp(command string) error {
	_, err := vmtest.HMP(m.monitor, command)
	return err
}

// Mark returns the console position now, for WaitLine to search after.
func (m *Machine) Mark() int { return m.console.len() }

// WaitLine waits for a console line containing substr after position from
// and returns the position after it and the line. It fails when QEMU exits
// or ctx ends first.
func (m *Machine) WaitLine(ctx context.Context, from int, substr string) (int, string, error) {
	return m.console.wait(ctx, from, substr, m.exited)
}

// Console is the serial output so far.
func (m *Machine) Console() string { return m.console.String() }

// Tail is the last n lines of the serial output.
func (m *Machine) Tail(n int) string { return vmtest.TailLines(m.Console(), n) }

// Exited is closed when QEMU has exited.
func (m *Machine) Exited() <-chan struct{} { return m.exited }

// Stop quits QEMU through its monitor and kills it if it is still running
// after timeout. It is idempotent.
func (m *Machine) Stop(timeout time.Duration) error {
	var err error
	m.stopOnce.Do(func() {
		select {
		case <-m.exited:
			return
		default:
		}
		if herr := m.hmp("quit"); herr != nil {
			err = herr
		}
		select {
		case <-m.exited:
		case <-time.After(timeout):
			m.cmd.Process.Kill()
			<-m.exited
			err = fmt.Errorf("machine: QEMU did not quit within %v; killed", timeout)
		}
	})
	return err
}

// console keeps the whole serial output (a few MiB at most for a node's
// life) so waits can search from any earlier position.
type console struct {
	mu     sync.Mutex
	cond   chan struct{} // closed and replaced on every write
	buf    []byte
	log    io.Writer
	tee    io.Writer
	closed bool
}

func newConsole(log, tee io.Writer) *console {
	return &console{cond: make(chan struct{}), log: log, tee: tee}
}

func (c *console) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.buf = append(c.buf, p...)
	if c.tee != nil {
		c.tee.Write(p)
	}
	close(c.cond)
	c.cond = make(chan struct{})
	return c.log.Write(p)
}

func (c *console) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	close(c.cond)
	c.cond = make(chan struct{})
}

func (c *console) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.buf)
}

func (c *console) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return string(c.buf)
}

// wait finds the first complete line holding substr that ends after from.
func (c *console) wait(ctx context.Context, from int, substr string, exited <-chan struct{}) (int, string, error) {
	for {
		c.mu.Lock()
		if from > len(c.buf) {
			from = len(c.buf)
		}
		if i := strings.Index(string(c.buf[from:]), substr); i >= 0 {
			start := from + i
			if ls := strings.LastIndexByte(string(c.buf[:start]), '\n'); ls >= 0 {
				start = ls + 1
			} else {
				start = 0
			}
			end := from + i + len(substr)
			if nl := strings.IndexByte(string(c.buf[end:]), '\n'); nl >= 0 {
				end += nl + 1
			} else {
				end = len(c.buf)
			}
			line := strings.TrimSpace(string(c.buf[start:end]))
			c.mu.Unlock()
			return end, line, nil
		}
		closed, ch := c.closed, c.cond
		c.mu.Unlock()
		if closed {
			return from, "", fmt.Errorf("QEMU exited before a console line with %q", substr)
		}
		select {
		case <-ch:
		case <-exited:
		case <-ctx.Done():
			return from, "", fmt.Errorf("no console line with %q: %w", substr, context.Cause(ctx))
		}
	}
}
