package bootstrap

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

type fakeEFIMount struct {
	calls []string
	err   error
}

func (f *fakeEFIMount) Mount(source, target, fstype string) error {
	f.calls = append(f.calls, fstype+" "+source+" "+target)
	return f.err
}

func TestEFIVarsStep(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	modDir := t.TempDir()
	os.MkdirAll(filepath.Join(modDir, "kernel/fs/efivarfs"), 0o755)
	os.WriteFile(filepath.Join(modDir, "modules.dep"), []byte("kernel/fs/efivarfs/efivarfs.ko:\n"), 0o644)

	// BIOS: nothing.
	sys := t.TempDir()
	mods, mnt := &fakeModules{}, &fakeEFIMount{}
	s := &EFIVarsStep{SysRoot: sys, Dir: modDir, Modules: mods, Mounter: mnt, Log: log}
	if err := s.Run(context.Background()); err != nil || len(mods.loaded) != 0 || len(mnt.calls) != 0 {
		t.Errorf("BIOS: err %v, loaded %v, mounts %v; want nothing", err, mods.loaded, mnt.calls)
	}

	// UEFI: module loaded, efivarfs mounted.
	vars := filepath.Join(sys, "firmware", "efi", "efivars")
	os.MkdirAll(vars, 0o755)
	if err := s.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(mods.loaded) != 1 || !strings.HasSuffix(mods.loaded[0], "kernel/fs/efivarfs/efivarfs.ko") {
		t.Errorf("loaded %v, want efivarfs.ko", mods.loaded)
	}
	if len(mnt.calls) != 1 || mnt.calls[0] != "efivarfs efivarfs "+vars {
		t.Errorf("mounts %v", mnt.calls)
	}

	// Already mounted (variables visible): nothing more.
	os.WriteFile(filepath.Join(vars, "BootOrder-8be4df61-93ca-11d2-aa0d-00e098032b8c"), []byte{7, 0, 0, 0}, 0o644)
	mods2, mnt2 := &fakeModules{}, &fakeEFIMount{}
	s2 := &EFIVarsStep{SysRoot: sys, Dir: modDir, Modules: mods2, Mounter: mnt2, Log: log}
	if err := s2.Run(context.Background()); err != nil || len(mods2.loaded)+len(mnt2.calls) != 0 {
		t.Errorf("mounted already: err %v, loaded %v, mounts %v", err, mods2.loaded, mnt2.calls)
	}

	// A failing mount is an error naming the target.
	os.Remove(filepath.Join(vars, "BootOrder-8be4df61-93ca-11d2-aa0d-00e098032b8c"))
	s3 := &EFIVarsStep{SysRoot: sys, Dir: modDir, Modules: &fakeModules{}, Mounter: &fakeEFIMount{err: errors.New("no such device")}, Log: log}
	if err := s3.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "mount -t efivarfs efivarfs "+vars) {
		t.Errorf("mount failure: %v", err)
	}
}
