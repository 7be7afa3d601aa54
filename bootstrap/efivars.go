package bootstrap

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
)

// EFIVarsMounter mounts efivarfs; the real one is mount(2).
type EFIVarsMounter interface {
	Mount(source, target, fstype string) error
}

// EFIVarsStep makes the UEFI variables reachable under UEFI: it loads the
// efivarfs module (a module in Debian's kernels) and mounts efivarfs on
// /sys/firmware/efi/efivars, where efibootmgr and the inventory read the
// NVRAM. Under BIOS (no /sys/firmware/efi) it does nothing: the module
// would refuse to load there.
type EFIVarsStep struct {
	SysRoot string // /sys
	Dir     string // /lib/modules/$(uname -r)
	Modules ModuleSys
	Mounter EFIVarsMounter
	Log     *slog.Logger
}

// Name implements Step.
func (s *EFIVarsStep) Name() string { return "efivars" }

// Run implements Step.
func (s *EFIVarsStep) Run(context.Context) error {
	efi := filepath.Join(s.SysRoot, "firmware", "efi")
	if _, err := os.Stat(efi); errors.Is(err, fs.ErrNotExist) {
		s.Log.Info("booted by BIOS: no efivarfs")
		return nil
	}
	vars := filepath.Join(efi, "efivars")
	if ents, err := os.ReadDir(vars); err == nil && len(ents) > 0 {
		s.Log.Info("efivarfs already mounted", "target", vars)
		return nil
	}
	loaded, err := s.Modules.Loaded()
	if err != nil {
		return fmt.Errorf("efivars: %w", err)
	}
	if !loaded["efivarfs"] {
		deps, err := readDeps(filepath.Join(s.Dir, "modules.dep"))
		if err != nil {
			return fmt.Errorf("efivars: %w", err)
		}
		builtin := false
		if b, err := os.ReadFile(filepath.Join(s.Dir, "modules.builtin")); err == nil {
			for _, l := range strings.Fields(string(b)) {
				if ModuleName(l) == "efivarfs" {
					builtin = true
				}
			}
		}
		if !builtin {
			files, err := deps.LoadOrder("efivarfs")
			if err != nil {
				return fmt.Errorf("efivars: %w", err)
			}
			for _, f := range files {
				if err := s.Modules.Load(filepath.Join(s.Dir, f)); err != nil {
					return fmt.Errorf("efivars: load %s: %w", f, err)
				}
			}
		}
	}
	if err := s.Mounter.Mount("efivarfs", vars, "efivarfs"); err != nil {
		return fmt.Errorf("efivars: mount -t efivarfs efivarfs %s: %w", vars, err)
	}
	s.Log.Info("mounted", "target", vars, "fstype", "efivarfs")
	return nil
}
