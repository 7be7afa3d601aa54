package bootstrap

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// KernelModules is the real ModuleSys: finit_module(2) and /proc/modules.
type KernelModules struct{}

var _ ModuleSys = KernelModules{}

// Load implements ModuleSys.
func (KernelModules) Load(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	flags := 0
	if !strings.HasSuffix(path, ".ko") {
		flags |= 4 // MODULE_INIT_COMPRESSED_FILE: the kernel decompresses .ko.xz/.zst
	}
	if err := unix.FinitModule(int(f.Fd()), "", flags); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("finit_module %s: %w", path, err)
	}
	return nil
}

// Loaded implements ModuleSys.
func (KernelModules) Loaded() (map[string]bool, error) {
	f, err := os.Open("/proc/modules")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if name, _, ok := strings.Cut(sc.Text(), " "); ok {
			out[ModuleName(name)] = true
		}
	}
	return out, sc.Err()
}

// KernelRelease returns uname -r.
func KernelRelease() (string, error) {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "", fmt.Errorf("uname: %w", err)
	}
	return unix.ByteSliceToString(u.Release[:]), nil
}

// MountSpec is one filesystem the ramdisk needs mounted.
type MountSpec struct {
	Source, Target, FSType, Options string
	Mode                            os.FileMode // of the target directory when created
}

// DefaultMounts are what the agent and the storage tools need: u-root's init
// mounts all but /run, which LVM (/run/lock/lvm) and mdadm (/run/mdadm) use.
var DefaultMounts = []MountSpec{
	{"proc", "/proc", "proc", "", 0o555},
	{"sysfs", "/sys", "sysfs", "", 0o555},
	{"devtmpfs", "/dev", "devtmpfs", "mode=0755", 0o755},
	{"devpts", "/dev/pts", "devpts", "newinstance,ptmxmode=666,gid=5,mode=620", 0o755},
	{"tmpfs", "/dev/shm", "tmpfs", "mode=1777", 0o1777},
	{"tmpfs", "/run", "tmpfs", "mode=0755", 0o755},
	{"tmpfs", "/tmp", "tmpfs", "mode=1777", 0o1777},
}

// MountsStep mounts whatever of Mounts is not mounted yet.
type MountsStep struct {
	Mounts []MountSpec
	Log    *slog.Logger
}

// Name implements Step.
func (s *MountsStep) Name() string { return "mounts" }

// Run implements Step.
func (s *MountsStep) Run(context.Context) error {
	var errs []error
	for _, m := range s.Mounts {
		mounted, err := isMountpoint(m.Target)
		if err == nil && mounted {
			continue
		}
		if err := os.MkdirAll(m.Target, m.Mode|0o700); err != nil {
			errs = append(errs, fmt.Errorf("mount %s: mkdir: %w", m.Target, err))
			continue
		}
		if err := unix.Mount(m.Source, m.Target, m.FSType, unix.MS_NOSUID, m.Options); err != nil {
			errs = append(errs, fmt.Errorf("mount -t %s %s %s: %w", m.FSType, m.Source, m.Target, err))
			continue
		}
		s.Log.Info("mounted", "target", m.Target, "fstype", m.FSType)
	}
	return errors.Join(errs...)
}

// isMountpoint compares the device of p and its parent (true for "/").
func isMountpoint(p string) (bool, error) {
	var st, pst unix.Stat_t
	if err := unix.Stat(p, &st); err != nil {
		return false, err
	}
	if err := unix.Stat(filepath.Dir(p), &pst); err != nil {
		return false, err
	}
	return st.Dev != pst.Dev || p == "/", nil
}

// EntropyStep waits until the kernel's CRNG is initialized (getrandom no
// longer blocks), at most Timeout. virtio_rng / a hardware RNG, RDRAND or
// the jitter entropy source get it there; without any, Go's crypto/rand (TLS,
// DHCP transaction IDs) would block.
type EntropyStep struct {
	Timeout time.Duration
	Log     *slog.Logger
}

// Name implements Step.
func (s *EntropyStep) Name() string { return "entropy" }

// Run implements Step.
func (s *EntropyStep) Run(ctx context.Context) error {
	rng := readTrim("/sys/class/misc/hw_random/rng_current")
	t0 := time.Now()
	deadline := t0.Add(s.Timeout)
	buf := make([]byte, 1)
	for {
		_, err := unix.Getrandom(buf, unix.GRND_NONBLOCK)
		if err == nil {
			s.Log.Info("crng ready", "waited", time.Since(t0).Round(time.Millisecond), "hwrng", rng,
				"entropy_avail", readTrim("/proc/sys/kernel/random/entropy_avail"))
			return nil
		}
		if !errors.Is(err, unix.EAGAIN) {
			return fmt.Errorf("getrandom: %w", err)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("crng not initialized after %v (hwrng %q): add a hardware RNG (QEMU: -device virtio-rng-pci) or a CPU with RDRAND", s.Timeout, rng)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func readTrim(p string) string {
	b, err := os.ReadFile(p)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// ErrNotRamdisk is returned by CheckRamdisk outside the bootstrap ramdisk.
var ErrNotRamdisk = errors.New("not the imprint bootstrap ramdisk")

// CheckRamdisk refuses unless this process runs where ramdisk-init belongs:
// asked explicitly (confirmed, the --i-am-the-ramdisk flag baked into the
// initramfs), a child of PID 1, with the root filesystem an initramfs
// (rootfs, tmpfs or ramfs). It reads mountinfo from procRoot (/proc).
func CheckRamdisk(confirmed bool, procRoot string) error {
	var errs []error
	if !confirmed {
		errs = append(errs, errors.New("--i-am-the-ramdisk not given (it is set by the initramfs' /etc/uinit.flags)"))
	}
	if pp := os.Getppid(); pp != 1 {
		errs = append(errs, fmt.Errorf("parent is PID %d, not init (PID 1)", pp))
	}
	fstype, err := rootFSType(filepath.Join(procRoot, "self/mountinfo"))
	if err != nil {
		errs = append(errs, err)
	} else if fstype != "rootfs" && fstype != "tmpfs" && fstype != "ramfs" {
		errs = append(errs, fmt.Errorf("root filesystem is %s, not an initramfs", fstype))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w: %w", ErrNotRamdisk, err)
	}
	return nil
}

// rootFSType returns the filesystem type mounted on / (the last mount there
// wins, as the kernel stacks them).
func rootFSType(mountinfo string) (string, error) {
	b, err := os.ReadFile(mountinfo)
	if err != nil {
		return "", fmt.Errorf("read %s: %w", mountinfo, err)
	}
	fstype := ""
	for _, line := range strings.Split(string(b), "\n") {
		// id parent maj:min root mountpoint options [optional...] - fstype source superopts
		pre, post, ok := strings.Cut(line, " - ")
		if !ok {
			continue
		}
		f := strings.Fields(pre)
		pf := strings.Fields(post)
		if len(f) >= 5 && f[4] == "/" && len(pf) > 0 {
			fstype = pf[0]
		}
	}
	if fstype == "" {
		return "", fmt.Errorf("%s: no mount on /", mountinfo)
	}
	return fstype, nil
}

// EFIVarsMount mounts efivarfs with mount(2).
type EFIVarsMount struct{}

// Mount implements EFIVarsMounter.
func (EFIVarsMount) Mount(source, target, fstype string) error {
	return unix.Mount(source, target, fstype, unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "")
}
