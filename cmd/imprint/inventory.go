package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"github.com/imprint-dev/imprint/agent"
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

--format nailgun prints instead the discovery document nailgun-agent POSTs
to Nailgun's /api/nodes/ (mac, ip, meta: interfaces, disks, cpu, memory,
system), so that an existing Nailgun can register the node: the admin
interface is the one BOOTIF= on the kernel command line names, else the
first with an IPv4 address; status is "discover" inside the bootstrap
ramdisk.
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
	format := fs.String("format", "json", "json (imprint's inventory) or nailgun (nailgun-agent's discovery document)")
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
	if *format != "json" && *format != "nailgun" {
		fmt.Fprintf(env.stderr, "imprint inventory: --format %q: want json or nailgun\n", *format)
		return 2
	}
	if *format == "nailgun" && len(names) > 0 {
		fmt.Fprintf(env.stderr, "imprint inventory: --format nailgun describes the whole node, not DEVICE arguments\n")
		return 2
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
		if *format == "nailgun" {
			out = inventory.Nailgun(inv, nailgunHost(opts.ProcRoot))
		}
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

// nailgunHost is what the nailgun discovery needs beyond the inventory, from
// the running system: addresses, the PXE MAC (BOOTIF=01-aa-bb-... as
// pxelinux and iPXE pass it), the host name, whether this is the ramdisk.
func nailgunHost(procRoot string) inventory.NailgunHost {
	h := inventory.NailgunHost{Addrs: map[string][]netip.Prefix{}, Bootstrap: agent.IsRamdisk()}
	if ifs, err := net.Interfaces(); err == nil {
		for _, ifc := range ifs {
			addrs, _ := ifc.Addrs()
			for _, a := range addrs {
				if p, err := netip.ParsePrefix(a.String()); err == nil {
					h.Addrs[ifc.Name] = append(h.Addrs[ifc.Name], p)
				}
			}
		}
	}
	if b, err := os.ReadFile(filepath.Join(procRoot, "cmdline")); err == nil {
		h.AdminMAC = bootifMAC(agent.ParseCmdline(string(b))["BOOTIF"])
	}
	h.FQDN, _ = os.Hostname()
	return h
}

// bootifMAC turns pxelinux's BOOTIF (01-52-54-00-12-34-56: ARP type, then
// the MAC) into 52:54:00:12:34:56; "" when it is not one.
func bootifMAC(v string) string {
	v = strings.ReplaceAll(v, "-", ":")
	if len(v) == 20 && strings.HasPrefix(v, "01:") {
		v = v[3:]
	}
	if hw, err := net.ParseMAC(v); err == nil && len(hw) == 6 {
		return hw.String()
	}
	return ""
}
