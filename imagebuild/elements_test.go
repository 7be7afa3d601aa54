package imagebuild

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func mkHook(t *testing.T, dir, phase, name string, mode os.FileMode) {
	t.Helper()
	p := filepath.Join(dir, phase, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"), mode); err != nil {
		t.Fatal(err)
	}
}

func TestLoadElementsOrder(t *testing.T) {
	root := t.TempDir()
	a, b := filepath.Join(root, "base-a"), filepath.Join(root, "extra-b")
	mkHook(t, a, "install.d", "50-a", 0o755)
	mkHook(t, a, "install.d", "10-a", 0o755)
	mkHook(t, b, "install.d", "20-b", 0o755)
	mkHook(t, b, "install.d", "Z-upper", 0o755) // C locale: uppercase sorts before digits? no: digits < upper < lower
	mkHook(t, b, "install.d", "a-lower", 0o755)
	mkHook(t, a, "extra-data.d", "10-copy", 0o755)
	mkHook(t, b, "finalise.d", "99-last", 0o755)
	mkHook(t, a, "install.d", "README.md", 0o644) // skipped like dib-run-parts
	mkHook(t, a, "install.d", "30-x.sh", 0o755)   // dots: skipped
	mkHook(t, a, "install.d", "40-x~", 0o755)     // editor backup: skipped
	if err := os.WriteFile(filepath.Join(a, "README.md"), []byte("element doc"), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := LoadElements([]string{a, b})
	if err != nil {
		t.Fatal(err)
	}
	names := map[string][]string{}
	for ph, hs := range got {
		for _, h := range hs {
			names[ph] = append(names[ph], h.Element+":"+h.Name)
			if !HostPhase(ph) && HostPhase(h.Phase) {
				t.Errorf("phase mixup %+v", h)
			}
		}
	}
	want := map[string][]string{
		"install.d":    {"base-a:10-a", "extra-b:20-b", "base-a:50-a", "extra-b:Z-upper", "extra-b:a-lower"},
		"extra-data.d": {"base-a:10-copy"},
		"finalise.d":   {"extra-b:99-last"},
	}
	if diff := cmp.Diff(want, names); diff != "" {
		t.Errorf("LoadElements order (-want +got):\n%s", diff)
	}
}

func TestLoadElementsErrors(t *testing.T) {
	for _, tt := range []struct {
		name  string
		setup func(t *testing.T, dir string)
		want  string
	}{
		{"not executable", func(t *testing.T, d string) { mkHook(t, d, "install.d", "10-x", 0o644) }, "hook install.d/10-x is not executable"},
		{"unknown phase", func(t *testing.T, d string) { mkHook(t, d, "post-boot.d", "10-x", 0o755) }, "post-boot.d: phase not supported"},
		{"first-boot not executable", func(t *testing.T, d string) { mkHook(t, d, "first-boot.d", "10-x", 0o644) }, "hook first-boot.d/10-x is not executable"},
		{"missing", func(t *testing.T, d string) { os.RemoveAll(d) }, "no such file or directory"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			d := filepath.Join(t.TempDir(), "el")
			os.MkdirAll(d, 0o755)
			tt.setup(t, d)
			_, err := LoadElements([]string{d})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("LoadElements = %v, want error containing %q", err, tt.want)
			}
		})
	}
	root := t.TempDir()
	a, b := filepath.Join(root, "a"), filepath.Join(root, "b")
	mkHook(t, a, "install.d", "10-same", 0o755)
	mkHook(t, b, "install.d", "10-same", 0o755)
	if _, err := LoadElements([]string{a, b}); err == nil || !strings.Contains(err.Error(), "hook install.d/10-same is also in element") {
		t.Errorf("duplicate hook names: %v", err)
	}
}

func TestHostPhase(t *testing.T) {
	var host, chroot []string
	for _, p := range Phases {
		if HostPhase(p) {
			host = append(host, p)
		} else {
			chroot = append(chroot, p)
		}
	}
	if diff := cmp.Diff([]string{"extra-data.d", "block-device.d", "cleanup.d"}, host); diff != "" {
		t.Errorf("host phases (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"pre-install.d", "install.d", "post-install.d", "finalise.d"}, chroot); diff != "" {
		t.Errorf("chroot phases (-want +got):\n%s", diff)
	}
}
