package bootloader

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/imprint-dev/imprint/partition"
)

// UEFI boot (boot modes uefi and both, partition/esp.go):
//
//   - grub-install --target=x86_64-efi into every ESP of the plan, through
//     shim when the image carries the distribution's signed chain
//     (shim-signed and grub-efi-amd64-signed: /usr/lib/shim/shimx64.efi.signed
//     and /usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed), so Secure
//     Boot firmware with Microsoft's keys boots it;
//   - the same chain copied to the removable-media path EFI/BOOT/BOOTX64.EFI
//     of each ESP, for firmware that loses or ignores its NVRAM;
//   - when the ramdisk was booted by UEFI (efivarfs mounted), one NVRAM
//     entry per ESP written with efibootmgr, entries that point at
//     partitions which no longer exist (the disks just wiped) or duplicate
//     ours removed, and BootOrder rewritten with the network entries first:
//     the controller's iPXE answers `exit` once the node is provisioned,
//     and the firmware then goes on to the next entry, the disk.
//
// The ESPs are independent, each a full copy, each with its own NVRAM
// entry; only the first is mounted (/boot/efi, nofail) by the installed
// system. The grub.cfg the EFI grub reads is /boot's, so a kernel update
// needs no ESP sync; only a grub package update would (Debian's grub-efi
// postinst reinstalls into /boot/efi alone).

// Files of the signed boot chain in a Debian or Ubuntu target.
const (
	shimSigned = "/usr/lib/shim/shimx64.efi.signed"
	grubSigned = "/usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed"
	grubEFIMod = "/usr/lib/grub/x86_64-efi"
)

// efiVarsDefault is where efivarfs is mounted.
const efiVarsDefault = "/sys/firmware/efi/efivars"

// espTempDir is where the ESPs other than the first are mounted, inside the
// target, while grub is installed into them.
const espTempDir = "/run/imprint-esp"

// efiChain says what boots from an ESP.
type efiChain struct {
	ID       string // EFI/<ID>: the distribution (os-release ID)
	Shim     bool   // shim + signed grub
	Loader   string // the NVRAM entry's loader, \EFI\<ID>\shimx64.efi or grubx64.efi
	Fallback []fallbackFile
}

// fallbackFile is one copy into EFI/BOOT.
type fallbackFile struct{ From, To string }

// detectEFIChain reads the target: the distribution's EFI directory name
// and whether the signed chain is there.
func detectEFIChain(t string) (efiChain, error) {
	if fi, err := os.Stat(filepath.Join(t, grubEFIMod)); err != nil || !fi.IsDir() {
		return efiChain{}, fmt.Errorf("bootloader: the target image has no %s (package grub-efi-amd64-bin): it cannot boot UEFI", grubEFIMod)
	}
	c := efiChain{ID: osReleaseID(t)}
	_, e1 := os.Stat(filepath.Join(t, shimSigned))
	_, e2 := os.Stat(filepath.Join(t, grubSigned))
	c.Shim = e1 == nil && e2 == nil
	if c.Shim {
		c.Loader = `\EFI\` + c.ID + `\shimx64.efi`
		c.Fallback = []fallbackFile{
			{"shimx64.efi", "BOOTX64.EFI"}, {"grubx64.efi", "grubx64.efi"}, {"mmx64.efi", "mmx64.efi"},
		}
	} else {
		c.Loader = `\EFI\` + c.ID + `\grubx64.efi`
		c.Fallback = []fallbackFile{{"grubx64.efi", "BOOTX64.EFI"}}
	}
	return c, nil
}

// osReleaseID is ID= of the target's os-release, lower case; "debian" when
// missing or unusable as a directory name.
func osReleaseID(t string) string {
	for _, f := range []string{"/etc/os-release", "/usr/lib/os-release"} {
		b, err := os.ReadFile(filepath.Join(t, f))
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			v, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "ID=")
			if !ok {
				continue
			}
			v = strings.ToLower(strings.Trim(v, `"'`))
			if v != "" && strings.Trim(v, "abcdefghijklmnopqrstuvwxyz0123456789._-") == "" {
				return v
			}
		}
	}
	return "debian"
}

// grubEFIArgs is the grub-install of one ESP mounted at dir (inside the
// target). NVRAM is left to efibootmgr in the ramdisk (--no-nvram): the
// chroot has no efivarfs.
func grubEFIArgs(c efiChain, dir string) []string {
	sb := "--no-uefi-secure-boot"
	if c.Shim {
		sb = "--uefi-secure-boot"
	}
	return []string{"--target=x86_64-efi", "--efi-directory=" + dir, "--bootloader-id=" + c.ID, sb, "--no-nvram", "--recheck"}
}

// installEFI installs the chain into every ESP of the plan and, when the
// ramdisk runs under UEFI, writes the NVRAM entries.
func (in *Installer) installEFI(ctx context.Context, req Request, t, install string, p *partition.Plan, log *slog.Logger) error {
	esps := p.ESPs()
	if len(esps) == 0 {
		return fmt.Errorf("bootloader: boot mode %q but the plan has no EFI System Partition", p.BootMode)
	}
	chain, err := detectEFIChain(t)
	if err != nil {
		return err
	}
	log.Info("EFI boot chain", "id", chain.ID, "shim", chain.Shim, "loader", chain.Loader)
	for i, esp := range esps {
		dir := partition.ESPMount
		if esp.Mount != partition.ESPMount {
			dir = path.Join(espTempDir, strconv.Itoa(i))
			if err := req.check(esp.Device, "ESP mount"); err != nil {
				return &DeviceError{Device: esp.Device, Err: fmt.Errorf("bootloader: %w", err)}
			}
			if err := in.withMount(esp.Device, filepath.Join(t, dir), func() error {
				return in.installOneESP(ctx, t, install, dir, esp, chain, log)
			}); err != nil {
				return err
			}
			continue
		}
		if err := in.installOneESP(ctx, t, install, dir, esp, chain, log); err != nil {
			return err
		}
	}
	vars := in.EFIVars
	if vars == "" {
		vars = efiVarsDefault
	}
	if ents, err := os.ReadDir(vars); err != nil || len(ents) == 0 {
		log.Warn("no efivarfs: the ramdisk was not booted by UEFI, NVRAM entries not written; the firmware boots the removable path EFI/BOOT/BOOTX64.EFI", "efivars", vars)
		return nil
	}
	return in.writeNVRAM(ctx, p, esps, chain, log)
}

// withMount mounts dev (vfat) on dir for fn.
func (in *Installer) withMount(dev, dir string, fn func() error) (err error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("bootloader: ESP %s: create %q: %w", dev, dir, err)
	}
	if err := in.Mounter.Mount(dev, dir, "vfat", false, ""); err != nil {
		return &DeviceError{Device: dev, Err: fmt.Errorf("bootloader: mount ESP %s on %q: %w", dev, dir, err)}
	}
	defer func() {
		if e := in.Mounter.Unmount(dir); e != nil {
			err = errors.Join(err, fmt.Errorf("bootloader: unmount ESP %s from %q: %w", dev, dir, e))
		}
		_ = os.Remove(dir)
	}()
	return fn()
}

// installOneESP runs grub-install for the ESP mounted at dir (inside t) and
// copies the chain to the removable path.
func (in *Installer) installOneESP(ctx context.Context, t, install, dir string, esp partition.Partition, c efiChain, log *slog.Logger) error {
	if _, err := in.Runner.RunChroot(ctx, t, install, grubEFIArgs(c, dir)...); err != nil {
		return &DeviceError{Device: esp.Device, Err: fmt.Errorf("bootloader: grub-install (EFI) into ESP %s: %w", esp.Device, err)}
	}
	if err := copyFallback(filepath.Join(t, dir), c); err != nil {
		return &DeviceError{Device: esp.Device, Err: fmt.Errorf("bootloader: ESP %s: %w", esp.Device, err)}
	}
	log.Info("grub installed (EFI)", "esp", esp.Device, "loader", c.Loader, "fallback", `\EFI\BOOT\BOOTX64.EFI`)
	return nil
}

// copyFallback copies the chain from EFI/<id> to EFI/BOOT of the ESP
// mounted at espDir. FAT is case-insensitive: an existing EFI/boot is
// reused.
func copyFallback(espDir string, c efiChain) error {
	efi := filepath.Join(espDir, "EFI")
	src := filepath.Join(efi, c.ID)
	dst := filepath.Join(efi, "BOOT")
	if ents, err := os.ReadDir(efi); err == nil {
		for _, e := range ents {
			if strings.EqualFold(e.Name(), "BOOT") {
				dst = filepath.Join(efi, e.Name())
			}
		}
	}
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return fmt.Errorf("removable path: %w", err)
	}
	for _, f := range c.Fallback {
		if err := copyFile(filepath.Join(src, f.From), filepath.Join(dst, f.To)); err != nil {
			if f.From == "mmx64.efi" && errors.Is(err, os.ErrNotExist) {
				continue // MokManager is optional
			}
			return fmt.Errorf("removable path: %w", err)
		}
	}
	return nil
}

func copyFile(from, to string) error {
	r, err := os.Open(from)
	if err != nil {
		return err
	}
	defer r.Close()
	w, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(w, r); err != nil {
		w.Close()
		return fmt.Errorf("copy %s to %s: %w", from, to, err)
	}
	if err := w.Sync(); err != nil {
		w.Close()
		return fmt.Errorf("copy %s to %s: %w", from, to, err)
	}
	return w.Close()
}

// ESPFstabOptions gives the ESP's fstab line (vfat at /boot/efi) the
// options an ESP wants: umask=0077 (Debian's installer: the ESP is not
// world-readable) and nofail, so the node still boots when the disk holding
// the mounted ESP is gone (a mirrored /boot's degraded boot) instead of
// stopping in emergency mode. Other lines are unchanged.
func ESPFstabOptions(fstab []byte) []byte {
	lines := strings.SplitAfter(string(fstab), "\n")
	for i, l := range lines {
		f := strings.Fields(l)
		if len(f) >= 4 && !strings.HasPrefix(f[0], "#") && f[1] == partition.ESPMount && f[2] == "vfat" {
			f[3] = "umask=0077,nofail"
			lines[i] = strings.Join(f, " ") + "\n"
		}
	}
	return []byte(strings.Join(lines, ""))
}
