package bootloader

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/imprint-dev/imprint/partition"
	"github.com/imprint-dev/imprint/provision"
)

// Runner runs commands and returns their standard output; a failure's error
// names the argv and carries the standard error.
type Runner interface {
	Run(ctx context.Context, name string, args ...string) ([]byte, error)
	// RunChroot runs name (looked up in the PATH directories under root)
	// with root as its root directory, as `chroot ROOT NAME ARGS...` would.
	RunChroot(ctx context.Context, root, name string, args ...string) ([]byte, error)
}

// Mounter mounts and unmounts filesystems (internal/sys.Mounter is the
// real one).
type Mounter interface {
	// Mount mounts source (a device) of type fstype on target with the
	// filesystem options data; bind makes a plain bind mount of the
	// directory source instead.
	Mount(source, target, fstype string, bind bool, data string) error
	// Unmount unmounts target (never lazily).
	Unmount(target string) error
}

// Request is one bootloader installation.
type Request struct {
	Plan *partition.Plan
	// KernelParams is pm_data.kernel_params: GRUB_CMDLINE_LINUX.
	KernelParams string
	// UdevRules is kernel_options.udevrules: "mac1_eth0,mac2_eth1".
	UdevRules string
	// Target is the directory the target tree is mounted on (default
	// /tmp/target); it is created when missing.
	Target string
	// GrubTimeout is GRUB_TIMEOUT and GRUB_RECORDFAIL_TIMEOUT (default 10).
	GrubTimeout int
	// Guard, when set, must admit every device Install mounts and every
	// grub-install target (the prepared job's devguard.Set).
	Guard interface {
		Check(path, what string) error
	} `json:"-"`
}

// check asks the request's guard about dev.
func (r Request) check(dev, what string) error {
	if r.Guard == nil {
		return nil
	}
	return r.Guard.Check(dev, what)
}

// Installer carries out Requests.
type Installer struct {
	Runner  Runner
	Mounter Mounter
	Logger  *slog.Logger
	// EFIVars is where efivarfs is mounted (default /sys/firmware/efi/efivars);
	// NVRAM entries are written only when it holds variables (efi.go).
	EFIVars string
}

// Validate reports every problem of the request that can be known without
// touching anything.
func (r Request) Validate() error {
	if r.Plan == nil {
		return errors.New("bootloader: no plan")
	}
	// The document rules are provision's (its Validate reports them with
	// their paths before anything runs); they are checked again here with
	// the same functions, for a Request built without a document.
	var errs []error
	root := false
	for i, fs := range r.Plan.FSs {
		if fs.Mount == "/" {
			root = true
		}
		if strings.HasPrefix(fs.Mount, "/") {
			if err := provision.CheckMountPoint(fs.Mount); err != nil {
				errs = append(errs, fmt.Errorf("fss[%d].mount: %q %w", i, fs.Mount, err))
			}
		}
	}
	if !root {
		errs = append(errs, errors.New("fss: no filesystem is mounted on /"))
	}
	if len(r.Plan.BootDisks()) == 0 {
		errs = append(errs, errors.New("bootloader: the plan marks no disk for grub"))
	}
	if err := provision.CheckKernelParams(r.KernelParams); err != nil {
		errs = append(errs, fmt.Errorf("ks_meta.pm_data.kernel_params: %w", err))
	}
	for _, err := range provision.CheckUdevRules(r.UdevRules) {
		errs = append(errs, fmt.Errorf("kernel_options.udevrules: %w", err))
	}
	return errors.Join(errs...)
}

// mountsByDepth are the plan's filesystems with an absolute mount point,
// parents before children (/, /boot, /var, /var/lib).
func mountsByDepth(p *partition.Plan) []partition.FS {
	var out []partition.FS
	for _, fs := range p.FSs {
		if strings.HasPrefix(fs.Mount, "/") && fs.Type != "swap" {
			out = append(out, fs)
		}
	}
	depth := func(m string) int {
		if m == "/" {
			return 0
		}
		return strings.Count(m, "/")
	}
	sort.SliceStable(out, func(i, j int) bool {
		di, dj := depth(out[i].Mount), depth(out[j].Mount)
		if di != dj {
			return di < dj
		}
		return out[i].Mount < out[j].Mount
	})
	return out
}

// Install runs the whole step. Everything it mounted is unmounted before it
// returns, in reverse order, whatever happened; unmount failures are part of
// the returned error.
func (in *Installer) Install(ctx context.Context, req Request) (err error) {
	if err := req.Validate(); err != nil {
		return err
	}
	log := in.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if req.Target == "" {
		req.Target = "/tmp/target"
	}
	if req.GrubTimeout <= 0 {
		req.GrubTimeout = 10
	}
	t := req.Target

	var mounted []string
	defer func() {
		var uerrs []error
		for i := len(mounted) - 1; i >= 0; i-- {
			if e := in.Mounter.Unmount(mounted[i]); e != nil {
				uerrs = append(uerrs, fmt.Errorf("bootloader: unmount %q: %w", mounted[i], e))
			} else {
				log.Debug("unmounted", "target", mounted[i])
			}
		}
		err = errors.Join(append([]error{err}, uerrs...)...)
	}()

	if err := os.MkdirAll(t, 0o755); err != nil {
		return fmt.Errorf("bootloader: create target %q: %w", t, err)
	}
	for _, fs := range mountsByDepth(req.Plan) {
		dir := filepath.Join(t, fs.Mount)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("bootloader: mount %q: create %q: %w", fs.Device, dir, err)
		}
		if err := req.check(fs.Device, "bootloader mount"); err != nil {
			return &DeviceError{Device: fs.Device, Err: fmt.Errorf("bootloader: %w", err)}
		}
		if err := in.Mounter.Mount(fs.Device, dir, fs.Type, false, ""); err != nil {
			return &DeviceError{Device: fs.Device, Err: fmt.Errorf("bootloader: mount %q (%s) on %q: %w", fs.Device, fs.Type, dir, err)}
		}
		mounted = append(mounted, dir)
		log.Info("mounted", "device", fs.Device, "mount", fs.Mount, "type", fs.Type, "target", dir)
	}
	for _, pseudo := range []string{"/sys", "/dev", "/proc"} {
		dir := filepath.Join(t, pseudo)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("bootloader: bind %s: create %q: %w", pseudo, dir, err)
		}
		if err := in.Mounter.Mount(pseudo, dir, "", true, ""); err != nil {
			return fmt.Errorf("bootloader: bind %s on %q: %w", pseudo, dir, err)
		}
		mounted = append(mounted, dir)
	}

	fstab, err := in.fstab(ctx, req.Plan)
	if err != nil {
		return err
	}
	grubDefault, err := findGrubDefault(t)
	if err != nil {
		return err
	}
	old, err := os.ReadFile(filepath.Join(t, grubDefault))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("bootloader: read %s: %w", grubDefault, err)
	}
	if err := writeFile(t, grubDefault, EditGrubDefault(old, req.KernelParams, req.GrubTimeout)); err != nil {
		return err
	}
	log.Info("grub defaults written", "file", grubDefault, "kernel_params", req.KernelParams, "timeout", req.GrubTimeout)

	tools, err := findGrub(t)
	if err != nil {
		return err
	}
	if err := in.fixInitramfs(ctx, t, req.Plan, log); err != nil {
		return err
	}
	if _, err := in.Runner.RunChroot(ctx, t, tools.mkconfig, "-o", tools.cfg); err != nil {
		return fmt.Errorf("bootloader: grub config: %w", err)
	}
	for _, disk := range req.Plan.BootDisks() {
		if !provision.BootModeWantsBIOS(provision.ResolveBootMode(req.Plan.BootMode, false)) {
			break
		}
		if err := req.check(disk, "grub-install target"); err != nil {
			return &DeviceError{Device: disk, Err: fmt.Errorf("bootloader: %w", err)}
		}
		if _, err := in.Runner.RunChroot(ctx, t, tools.install, "--target=i386-pc", disk); err != nil {
			return &DeviceError{Device: disk, Err: fmt.Errorf("bootloader: grub-install on %q: %w", disk, err)}
		}
		log.Info("grub installed", "disk", disk)
	}
	if provision.BootModeWantsESP(req.Plan.BootMode) {
		if err := in.installEFI(ctx, req, t, tools.install, req.Plan, log); err != nil {
			return err
		}
		fstab = ESPFstabOptions(fstab)
	}

	rules, _ := parseUdevRules(req.UdevRules)
	if err := writeFile(t, "/etc/udev/rules.d/70-persistent-net.rules", UdevNetRules(rules)); err != nil {
		return err
	}
	if err := writeFile(t, "/etc/udev/rules.d/75-persistent-net-generator.rules", nil); err != nil {
		return err
	}
	// Fuel's first-boot hook removes it before starting nailgun-agent.
	if err := writeFile(t, "/etc/nailgun-agent/nodiscover", nil); err != nil {
		return err
	}
	if err := writeFile(t, "/etc/fstab", fstab); err != nil {
		return err
	}
	log.Info("fstab written", "entries", bytes.Count(fstab, []byte("\n")))
	syncFS()
	return nil
}

// DeviceError names the device a failure is about.
type DeviceError struct {
	Device string
	Err    error
}

func (e *DeviceError) Error() string { return e.Err.Error() }
func (e *DeviceError) Unwrap() error { return e.Err }

// DeviceName returns the device (the agent reports it).
func (e *DeviceError) DeviceName() string { return e.Device }

// fstab reads every filesystem's UUID with blkid and renders /etc/fstab.
func (in *Installer) fstab(ctx context.Context, p *partition.Plan) ([]byte, error) {
	var entries []FstabEntry
	for _, fs := range p.FSs {
		if fs.Mount == "" || fs.Mount == "none" {
			continue
		}
		out, err := in.Runner.Run(ctx, "blkid", "-c", "/dev/null", "-o", "value", "-s", "UUID", fs.Device)
		uuid := strings.TrimSpace(string(out))
		if err != nil || uuid == "" {
			if err == nil {
				err = errors.New("no UUID")
			}
			return nil, &DeviceError{Device: fs.Device, Err: fmt.Errorf("bootloader: fstab: UUID of %q: %w", fs.Device, err)}
		}
		if !fstabUUID(uuid) {
			return nil, &DeviceError{Device: fs.Device, Err: fmt.Errorf("bootloader: fstab: UUID of %q: blkid says %q, not a filesystem UUID", fs.Device, uuid)}
		}
		entries = append(entries, FstabEntry{UUID: uuid, Mount: fs.Mount, Type: fs.Type})
	}
	return Fstab(entries), nil
}

// FstabEntry is one filesystem of /etc/fstab.
type FstabEntry struct {
	UUID  string
	Mount string // absolute path or "swap"
	Type  string
}

// Fstab renders fuel-agent's /etc/fstab: one line per filesystem,
// "UUID=<uuid> <mount> <type> defaults 0 0", errors=panic on /, in plan
// order.
func Fstab(entries []FstabEntry) []byte {
	var b bytes.Buffer
	b.WriteString("# written by imprint\n")
	for _, e := range entries {
		opts := "defaults"
		mount, typ := e.Mount, e.Type
		switch {
		case mount == "/":
			opts = "defaults,errors=panic"
		case mount == "swap" || typ == "swap":
			mount, typ = "swap", "swap"
		}
		fmt.Fprintf(&b, "UUID=%s %s %s %s 0 0\n", fstabEscape(e.UUID), fstabEscape(mount), fstabEscape(typ), opts)
	}
	return b.Bytes()
}

// fstabEscape writes a field as fstab(5) and getmntent(3) read it: space,
// tab, newline and backslash as octal escapes (\040, \011, \012, \134),
// so that no value can split its line or add one. ("#" needs no escape
// inside a field: only a line beginning with it is a comment.)
func fstabEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch r {
		case ' ', '\t', '\n', '\\':
			fmt.Fprintf(&b, "\\%03o", r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// fstabUUID: what blkid prints as a filesystem UUID: hex digits and
// dashes (8-4-4-4-12, vfat's XXXX-XXXX); letters and digits are let
// through, anything that could end a field or a line is not.
func fstabUUID(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r == '-') {
			return false
		}
	}
	return true
}

// shQuote quotes s for a POSIX shell: single quotes around it, each
// single quote inside written as '\” . The shell sees exactly s, whatever
// it holds (a $(...), a backquote, a double quote, spaces).
func shQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// EditGrubDefault rewrites /etc/default/grub as fuel-agent does: the
// GRUB_CMDLINE_LINUX line becomes the kernel parameters, GRUB_TIMEOUT the
// timeout, GRUB_HIDDEN_TIMEOUT* lines go, GRUB_RECORDFAIL_TIMEOUT is set.
// Every other line (GRUB_CMDLINE_LINUX_DEFAULT included) is kept.
//
// Beyond fuel-agent: when the kernel parameters put a console on a serial
// port (console=ttyS1,115200n8), grub gets that port too
// (GRUB_TERMINAL="serial console", GRUB_SERIAL_COMMAND), replacing any
// GRUB_TERMINAL* line: the menu is seen where the kernel's messages go,
// and grub does not use gfxterm, which stalls on a machine without a video
// card before loading the kernel.
func EditGrubDefault(old []byte, kernelParams string, timeout int) []byte {
	var out []string
	setCmdline, setTimeout := false, false
	serialCmd, serial := grubSerialCommand(kernelParams)
	lines := strings.Split(strings.TrimRight(string(old), "\n"), "\n")
	if len(old) == 0 {
		lines = nil
	}
	for _, l := range lines {
		key, _, _ := strings.Cut(strings.TrimSpace(l), "=")
		switch {
		case key == "GRUB_CMDLINE_LINUX":
			if !setCmdline {
				out = append(out, "GRUB_CMDLINE_LINUX="+shQuote(kernelParams))
				setCmdline = true
			}
		case key == "GRUB_TIMEOUT":
			if !setTimeout {
				out = append(out, fmt.Sprintf("GRUB_TIMEOUT=%d", timeout))
				setTimeout = true
			}
		case strings.HasPrefix(key, "GRUB_HIDDEN_TIMEOUT"), key == "GRUB_RECORDFAIL_TIMEOUT":
		case serial && (strings.HasPrefix(key, "GRUB_TERMINAL") || key == "GRUB_SERIAL_COMMAND"):
		default:
			out = append(out, l)
		}
	}
	if !setCmdline {
		out = append(out, "GRUB_CMDLINE_LINUX="+shQuote(kernelParams))
	}
	if !setTimeout {
		out = append(out, fmt.Sprintf("GRUB_TIMEOUT=%d", timeout))
	}
	if serial {
		out = append(out, "GRUB_TERMINAL="+shQuote("serial console"), "GRUB_SERIAL_COMMAND="+shQuote(serialCmd))
	}
	out = append(out, fmt.Sprintf("GRUB_RECORDFAIL_TIMEOUT=%d", timeout))
	return []byte(strings.Join(out, "\n") + "\n")
}

// grubSerialCommand is grub's serial command for the last console=ttyS<n>
// of the kernel parameters (console=ttyS0,115200n8: unit 0, 115200 bps;
// no speed: Linux's and grub's 9600).
func grubSerialCommand(kernelParams string) (string, bool) {
	cmd, ok := "", false
	for _, f := range strings.Fields(kernelParams) {
		rest, found := strings.CutPrefix(f, "console=ttyS")
		if !found {
			continue
		}
		unit, opts, _ := strings.Cut(rest, ",")
		if unit == "" || strings.Trim(unit, "0123456789") != "" {
			continue
		}
		speed := strings.TrimRight(opts, "noeNOE5678r") // 115200n8 -> 115200
		if speed == "" || strings.Trim(speed, "0123456789") != "" {
			speed = "9600"
		}
		cmd, ok = fmt.Sprintf("serial --unit=%s --speed=%s", unit, speed), true
	}
	return cmd, ok
}

// findGrubDefault picks /etc/default/grub, or /etc/sysconfig/grub when only
// that exists (fuel-agent's order).
func findGrubDefault(t string) (string, error) {
	for _, f := range []string{"/etc/default/grub", "/etc/sysconfig/grub"} {
		if _, err := os.Stat(filepath.Join(t, f)); err == nil {
			return f, nil
		}
	}
	return "/etc/default/grub", nil
}

type grubTools struct{ install, mkconfig, cfg string }

// chrootPath is where the target's tools are looked for (the directories
// Runner.RunChroot searches).
var chrootPath = []string{"/usr/sbin", "/usr/bin", "/sbin", "/bin"}

// findGrub finds grub2's tools in the target: Debian's grub-* or Red Hat's
// grub2-*.
func findGrub(t string) (grubTools, error) {
	dirs := chrootPath
	has := func(name string) bool {
		for _, d := range dirs {
			if fi, err := os.Stat(filepath.Join(t, d, name)); err == nil && !fi.IsDir() {
				return true
			}
		}
		return false
	}
	switch {
	case has("grub-install") && has("grub-mkconfig"):
		return grubTools{"grub-install", "grub-mkconfig", "/boot/grub/grub.cfg"}, nil
	case has("grub2-install") && has("grub2-mkconfig"):
		return grubTools{"grub2-install", "grub2-mkconfig", "/boot/grub2/grub.cfg"}, nil
	}
	return grubTools{}, fmt.Errorf("bootloader: the target image has no grub2 (grub-install and grub-mkconfig, or grub2-*, under %s)", strings.Join(dirs, ", "))
}

// UdevRule names the NIC with a MAC.
type UdevRule struct{ MAC, Name string }

// parseUdevRules parses kernel_options.udevrules ("mac_name,mac_name").
func parseUdevRules(s string) ([]UdevRule, error) {
	var out []UdevRule
	var errs []error
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		mac, name, ok := strings.Cut(item, "_")
		if !ok || mac == "" || name == "" || strings.Count(mac, ":") != 5 {
			errs = append(errs, fmt.Errorf("%q is not MAC_NAME", item))
			continue
		}
		out = append(out, UdevRule{MAC: strings.ToLower(mac), Name: name})
	}
	return out, errors.Join(errs...)
}

// UdevNetRules renders 70-persistent-net.rules as fuel-agent does.
func UdevNetRules(rules []UdevRule) []byte {
	var b bytes.Buffer
	b.WriteString("# Generated by imprint (fuel-agent fix_udev_net_rules)\n")
	for _, r := range rules {
		fmt.Fprintf(&b, "SUBSYSTEM==\"net\", ACTION==\"add\", DRIVERS==\"?*\", ATTR{address}==\"%s\", ATTR{type}==\"1\", KERNEL==\"eth*\", NAME=\"%s\"\n", r.MAC, r.Name)
	}
	return b.Bytes()
}

// writeFile writes name (absolute inside the target t), creating parents.
// A symlink there is replaced, never followed out of the target.
func writeFile(t, name string, data []byte) error {
	p := filepath.Join(t, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return fmt.Errorf("bootloader: write %s: %w", name, err)
	}
	if fi, err := os.Lstat(p); err == nil && fi.Mode()&os.ModeSymlink != 0 {
		if err := os.Remove(p); err != nil {
			return fmt.Errorf("bootloader: write %s: replace symlink: %w", name, err)
		}
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		return fmt.Errorf("bootloader: write %s: %w", name, err)
	}
	return nil
}
