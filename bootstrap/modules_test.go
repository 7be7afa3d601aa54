package bootstrap

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestGlob(t *testing.T) {
	tests := []struct {
		pattern, s string
		want       bool
	}{
		{"pci:v00001AF4d00001001sv*sd*bc*sc*i*", "pci:v00001AF4d00001001sv00001AF4sd00000002bc01sc00i00", true},
		{"pci:v00001AF4d00001001sv*sd*bc*sc*i*", "pci:v00001AF4d00001000sv00001AF4sd00000001bc02sc00i00", false},
		{"pci:v*d*sv*sd*bc01sc06i01*", "pci:v00008086d00002922sv00001AF4sd00001100bc01sc06i01", true}, // ahci by class
		{"virtio:d00000002v*", "virtio:d00000002v00001AF4", true},
		{"virtio:d00000002v*", "virtio:d00000001v00001AF4", false},
		{"a?c", "abc", true},
		{"a?c", "ac", false},
		{"x[0-9]y", "x5y", true},
		{"x[!0-9]y", "x5y", false},
		{"x[!0-9]y", "xay", true},
		{"of:N*T*Cfoo/bar*", "of:NnT<NULL>Cfoo/bar,1", true}, // '/' is not special
		{"*", "", true},
		{"a*b*c", "aXXbYYc", true},
		{"a*b*c", "aXXbYY", false},
		{"[", "[", true}, // unterminated class: literal
	}
	for _, tt := range tests {
		if got := Glob(tt.pattern, tt.s); got != tt.want {
			t.Errorf("Glob(%q, %q) = %v, want %v", tt.pattern, tt.s, got, tt.want)
		}
	}
}

func TestModuleName(t *testing.T) {
	for in, want := range map[string]string{
		"kernel/fs/nls/nls_iso8859-1.ko": "nls_iso8859_1",
		"kernel/drivers/md/dm-mod.ko.xz": "dm_mod",
		"virtio-blk":                     "virtio_blk",
		"xfs":                            "xfs",
		"kernel/x/y.ko.zst":              "y",
	} {
		if got := ModuleName(in); got != want {
			t.Errorf("ModuleName(%q) = %q, want %q", in, got, want)
		}
	}
}

// modTree writes a modules directory like depmod -b produces.
func modTree(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{
		"modules.dep": `kernel/drivers/virtio/virtio.ko:
kernel/drivers/virtio/virtio_ring.ko:
kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio_pci_modern_dev.ko kernel/drivers/virtio/virtio_ring.ko kernel/drivers/virtio/virtio.ko
kernel/drivers/virtio/virtio_pci_modern_dev.ko:
kernel/drivers/block/virtio_blk.ko: kernel/drivers/virtio/virtio_ring.ko kernel/drivers/virtio/virtio.ko
kernel/drivers/md/dm-mod.ko:
kernel/drivers/md/raid1.ko: kernel/drivers/md/md-mod.ko
kernel/drivers/md/md-mod.ko:
kernel/fs/nls/nls_iso8859-1.ko:
`,
		"modules.alias": `# Aliases extracted from modules themselves.
alias pci:v00001AF4d*sv*sd*bc*sc*i* virtio_pci
alias virtio:d00000002v* virtio_blk
alias devname:mapper/control dm_mod
`,
		"modules.builtin": "kernel/fs/ext4/ext4.ko\nkernel/crypto/crc32c_generic.ko\n",
		"modules.conf":    "# always\ncrc32c_generic\ndm-mod\nraid1   # with md\n\nnls_iso8859_1\n",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestLoadOrder(t *testing.T) {
	f, err := os.Open(filepath.Join(modTree(t), "modules.dep"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	deps, err := ParseDeps(f)
	if err != nil {
		t.Fatal(err)
	}
	got, err := deps.LoadOrder("virtio_blk", "virtio-pci", "raid1")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"kernel/drivers/virtio/virtio_ring.ko", "kernel/drivers/virtio/virtio.ko", "kernel/drivers/block/virtio_blk.ko",
		"kernel/drivers/virtio/virtio_pci_modern_dev.ko", "kernel/drivers/virtio/virtio_pci.ko",
		"kernel/drivers/md/md-mod.ko", "kernel/drivers/md/raid1.ko",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("LoadOrder (-want +got):\n%s", diff)
	}
	if _, err := deps.LoadOrder("nope"); !errors.Is(err, ErrNoModule) {
		t.Errorf("LoadOrder(nope) error = %v, want ErrNoModule", err)
	}
	cyc := DepTable{"a": {Path: "a.ko", Deps: []string{"b"}}, "b": {Path: "b.ko", Deps: []string{"a"}}}
	if _, err := cyc.LoadOrder("a"); err == nil || !strings.Contains(err.Error(), "cycle a -> b -> a") {
		t.Errorf("cycle: error = %v", err)
	}
}

// fakeModules records the files loaded; files in fail return an error.
type fakeModules struct {
	loaded []string
	fail   map[string]bool
}

func (f *fakeModules) Load(path string) error {
	if f.fail[filepath.Base(path)] {
		return errors.New("exec format error")
	}
	f.loaded = append(f.loaded, path)
	return nil
}

func (f *fakeModules) Loaded() (map[string]bool, error) {
	m := map[string]bool{}
	for _, p := range f.loaded {
		m[ModuleName(p)] = true
	}
	return m, nil
}

func TestModulesStep(t *testing.T) {
	dir := modTree(t)
	sys := t.TempDir()
	// A virtio PCI device now; its virtio child (the disk) appears once
	// virtio_pci is loaded, which the fake emulates by writing it up front:
	// the second pass must not reload anything.
	for p, alias := range map[string]string{
		"devices/pci0000:00/0000:00:04.0/modalias":            "pci:v00001AF4d00001001sv00001AF4sd00000002bc01sc00i00",
		"devices/pci0000:00/0000:00:04.0/virtio1/modalias":    "virtio:d00000002v00001AF4",
		"devices/platform/serial8250/modalias":                "platform:serial8250",
		"devices/pci0000:00/0000:00:01.0/modalias":            "pci:v00008086d00007000sv00001AF4sd00001100bc06sc01i00",
		"devices/pci0000:00/0000:00:04.0/virtio1/block/vda/x": "",
	} {
		full := filepath.Join(sys, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(alias+"\n"), 0o444); err != nil {
			t.Fatal(err)
		}
	}
	fm := &fakeModules{fail: map[string]bool{"nls_iso8859-1.ko": true}}
	s := &ModulesStep{Dir: dir, ListFile: filepath.Join(dir, "modules.conf"), SysRoot: sys, Sys: fm,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	err := s.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), `module "nls_iso8859_1"`) {
		t.Errorf("Run error = %v, want the nls_iso8859_1 failure", err)
	}
	var got []string
	for _, p := range fm.loaded {
		got = append(got, strings.TrimPrefix(p, dir+"/"))
	}
	want := []string{
		// modules.conf, in order; crc32c_generic is built in.
		"kernel/drivers/md/dm-mod.ko", "kernel/drivers/md/md-mod.ko", "kernel/drivers/md/raid1.ko",
		// coldplug by modalias, dependencies first.
		"kernel/drivers/virtio/virtio_pci_modern_dev.ko", "kernel/drivers/virtio/virtio_ring.ko",
		"kernel/drivers/virtio/virtio.ko", "kernel/drivers/virtio/virtio_pci.ko",
		"kernel/drivers/block/virtio_blk.ko",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("loaded (-want +got):\n%s", diff)
	}
}

func TestModulesStepMissingDep(t *testing.T) {
	s := &ModulesStep{Dir: t.TempDir(), SysRoot: t.TempDir(), Sys: &fakeModules{}, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if err := s.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "modules.dep") {
		t.Errorf("Run without modules.dep: error = %v", err)
	}
}
