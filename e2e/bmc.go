package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/imprint-dev/imprint/controller"
	"github.com/imprint-dev/imprint/internal/ipmisim"
	"github.com/imprint-dev/imprint/internal/vmtest"
	"github.com/imprint-dev/imprint/power"
)

// bmcMachine is the part of a Machine whose QEMU its BMC starts: the
// serial console arrives over a Unix socket each QEMU process connects
// to, and QEMU writes its pid for Stop.
type bmcMachine struct {
	serial  net.Listener
	pidfile string
	log     *os.File
	wg      sync.WaitGroup
}

func (m *Machine) serialArg() string {
	if m.cfg.BMC {
		return "unix:" + filepath.Join(m.cfg.Dir, "serial.sock")
	}
	return "stdio"
}

// shellQuote quotes s for /bin/sh.
func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// startBMC starts the machine's ipmi_sim with QEMU as its startcmd (a
// script: the command line is long); the machine is off until powered on
// through the BMC.
func (m *Machine) startBMC(args []string) error {
	b := &bmcMachine{pidfile: filepath.Join(m.cfg.Dir, "qemu.pid")}
	sock := filepath.Join(m.cfg.Dir, "serial.sock")
	os.Remove(sock)
	ln, err := net.Listen("unix", sock)
	if err != nil {
		return fmt.Errorf("machine: serial socket: %w", err)
	}
	b.serial = ln
	script := filepath.Join(m.cfg.Dir, "qemu.sh")
	sim, err := ipmisim.Start(ipmisim.Config{Dir: m.cfg.Dir, StartCmd: script, PowerOffWait: 10 * time.Second, KillWait: 5 * time.Second})
	if err != nil {
		ln.Close()
		return fmt.Errorf("machine: %w", err)
	}
	args = append(args, sim.QEMUArgs()...)
	args = append(args, "-pidfile", b.pidfile)
	var sh strings.Builder
	sh.WriteString("#!/bin/sh\n# The machine: ipmi_sim runs this on chassis power on.\nexec " + vmtest.QEMU)
	for _, a := range args {
		sh.WriteString(" " + shellQuote(a))
	}
	sh.WriteString("\n")
	if err := os.WriteFile(script, []byte(sh.String()), 0o755); err != nil {
		sim.Stop()
		ln.Close()
		return fmt.Errorf("machine: %w", err)
	}
	logf, err := os.OpenFile(m.SerialLog, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		sim.Stop()
		ln.Close()
		return fmt.Errorf("machine: serial log: %w", err)
	}
	b.log = logf
	m.console = newConsole(logf, m.cfg.Console)
	m.BMC, m.bmc, m.startedAt = sim, b, time.Now()
	// Every power on is a new QEMU that connects anew.
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			io.Copy(m.console, c)
			c.Close()
		}
	}()
	go func() {
		sim.Wait()
		m.console.close()
		close(m.exited)
	}()
	return nil
}

// QEMUPid is the pid of the machine's QEMU while it is powered on (0
// when it is off).
func (m *Machine) QEMUPid() int {
	if m.bmc == nil {
		if m.cmd != nil && m.cmd.Process != nil {
			return m.cmd.Process.Pid
		}
		return 0
	}
	b, err := os.ReadFile(m.bmc.pidfile)
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	if pid <= 0 || syscall.Kill(pid, 0) != nil {
		return 0
	}
	return pid
}

// stopBMC stops QEMU and its BMC.
func (m *Machine) stopBMC() error {
	var err error
	if pid := m.QEMUPid(); pid > 0 {
		if herr := m.hmp("quit"); herr != nil {
			err = herr
		}
		deadline := time.Now().Add(10 * time.Second)
		for m.QEMUPid() != 0 && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
		}
		if pid := m.QEMUPid(); pid > 0 {
			syscall.Kill(pid, syscall.SIGKILL)
			err = errors.Join(err, errors.New("machine: QEMU did not quit; killed"))
		}
	}
	m.BMC.Stop()
	m.bmc.serial.Close()
	m.bmc.wg.Wait()
	<-m.exited
	m.bmc.log.Close()
	return err
}

// bmcPowerOn enrolls the machine's BMC with the controller and powers the
// node on through it.
func bmcPowerOn(ctx context.Context, ctrl *controller.Controller, m *Machine, mac string, res *Result, tl *timeline) error {
	if err := ctrl.EnrollBMC(ctx, mac, m.BMC.BMC()); err != nil {
		return fmt.Errorf("enroll BMC: %w", err)
	}
	if err := checkPower(ctx, ctrl, m, mac, "enrolled", "off", res); err != nil {
		return err
	}
	if err := ctrl.SetPower(ctx, mac, power.On, "e2e: first boot"); err != nil {
		return fmt.Errorf("power on: %w", err)
	}
	if err := checkPower(ctx, ctrl, m, mac, "powered on", "on", res); err != nil {
		return err
	}
	tl.step("powered on", fmt.Sprintf("through %s; QEMU pid %d", m.BMC.BMC(), m.QEMUPid()))
	return nil
}

// checkPower waits (30s at most) until the controller and ipmitool both
// report want for the node, and records what they said.
func checkPower(ctx context.Context, ctrl *controller.Controller, m *Machine, mac, step, want string, res *Result) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		pc := PowerCheck{Step: step}
		st, _, err := ctrl.PowerState(ctx, mac)
		if err != nil {
			pc.Controller = "error: " + err.Error()
		} else {
			pc.Controller = string(st)
		}
		if pc.Ipmitool, err = m.BMC.PowerStatus(ctx); err != nil {
			pc.Ipmitool = "error: " + err.Error()
		}
		pc.QEMUPid = m.QEMUPid()
		if (pc.Controller == want && pc.Ipmitool == want) || time.Now().After(deadline) {
			res.Power = append(res.Power, pc)
			if pc.Controller != want || pc.Ipmitool != want {
				return fmt.Errorf("e2e: %s: controller says power %q, ipmitool %q; want %s", step, pc.Controller, pc.Ipmitool, want)
			}
			return nil
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// watchPower polls ipmitool until the returned function is called, which
// returns the distinct states seen in order.
func watchPower(ctx context.Context, m *Machine) func() []string {
	ctx, cancel := context.WithCancel(ctx)
	var mu sync.Mutex
	var seen []string
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			if st, err := m.BMC.PowerStatus(ctx); err == nil {
				mu.Lock()
				if len(seen) == 0 || seen[len(seen)-1] != st {
					seen = append(seen, st)
				}
				mu.Unlock()
			}
			select {
			case <-ctx.Done():
			case <-time.After(200 * time.Millisecond):
			}
		}
	}()
	return func() []string {
		cancel()
		<-done
		mu.Lock()
		defer mu.Unlock()
		return seen
	}
}

// bmcPowerOff powers the node off through the controller: the BMC stops
// QEMU.
func bmcPowerOff(ctx context.Context, ctrl *controller.Controller, m *Machine, mac string, res *Result) error {
	if err := ctrl.SetPower(ctx, mac, power.Off, "e2e: done"); err != nil {
		return fmt.Errorf("e2e: power off: %w", err)
	}
	return checkPower(ctx, ctrl, m, mac, "powered off", "off", res)
}
