// Command imprint is the single, statically linked multi-call binary of the
// imprint provisioning system: the agent that runs in the bootstrap ramdisk,
// the single-step tools (plan, partition, write-image, configdrive, ...) and
// the operator CLI.
//
// It dispatches on its first argument (imprint plan FILE) or, when invoked
// through a link, on the name it was called by, so the fuel-agent console
// script names Astute knows (provision, fa_partition, ...) work unchanged.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"sort"
	"strings"
	"syscall"
)

// command is one subcommand. run returns the process exit status:
// 0 success, 1 runtime failure, 2 usage or invalid input.
type command struct {
	name    string
	aliases []string // names the binary may be invoked as (fuel-agent's console scripts)
	summary string
	run     func(ctx context.Context, env *cmdEnv, args []string) int
}

// cmdEnv is what a subcommand may touch of the process: its streams. Passing
// it in keeps the subcommands testable without globals.
type cmdEnv struct {
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	// alias is the fuel-agent name the binary was invoked as ("provision",
	// "fa_partition"), empty when invoked as imprint: fuel-agent's exit
	// codes then apply.
	alias string
	// fuelAgentLog is where the fuel-agent aliases also write what they
	// write to stderr (main: /var/log/fuel-agent.log; "": nowhere).
	fuelAgentLog string
}

// fuelAgentLog is where fuel-agent logs, and where Astute's log parser
// (rsyslog-forwarded) reads the step lines and "Next chunk" progress.
const fuelAgentLog = "/var/log/fuel-agent.log"

// fuelAgentAliases are fuel-agent's console scripts: invoked by one of
// these names, everything the command writes to stderr (its log and its
// verdict) also goes to fuelAgentLog, as fuel-agent's log does.
var fuelAgentAliases = map[string]bool{
	"provision": true, "fa_partition": true, "fa_configdrive": true, "fa_copyimage": true, "fa_bootloader": true,
}

// teeFuelAgentLog makes env.stderr write to path as well (appended,
// created with its directory). A log that cannot be opened is said on
// stderr and the command goes on: the exit status stays the verdict.
func (env *cmdEnv) teeFuelAgentLog(path string) (closeLog func()) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		fmt.Fprintf(env.stderr, "imprint: log file %s: %v (logging to stderr only)\n", path, err)
		return func() {}
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		fmt.Fprintf(env.stderr, "imprint: log file %s: %v (logging to stderr only)\n", path, err)
		return func() {}
	}
	env.stderr = io.MultiWriter(env.stderr, f)
	return func() { f.Close() }
}

// commands lists every subcommand; each lives in its own file of this
// package. The ramdisk's build (-tags imprint_ramdisk) has the node's
// commands only: the controller's, the operator's and the builders' are
// left out with the packages they need (SQLite, PostgreSQL, BMC clients,
// the image builder), which halves the binary (hostcommands.go).
func commands() []command {
	return append([]command{
		{name: "version", summary: "print the version", run: runVersion},
		{name: "inventory", summary: "print the hardware inventory (disks with udev-style names, NICs, CPU, memory, DMI) as JSON", run: runInventory},
		{name: "agent", summary: "run the provisioning agent (HTTP API on :9999)", run: runAgent},
		{name: "provision", aliases: []string{"provision"}, summary: "run the whole provisioning job on /tmp/provision.json in the foreground (fuel-agent's provision)", run: runProvision},
		{name: "bootloader", aliases: []string{"fa_bootloader"}, summary: "run only the bootloader step (fstab, grub) of a provision.json", run: runBootloader},
		{name: "ramdisk-init", aliases: []string{"uinit"}, summary: "bootstrap ramdisk's uinit: modules, entropy, network, then the agent", run: runRamdiskInit},
		{name: "node-archive", summary: "write a node's initramfs archive (token, network document, CA bundle) to append to the bootstrap", run: runNodeArchive},
		{name: "plan", summary: "validate a provision.json and print its storage plan (partitions, md, LVM, filesystems, images)", run: runPlan},
		{name: "partition", aliases: []string{"fa_partition"}, summary: "lay only the storage plan of a provision.json onto the disks (teardown, wipe, GPT, md, LVM, mkfs)", run: runPartition},
		{name: "convert-image", summary: "convert a gzip/zstd/xz/raw image into a multi-frame zstd image with its manifest", run: runConvertImage},
		{name: "write-image", aliases: []string{"fa_copyimage"}, summary: "stream a compressed image onto a block device, verified and resumable", run: runWriteImage},
		{name: "configdrive", aliases: []string{"fa_configdrive"}, summary: "render the cloud-init configdrive (NoCloud or config-2, vfat or ISO9660) for a provision.json", run: runConfigdrive},
	}, hostCommands()...)
}

// hostCommandList describes the commands of the full build only; the
// ramdisk's build keeps their names and says where they are.
var hostCommandList = []command{
	{name: "controller", summary: "run the reference controller: bootstrap and images over HTTP, iPXE per MAC, provision.json for discovered nodes, flip to local boot, reboot"},
	{name: "nodes", summary: "show a controller's nodes (list, show NODE with its timeline and last result) over its operator API"},
	{name: "ctl", summary: "drive an agent's API: inventory, plan, provision, status, watch, reboot"},
	{name: "pxe", summary: "write the iPXE/pxelinux scripts that boot the bootstrap ramdisk, and the local-disk flip"},
	{name: "build-image", aliases: []string{"fa_build_image"}, summary: "build target OS images from a Fuel image build config (debootstrap, elements)"},
	{name: "build-ramdisk", summary: "add diskimage-builder elements (binaries with their libraries, files, extra-data.d, init.d) to the bootstrap ramdisk"},
	{name: "get-kernel", summary: "extract the kernel and initrd from a built image (disk-image-get-kernel)"},
}

var version = "dev" // set with -ldflags "-X main.version=..."

func runVersion(_ context.Context, env *cmdEnv, _ []string) int {
	fmt.Fprintln(env.stdout, "imprint", version)
	return 0
}

// softMemoryLimit is the Go heap's soft limit unless GOMEMLIMIT says
// otherwise. On a bootstrap node the ramdisk's files share RAM with us,
// and the image writer's steady state needs about 30 MiB of heap (members
// in flight, download chunks); without a limit the GC lets the heap grow
// to twice that before collecting. The limit is soft: the GC works harder
// near it, nothing fails.
const softMemoryLimit = 40 << 20

func main() {
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(softMemoryLimit)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	env := &cmdEnv{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, fuelAgentLog: fuelAgentLog}
	os.Exit(dispatch(ctx, env, os.Args))
}

func dispatch(ctx context.Context, env *cmdEnv, argv []string) int {
	cmds := commands()
	self := filepath.Base(argv[0])
	for _, c := range cmds {
		for _, a := range c.aliases {
			if a == self {
				env.alias = a
				if fuelAgentAliases[a] && env.fuelAgentLog != "" {
					closeLog := env.teeFuelAgentLog(env.fuelAgentLog)
					defer closeLog()
				}
				code := c.run(ctx, env, argv[1:])
				if fuelAgentAliases[a] {
					code = fuelAgentExit(code)
				}
				return code
			}
		}
	}
	if len(argv) < 2 || argv[1] == "-h" || argv[1] == "--help" || argv[1] == "help" {
		usage(env.stderr, cmds)
		if len(argv) < 2 {
			return 2
		}
		return 0
	}
	for _, c := range cmds {
		if c.name == argv[1] {
			return c.run(ctx, env, argv[2:])
		}
	}
	fmt.Fprintf(env.stderr, "imprint: unknown command %q\n\n", argv[1])
	usage(env.stderr, cmds)
	return 2
}

func usage(w io.Writer, cmds []command) {
	sort.Slice(cmds, func(i, j int) bool { return cmds[i].name < cmds[j].name })
	fmt.Fprintln(w, "usage: imprint COMMAND [ARGS]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "commands:")
	for _, c := range cmds {
		line := fmt.Sprintf("  %-14s %s", c.name, c.summary)
		if len(c.aliases) > 0 {
			line += " (also as " + strings.Join(c.aliases, ", ") + ")"
		}
		fmt.Fprintln(w, line)
	}
}

// parseInterspersed parses fs's flags wherever they stand among the
// positional arguments (imprint write-image URL DEV --sha256 H) and returns
// the positional ones. When ok is false the command ends with code: 0 after
// -h, 2 after a flag error (fs has printed it).
func parseInterspersed(fs *flag.FlagSet, args []string) (pos []string, code int, ok bool) {
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, 0, false
			}
			return nil, 2, false
		}
		if fs.NArg() == 0 {
			return pos, 0, true
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// logHandler is the single-step commands' log handler on w: text, or JSON
// with jsonLog; debug level with verbose.
func logHandler(w io.Writer, verbose, jsonLog bool) slog.Handler {
	opts := &slog.HandlerOptions{Level: slog.LevelInfo}
	if verbose {
		opts.Level = slog.LevelDebug
	}
	if jsonLog {
		return slog.NewJSONHandler(w, opts)
	}
	return slog.NewTextHandler(w, opts)
}

// stringList is a repeatable string flag.
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

// newFlagSet is a subcommand's flag set: errors and usage on stderr, the
// usage text followed by the flags.
func newFlagSet(env *cmdEnv, name, usage string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(env.stderr)
	fs.Usage = func() {
		fmt.Fprint(env.stderr, usage)
		fmt.Fprintln(env.stderr, "\nflags:")
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses args; when it returns ok false the command exits with
// code (0 after -h, 2 on a bad flag: the flag package printed why).
func parseFlags(fs *flag.FlagSet, args []string) (code int, ok bool) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0, false
		}
		return 2, false
	}
	return 0, true
}
