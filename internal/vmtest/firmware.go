package vmtest

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// Firmware is what a VM boots with.
type Firmware string

// Firmwares.
const (
	// FirmwareBIOS is QEMU's default SeaBIOS.
	FirmwareBIOS Firmware = ""
	// FirmwareUEFI is OVMF (Debian's ovmf, 4 MiB flash), Secure Boot off.
	FirmwareUEFI Firmware = "uefi"
	// FirmwareSecureBoot is OVMF built with Secure Boot (and SMM, so the
	// machine is a q35 with SMM on) and NVRAM holding Microsoft's keys:
	// only binaries signed through Microsoft's UEFI CA boot (Debian's shim).
	FirmwareSecureBoot Firmware = "uefi-secureboot"
)

// OVMFDir is where Debian's ovmf package installs the firmware.
const OVMFDir = "/usr/share/OVMF"

// IPXEEFIROM is the virtio-net option ROM of Debian's ipxe-qemu with iPXE's
// EFI driver (and the legacy PXE one): OVMF network-boots through it.
const IPXEEFIROM = "/usr/lib/ipxe/qemu/efi-virtio.rom"

// ParseFirmware reads bios, uefi or uefi-secureboot ("" is bios).
func ParseFirmware(s string) (Firmware, error) {
	switch s {
	case "", "bios":
		return FirmwareBIOS, nil
	case string(FirmwareUEFI), string(FirmwareSecureBoot):
		return Firmware(s), nil
	}
	return "", fmt.Errorf("firmware %q: want bios, uefi or uefi-secureboot", s)
}

// UEFI says whether f is an OVMF firmware.
func (f Firmware) UEFI() bool { return f == FirmwareUEFI || f == FirmwareSecureBoot }

// files are the code (read-only) and NVRAM template of f.
func (f Firmware) files() (code, vars string) {
	switch f {
	case FirmwareUEFI:
		return filepath.Join(OVMFDir, "OVMF_CODE_4M.fd"), filepath.Join(OVMFDir, "OVMF_VARS_4M.fd")
	case FirmwareSecureBoot:
		return filepath.Join(OVMFDir, "OVMF_CODE_4M.secboot.fd"), filepath.Join(OVMFDir, "OVMF_VARS_4M.ms.fd")
	}
	return "", ""
}

// FirmwareArgs are the QEMU arguments of f. vars is the node's NVRAM file:
// created from the firmware's template when it does not exist, reused
// (boot entries, BootOrder, keys) when it does, as a machine keeps its NVRAM
// across power cycles. BIOS needs no arguments.
func FirmwareArgs(f Firmware, vars string) ([]string, error) {
	if !f.UEFI() {
		if f != FirmwareBIOS {
			return nil, fmt.Errorf("vmtest: firmware %q: want bios, uefi or uefi-secureboot", f)
		}
		return nil, nil
	}
	code, tmpl := f.files()
	for _, p := range []string{code, tmpl} {
		if _, err := os.Stat(p); err != nil {
			return nil, fmt.Errorf("vmtest: firmware %s: %w (install Debian's ovmf)", f, err)
		}
	}
	if vars == "" {
		return nil, fmt.Errorf("vmtest: firmware %s: no NVRAM file", f)
	}
	if _, err := os.Stat(vars); os.IsNotExist(err) {
		if err := copyFile(tmpl, vars); err != nil {
			return nil, fmt.Errorf("vmtest: firmware %s: NVRAM: %w", f, err)
		}
	} else if err != nil {
		return nil, fmt.Errorf("vmtest: firmware %s: NVRAM: %w", f, err)
	}
	var args []string
	if f == FirmwareSecureBoot {
		// The Secure Boot build keeps its variables in SMM-protected flash.
		args = append(args, "-machine", "q35,smm=on", "-global", "driver=cfi.pflash01,property=secure,value=on")
	}
	return append(args,
		"-drive", "if=pflash,format=raw,unit=0,readonly=on,file="+code,
		"-drive", "if=pflash,format=raw,unit=1,file="+vars), nil
}

func copyFile(from, to string) error {
	r, err := os.Open(from)
	if err != nil {
		return err
	}
	defer r.Close()
	w, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(w, r); err != nil {
		w.Close()
		return err
	}
	return w.Close()
}
