package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"

	"github.com/imprint-dev/imprint/inventory"
)

const inventoryUsage = `usage: imprint inventory [flags] [DEVICE...]

Prints the node's hardware as JSON: disks (sizes, sector sizes, the
/dev/disk/by-id and by-path names udev would give them, partitions,
holders, signatures), NICs, CPU, memory and DMI, read from sysfs, /proc
and the disks themselves (opened read-only). No udev is needed.

With DEVICE arguments (sda, /dev/loop3) only those disks are described,
as a JSON array, even ones the inventory leaves out (loop, read-only).
Flags may come before or after the device names.
`

// runInventory is `imprint inventory`.
func runInventory(ctx context.Context, env *cmdEnv, args []string) int {
	fs := newFlagSet(env, "inventory", inventoryUsage)
	var (
		opts    inventory.Options
		verbose bool
		compact bool
	)
	fs.StringVar(&opts.SysRoot, "sysfs", "/sys", "sysfs root (a captured tree to inspect another machine's)")
	fs.StringVar(&opts.DevRoot, "dev", "/dev", "directory of the device nodes")
	fs.StringVar(&opts.ProcRoot, "proc", "/proc", "procfs root")
	fs.BoolVar(&verbose, "v", false, "log why devices are left out (to stderr)")
	fs.BoolVar(&compact, "compact", false, "one line of JSON instead of indented")
	var names []string // flags may come before or after the device names
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return 0
			}
			return 2
		}
		if fs.NArg() == 0 {
			break
		}
		names = append(names, fs.Arg(0))
		args = fs.Args()[1:]
	}
	level := slog.LevelWarn
	if verbose {
		level = slog.LevelDebug
	}
	opts.Log = slog.New(slog.NewTextHandler(env.stderr, &slog.HandlerOptions{Level: level}))

	var out any
	if len(names) > 0 {
		disks := []inventory.Disk{}
		for _, name := range names {
			d, err := inventory.DescribeDisk(ctx, opts, name)
			if err != nil {
				fmt.Fprintf(env.stderr, "imprint %v\n", err)
				if errors.Is(err, inventory.ErrNoDevice) {
					return 2
				}
				return 1
			}
			disks = append(disks, d)
		}
		out = disks
	} else {
		inv, err := inventory.Collect(ctx, opts)
		if err != nil {
			fmt.Fprintf(env.stderr, "imprint %v\n", err)
			return 1
		}
		out = inv
	}
	enc := json.NewEncoder(env.stdout)
	if !compact {
		enc.SetIndent("", "  ")
	}
	if err := enc.Encode(out); err != nil {
		fmt.Fprintf(env.stderr, "imprint inventory: write: %v\n", err)
		return 1
	}
	return 0
}
