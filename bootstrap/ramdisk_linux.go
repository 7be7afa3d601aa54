package bootstrap

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Ramdisk is `imprint ramdisk-init`: the steps, then the agent.
type Ramdisk struct {
	Cmdline        string // contents of /proc/cmdline
	ModulesDir     string // /lib/modules/$(uname -r)
	ModulesList    string // /etc/imprint/modules.conf
	SysRoot        string // /sys
	EntropyTimeout time.Duration
	AgentPath      string   // the imprint binary
	AgentArgs      []string // ["agent", "--kernel-cmdline", "/proc/cmdline"]
	OnExit         OnExit
	// NetworkDoc is the per-node network document (default
	// /etc/imprint/network_data.json, from the per-node archive).
	NetworkDoc string
	// AppliedNetwork receives the applied document (default
	// /run/imprint/network_data.json): the agent's configdrive gives the
	// installed OS the same network.
	AppliedNetwork string
	// CABundle, when the file exists, is what the agent trusts for HTTPS
	// (SSL_CERT_FILE; default /etc/imprint/ca.pem, from the per-node archive).
	CABundle string
	// InitDir holds the elements' init.d scripts, run after the network is
	// up and before the agent (default /etc/imprint/init.d).
	InitDir string
	Log     *slog.Logger
}

// Steps returns the bootstrap steps for this configuration; an invalid
// kernel command line (ip= that does not parse) is an error here, before
// anything ran.
func (r *Ramdisk) Steps() ([]Step, error) {
	params := ParseCmdline(r.Cmdline)
	nc, err := NetFromCmdline(params)
	if err != nil {
		return nil, err
	}
	return []Step{
		&MountsStep{Mounts: DefaultMounts, Log: r.Log.With("step", "mounts")},
		Optional(&ModulesStep{Dir: r.ModulesDir, ListFile: r.ModulesList, SysRoot: r.SysRoot,
			Sys: KernelModules{}, Log: r.Log.With("step", "modules")}),
		Optional(&EFIVarsStep{SysRoot: r.SysRoot, Dir: r.ModulesDir, Modules: KernelModules{}, Mounter: EFIVarsMount{},
			Log: r.Log.With("step", "efivars")}),
		Optional(&MultipathStep{SysRoot: r.SysRoot, Log: r.Log.With("step", "multipath")}),
		Optional(&EntropyStep{Timeout: r.EntropyTimeout, Log: r.Log.With("step", "entropy")}),
		&NetworkStep{Cmdline: nc, DocFile: or(r.NetworkDoc, DefaultNetworkDoc), ResolvedFile: or(r.AppliedNetwork, DefaultAppliedNetwork),
			ModulesDir: r.ModulesDir, Log: r.Log.With("step", "network")},
		&InitScriptsStep{Dir: or(r.InitDir, DefaultInitDir), Out: os.Stdout, Log: r.Log.With("step", "init.d")},
	}, nil
}

// Run runs the steps and then supervises the agent. It returns only when
// OnExit is shell (or powering off failed), with the reason.
func (r *Ramdisk) Run(ctx context.Context) error {
	t0 := time.Now()
	steps, err := r.Steps()
	if err == nil {
		err = RunSteps(ctx, r.Log, steps)
	}
	if err != nil {
		r.Log.Error("imprint ramdisk-init failed", "err", err, "on_exit", r.OnExit)
		return r.exit(err)
	}
	r.Log.Info("bootstrap done", "duration", time.Since(t0).Round(time.Millisecond))
	for {
		err := r.runAgent(ctx)
		r.Log.Error("imprint agent exited", "err", err, "on_exit", r.OnExit)
		if r.OnExit != ExitRestart || ctx.Err() != nil {
			return r.exit(fmt.Errorf("agent exited: %w", err))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Second):
		}
	}
}

// runAgent starts the agent with the console as its stdio and waits for it;
// a cancelled ctx sends it SIGTERM.
func (r *Ramdisk) runAgent(ctx context.Context) error {
	cmd := exec.Command(r.AgentPath, r.AgentArgs...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = os.Environ()
	if ca := or(r.CABundle, DefaultCABundle); fileExists(ca) {
		cmd.Env = append(cmd.Env, "SSL_CERT_FILE="+ca) // Go's crypto/x509 trusts exactly this bundle
		r.Log.Info("agent trusts the per-node CA bundle", "file", ca)
	}
	r.Log.Info("starting agent", "argv", strings.Join(append([]string{filepath.Base(r.AgentPath)}, r.AgentArgs...), " "))
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", r.AgentPath, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err == nil {
			return errors.New("exit status 0")
		}
		return err
	case <-ctx.Done():
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-done:
			return err
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			return <-done
		}
	}
}

func or(s, def string) string {
	if s != "" {
		return s
	}
	return def
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func (r *Ramdisk) exit(cause error) error {
	switch r.OnExit {
	case ExitPoweroff, ExitReboot, ExitRestart:
		cmd := unix.LINUX_REBOOT_CMD_POWER_OFF
		if r.OnExit != ExitPoweroff {
			cmd = unix.LINUX_REBOOT_CMD_RESTART
		}
		unix.Sync()
		r.Log.Info("imprint ramdisk-init: "+string(r.OnExit), "cause", cause)
		if err := unix.Reboot(cmd); err != nil {
			return fmt.Errorf("%w (and %s failed: %w)", cause, r.OnExit, err)
		}
		select {} // the kernel is going down
	}
	return cause
}
