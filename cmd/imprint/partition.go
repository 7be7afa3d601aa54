package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/imprint-dev/imprint/agent"
	"github.com/imprint-dev/imprint/internal/sys"
	"github.com/imprint-dev/imprint/inventory"
	"github.com/imprint-dev/imprint/partition"
	"github.com/imprint-dev/imprint/prepare"
	"github.com/imprint-dev/imprint/provision"
)

const partitionUsage = `usage: imprint partition [flags] [FILE]
       (also as fa_partition)

Runs only the disk step of a provision document (FILE, default
/tmp/provision.json; "-" reads stdin): validates it, matches its disks to
this machine's (or to --inventory), computes the storage plan, then on the
planned disks only: tears down old md arrays and LVM, wipes old
signatures, writes the GPT, waits for the partition nodes (no udev),
creates md arrays, LVM PVs, VGs and LVs, and makes the filesystems that no
image fills. A disk that is mounted or held is refused, and no device the
plan does not name is touched.

A disk the document names by kernel name ("name": "loop3") is used even
where the inventory leaves such devices out, so a layout can be laid onto a
loop device or a spare disk on purpose.

--dry-run prints every operation (teardown included) and changes nothing.

Exit status: 0 done, 2 invalid document or impossible layout, 1 failure
(the error names the step, the device and the tool's stderr).
`

// runPartition is `imprint partition FILE` (fuel-agent's fa_partition).
func runPartition(ctx context.Context, env *cmdEnv, args []string) int {
	fs := newFlagSet(env, "partition", partitionUsage)
	var (
		invPath       string
		dryRun        bool
		noConfigdrive bool
		grub          int
		lvmConfig     string
		nodeTimeout   time.Duration
		verbose       bool
		jsonLog       bool
	)
	fs.StringVar(&invPath, "inventory", "", "hardware inventory JSON (imprint inventory) instead of this machine's disks")
	fs.BoolVar(&dryRun, "dry-run", false, "print the operations, change nothing")
	fs.BoolVar(&noConfigdrive, "no-configdrive", false, "plan no configdrive partition (fuel-agent prepare_configdrive=false)")
	fs.IntVar(&grub, "grub", 0, "grub version 1|2 (md metadata 0.90 with 1); 0 guesses it from the profile")
	fs.StringVar(&lvmConfig, "lvm-config", partition.DefaultLVMConfig, "lvm --config text given to every lvm command")
	fs.DurationVar(&nodeTimeout, "node-timeout", 30*time.Second, "how long to wait for each partition's device node")
	fs.BoolVar(&verbose, "v", false, "debug logs (every command run)")
	fs.BoolVar(&jsonLog, "json", false, "log as JSON")
	pos, code, ok := parseInterspersed(fs, args)
	if !ok {
		return code
	}
	if len(pos) > 1 {
		fmt.Fprintf(env.stderr, "partition: want at most one FILE, got %d arguments\n\n", len(pos))
		fs.Usage()
		return 2
	}
	file := "/tmp/provision.json"
	if len(pos) == 1 {
		file = pos[0]
	}
	if grub != 0 && grub != 1 && grub != 2 {
		fmt.Fprintf(env.stderr, "partition: --grub: want 1 or 2, got %d\n", grub)
		return 2
	}
	h := logHandler(env.stderr, verbose, jsonLog)
	log := slog.New(h).With("cmd", "partition")
	log.Info(agent.FuelAgentLine(agent.StepDisks), "input", file)

	data, err := planReadInput(env.stdin, file)
	if err != nil {
		fmt.Fprintf(env.stderr, "partition: %v\n", err)
		return 1
	}
	doc, err := provision.ParseAndValidate(data)
	if err != nil {
		planPrintProblems(env.stderr, file, err)
		return 2
	}

	invOpts := inventory.Options{Log: log.With("component", "inventory")}
	var inv *inventory.Inventory
	if invPath != "" {
		raw, err := planReadInput(env.stdin, invPath)
		if err != nil {
			fmt.Fprintf(env.stderr, "partition: %v\n", err)
			return 1
		}
		inv = &inventory.Inventory{}
		if err := json.Unmarshal(raw, inv); err != nil {
			fmt.Fprintf(env.stderr, "partition: inventory %s: %v\n", invPath, err)
			return 2
		}
	} else {
		disks, err := inventory.CollectDisks(ctx, invOpts)
		if err != nil {
			fmt.Fprintf(env.stderr, "partition: %v\n", err)
			return 1
		}
		inv = &inventory.Inventory{Disks: disks, Firmware: inventory.CollectFirmware(invOpts)}
	}
	partitionAddNamedDisks(ctx, log, invOpts, doc, inv)

	opts := partition.DefaultPlanOptions()
	opts.PrepareConfigdrive = !noConfigdrive
	opts.GrubVersion = grub
	job, err := prepare.Document(ctx, doc, inv, prepare.Options{Plan: &opts})
	if err != nil {
		planPrintProblems(env.stderr, file, err)
		return 2
	}
	plan := job.Plan
	for _, w := range job.Warnings {
		log.Warn("document", "path", w.Path, "warning", w.Msg)
	}
	if !dryRun {
		if err := agent.DestructiveAllowed(os.Getenv, kernelCmdline()); err != nil {
			fmt.Fprintf(env.stderr, "partition: %v\n", err)
			return 3
		}
	}

	deps := partition.ApplyDeps{
		Logger:    log,
		Runner:    &sys.Exec{Logger: log.With("component", "exec")},
		Devices:   &sys.Devices{NodeTimeout: nodeTimeout},
		LVMConfig: lvmConfig,
		Guard:     job.Devices,
	}
	if dryRun {
		ops, err := partition.Pretend(ctx, plan, deps)
		if err != nil {
			fmt.Fprintln(env.stderr, err) // "partition: STEP "DEVICE": ..."
			return 1
		}
		for _, op := range ops {
			fmt.Fprintln(env.stdout, op.String())
		}
		return 0
	}
	if err := partition.Apply(ctx, plan, deps); err != nil {
		fmt.Fprintln(env.stderr, err) // "partition: STEP "DEVICE": ..."
		return 1
	}
	return 0
}

// partitionAddNamedDisks adds to inv each disk the document names by kernel
// name ("name": "loop3") that inv lacks (the inventory leaves loop devices
// and the like out), when this machine has it.
func partitionAddNamedDisks(ctx context.Context, log *slog.Logger, opts inventory.Options, doc *provision.Document, inv *inventory.Inventory) {
	have := map[string]bool{}
	for _, d := range inv.Disks {
		have[d.Name] = true
		have[strings.TrimPrefix(d.Path, "/dev/")] = true
	}
	for _, s := range doc.KsMeta.PmData.KsSpaces {
		if s.Type != "disk" || s.Name == "" || have[s.Name] {
			continue
		}
		d, err := inventory.DescribeDisk(ctx, opts, s.Name)
		if err != nil {
			log.Debug("disk named by the document is not on this machine", "name", s.Name, "error", err)
			continue
		}
		log.Info("using the disk the document names", "name", s.Name, "device", d.Path)
		inv.Disks = append(inv.Disks, d)
		have[s.Name] = true
	}
}
