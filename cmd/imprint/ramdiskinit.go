package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/imprint-dev/imprint/bootstrap"
)

const ramdiskInitUsage = `usage: imprint ramdisk-init --i-am-the-ramdisk [flags]

The bootstrap ramdisk's uinit (u-root's init starts it as /bin/uinit; the
initramfs bakes --i-am-the-ramdisk into /etc/uinit.flags). It mounts /run,
loads kernel modules (etc/imprint/modules.conf, then by modalias), waits for
the kernel's CRNG, brings the network up (the per-node archive's
/etc/imprint/network_data.json, else dracut's ip=, bond=, vlan=, ifname=,
nameserver= on the kernel command line, else DHCP on every NIC with a link),
runs the init.d scripts imprint build-ramdisk's elements installed in
/etc/imprint/init.d (once each, in name order, output on the console), then
runs
"imprint agent --kernel-cmdline /proc/cmdline" with the console as its output.

It refuses to run anywhere but in an initramfs as PID 1's child.
Kernel command line: imprint.on_exit=shell|poweroff|reboot|restart says what
happens when a step fails or the agent exits (default shell: u-root's init
then starts the console shell).
`

func runRamdiskInit(ctx context.Context, env *cmdEnv, args []string) int {
	fs := flag.NewFlagSet("ramdisk-init", flag.ContinueOnError)
	fs.SetOutput(env.stderr)
	fs.Usage = func() { fmt.Fprint(env.stderr, ramdiskInitUsage); fs.PrintDefaults() }
	confirmed := fs.Bool("i-am-the-ramdisk", false, "confirm this runs as the bootstrap ramdisk's uinit (required)")
	cmdlinePath := fs.String("kernel-cmdline", "/proc/cmdline", "kernel command line to read ip=, imprint.ip=, imprint.on_exit= from")
	modDir := fs.String("modules-dir", "", "kernel modules directory (default /lib/modules/$(uname -r))")
	modList := fs.String("modules-list", "/etc/imprint/modules.conf", "modules always loaded, one per line")
	entropy := fs.Duration("entropy-timeout", 30*time.Second, "longest wait for the kernel's CRNG")
	onExit := fs.String("on-exit", "", "shell, poweroff, reboot or restart (default: imprint.on_exit= or shell)")
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 2
	}
	log := slog.New(slog.NewTextHandler(env.stderr, &slog.HandlerOptions{})).With("cmd", "ramdisk-init")
	if err := bootstrap.CheckRamdisk(*confirmed, "/proc"); err != nil {
		fmt.Fprintf(env.stderr, "imprint ramdisk-init: refusing: %v\n", err)
		return 2
	}
	cmdline, err := os.ReadFile(*cmdlinePath)
	if err != nil {
		fmt.Fprintf(env.stderr, "imprint ramdisk-init: kernel-cmdline: %v\n", err)
		return 1
	}
	oe := *onExit
	if oe == "" {
		oe, _ = bootstrap.Lookup(bootstrap.ParseCmdline(string(cmdline)), "imprint.on_exit")
	}
	if oe == "" {
		oe = string(bootstrap.ExitShell)
	}
	mode, err := bootstrap.ParseOnExit(oe)
	if err != nil {
		log.Error("imprint ramdisk-init failed", "err", err)
		mode = bootstrap.ExitShell
	}
	if *modDir == "" {
		rel, err := bootstrap.KernelRelease()
		if err != nil {
			fmt.Fprintf(env.stderr, "imprint ramdisk-init: %v\n", err)
			return 1
		}
		*modDir = filepath.Join("/lib/modules", rel)
	}
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintf(env.stderr, "imprint ramdisk-init: find own binary: %v\n", err)
		return 1
	}
	r := &bootstrap.Ramdisk{
		Cmdline:        string(cmdline),
		ModulesDir:     *modDir,
		ModulesList:    *modList,
		SysRoot:        "/sys",
		EntropyTimeout: *entropy,
		AgentPath:      self,
		AgentArgs:      []string{"agent", "--kernel-cmdline", *cmdlinePath},
		OnExit:         mode,
		Log:            log,
	}
	if err := r.Run(ctx); err != nil {
		fmt.Fprintf(env.stderr, "imprint ramdisk-init: %v\n", err)
		return 1
	}
	return 0
}
