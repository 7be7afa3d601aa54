package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/imprint-dev/imprint/agent"
	"github.com/imprint-dev/imprint/bootloader"
	"github.com/imprint-dev/imprint/internal/sys"
	"github.com/imprint-dev/imprint/inventory"
	"github.com/imprint-dev/imprint/prepare"
	"github.com/imprint-dev/imprint/provision"
)

const bootloaderUsage = `usage: imprint bootloader [flags] FILE
       (also as fa_bootloader)

Runs only the bootloader step of the provision document FILE on disks that
were already partitioned and imaged: plans the layout again (to know the
filesystems and boot disks), mounts the target tree by depth under
--target, binds /dev /proc /sys, writes /etc/fstab by UUID,
/etc/default/grub (GRUB_CMDLINE_LINUX = pm_data.kernel_params,
GRUB_TIMEOUT=10), runs grub-mkconfig and grub-install --target=i386-pc on
every boot disk inside the target, writes the NIC udev rules, and unmounts
everything again (also on failure).
`

// runBootloader is `imprint bootloader FILE`.
func runBootloader(ctx context.Context, env *cmdEnv, args []string) int {
	fs := newFlagSet(env, "bootloader", bootloaderUsage)
	target := fs.String("target", "/tmp/target", "directory the target tree is mounted on")
	jsonLog := fs.Bool("json", false, "log as JSON")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	input := fs.Arg(0)
	if env.alias == "fa_bootloader" && fs.NArg() == 0 {
		input = "/tmp/provision.json" // fuel-agent's default input_data_file
	} else if fs.NArg() != 1 {
		fmt.Fprintf(env.stderr, "bootloader: want one provision document, got %d argument(s)\n", fs.NArg())
		fs.Usage()
		return 2
	}
	var h slog.Handler = slog.NewTextHandler(env.stderr, nil)
	if *jsonLog {
		h = slog.NewJSONHandler(env.stderr, nil)
	}
	log := slog.New(h).With("cmd", "bootloader")

	data, err := provision.ReadDocumentFile(input)
	if err != nil {
		fmt.Fprintf(env.stderr, "bootloader: %v\n", err)
		return 2
	}
	if err := agent.DestructiveAllowed(os.Getenv, kernelCmdline()); err != nil {
		fmt.Fprintf(env.stderr, "bootloader: %v\n", err)
		return 3
	}
	inv, err := inventory.Collect(ctx, inventory.Options{Log: log})
	if err != nil {
		fmt.Fprintf(env.stderr, "bootloader: inventory: %v\n", err)
		return 1
	}
	job, err := prepare.Prepare(ctx, data, inv, prepare.Options{BootloaderTarget: *target})
	if err != nil {
		fmt.Fprintf(env.stderr, "bootloader: %s is invalid:\n%s", input, problemList(err))
		return 2
	}
	log.Info(agent.FuelAgentLine(agent.StepBootloader), "input", input)
	step := agent.GrubBootloader{
		Installer: &bootloader.Installer{Runner: &sys.Exec{Logger: log}, Mounter: sys.Mounter{}, Logger: log},
		Target:    *target,
	}
	if err := step.Install(ctx, job); err != nil {
		fmt.Fprintf(env.stderr, "bootloader: %v\n", err)
		return 1
	}
	return 0
}
