// Package ipmisim runs OpenIPMI's ipmi_sim (Debian openipmi) as a real IPMI
// BMC for tests: IPMI-over-LAN (RMCP+) on 127.0.0.1 at a free UDP port,
// and the "VM" serial interface a QEMU guest's ipmi-bmc-extern device
// connects to. Chassis power on runs StartCmd (the machine: QEMU); power
// off asks the guest through that interface and then kills the process
// (poweroff_wait, kill_wait); power cycle restarts it. The power state is
// whether the process runs.
package ipmisim

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/imprint-dev/imprint/power"
)

// Config configures one simulated BMC.
type Config struct {
	Dir string // config, state and the simulator's log go here
	// StartCmd is the machine: run by power on, killed by power off. It
	// must not contain a double quote.
	StartCmd string
	Username string // default "admin"
	Password string // default a fixed test password
	// PowerOffWait is how long a power off waits for the guest to stop
	// before SIGTERM (default 5s); KillWait, SIGTERM to SIGKILL (default 5s).
	PowerOffWait, KillWait time.Duration
}

// Sim is a running ipmi_sim.
type Sim struct {
	cfg    Config
	Port   int // IPMI-over-LAN, UDP on 127.0.0.1
	VMPort int // TCP on 127.0.0.1: QEMU's ipmi-bmc-extern chardev
	Log    string
	cmd    *exec.Cmd
	done   chan struct{}
	once   sync.Once
}

// QEMUArgs connect a QEMU guest to the BMC (a KCS interface on ISA, as
// servers have).
func (s *Sim) QEMUArgs() []string {
	return []string{
		"-chardev", fmt.Sprintf("socket,id=ipmi0,host=127.0.0.1,port=%d,reconnect=2", s.VMPort),
		"-device", "ipmi-bmc-extern,id=bmc0,chardev=ipmi0",
		"-device", "isa-ipmi-kcs,bmc=bmc0",
	}
}

// BMC is the controller's view of this BMC.
func (s *Sim) BMC() power.BMC {
	return power.BMC{Driver: power.IPMI, Address: net.JoinHostPort("127.0.0.1", strconv.Itoa(s.Port)), Username: s.cfg.Username, Password: s.cfg.Password,
		CipherSuite: 3} // ipmi_sim has no Get Channel Cipher Suites
}

func freeUDP() (int, error) {
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port, nil
}

func freeTCP() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Start writes the simulator's configuration and starts it; the machine
// is off until powered on.
func Start(cfg Config) (*Sim, error) {
	if cfg.Username == "" {
		cfg.Username = "admin"
	}
	if cfg.Password == "" {
		cfg.Password = "imprint-bmc-pw"
	}
	if cfg.PowerOffWait == 0 {
		cfg.PowerOffWait = 5 * time.Second
	}
	if cfg.KillWait == 0 {
		cfg.KillWait = 5 * time.Second
	}
	if strings.ContainsAny(cfg.StartCmd, "\"\n") || cfg.StartCmd == "" {
		return nil, fmt.Errorf("ipmisim: startcmd %q: required, without double quotes or newlines", cfg.StartCmd)
	}
	port, err := freeUDP()
	if err != nil {
		return nil, fmt.Errorf("ipmisim: %w", err)
	}
	vmPort, err := freeTCP()
	if err != nil {
		return nil, fmt.Errorf("ipmisim: %w", err)
	}
	state := filepath.Join(cfg.Dir, "ipmi_sim-state")
	if err := os.MkdirAll(state, 0o700); err != nil {
		return nil, fmt.Errorf("ipmisim: %w", err)
	}
	conf := fmt.Sprintf(`name "imprint"
set_working_mc 0x20
  startlan 1
    addr 127.0.0.1 %d
    priv_limit admin
    allowed_auths_callback md5
    allowed_auths_user md5
    allowed_auths_operator md5
    allowed_auths_admin md5
    guid a123456789abcdefa123456789abcdef
  endlan
  serial 15 127.0.0.1 %d codec VM
  startcmd "%s"
  startnow false
  poweroff_wait %d
  kill_wait %d
  user 2 true "%s" "%s" admin 10 md5
`, port, vmPort, cfg.StartCmd, int(cfg.PowerOffWait.Seconds()), int(cfg.KillWait.Seconds()), cfg.Username, cfg.Password)
	emu := `mc_setbmc 0x20
mc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02 persist_sdr
sel_enable 0x20 1000 0x0a
mc_enable 0x20
`
	confPath, emuPath := filepath.Join(cfg.Dir, "lan.conf"), filepath.Join(cfg.Dir, "sim.emu")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		return nil, fmt.Errorf("ipmisim: %w", err)
	}
	if err := os.WriteFile(emuPath, []byte(emu), 0o600); err != nil {
		return nil, fmt.Errorf("ipmisim: %w", err)
	}
	s := &Sim{cfg: cfg, Port: port, VMPort: vmPort, Log: filepath.Join(cfg.Dir, "ipmi_sim.log"), done: make(chan struct{})}
	logf, err := os.Create(s.Log)
	if err != nil {
		return nil, fmt.Errorf("ipmisim: %w", err)
	}
	s.cmd = exec.Command("ipmi_sim", "-c", confPath, "-f", emuPath, "-s", state, "-n")
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	// Its own process group: Stop ends the simulator and the machine it
	// started together.
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := s.cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("ipmisim: start ipmi_sim: %w", err)
	}
	go func() { s.cmd.Wait(); logf.Close(); close(s.done) }()
	// Ready once it answers over the LAN.
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		_, err := s.Ipmitool(ctx, "chassis", "power", "status")
		cancel()
		if err == nil {
			return s, nil
		}
		select {
		case <-s.done:
			b, _ := os.ReadFile(s.Log)
			return nil, fmt.Errorf("ipmisim: ipmi_sim exited: %s", bytes.TrimSpace(b))
		default:
		}
		if time.Now().After(deadline) {
			s.Stop()
			return nil, fmt.Errorf("ipmisim: no answer on udp 127.0.0.1:%d: %v", port, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// Ipmitool runs ipmitool (lanplus) against the BMC: the independent
// witness of what the controller did.
func (s *Sim) Ipmitool(ctx context.Context, args ...string) (string, error) {
	// -C 3 (RAKP-HMAC-SHA1, AES): ipmi_sim lacks Get Channel Cipher
	// Suites, which ipmitool otherwise retries for seconds.
	a := append([]string{"-I", "lanplus", "-C", "3", "-H", "127.0.0.1", "-p", strconv.Itoa(s.Port), "-U", s.cfg.Username, "-P", s.cfg.Password}, args...)
	var out, errb bytes.Buffer
	cmd := exec.CommandContext(ctx, "ipmitool", a...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("ipmitool %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return strings.TrimSpace(out.String()), nil
}

// PowerStatus is ipmitool's "chassis power status": "on" or "off".
func (s *Sim) PowerStatus(ctx context.Context) (string, error) {
	out, err := s.Ipmitool(ctx, "chassis", "power", "status")
	if err != nil {
		return "", err
	}
	switch {
	case strings.HasSuffix(out, " on"):
		return "on", nil
	case strings.HasSuffix(out, " off"):
		return "off", nil
	}
	return "", fmt.Errorf("ipmitool chassis power status: %q", out)
}

// Wait returns when the simulator has exited.
func (s *Sim) Wait() { <-s.done }

// Stop kills the simulator and whatever it started.
func (s *Sim) Stop() {
	s.once.Do(func() {
		syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		<-s.done
	})
}
