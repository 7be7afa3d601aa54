package ramdiskelem

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/imprint-dev/imprint/bootstrap/nodearchive"
	"github.com/imprint-dev/imprint/imagebuild"
	"github.com/imprint-dev/imprint/internal/testenv"
	"github.com/u-root/u-root/pkg/cpio"
)

// fakeHost knows a few binaries and their libraries.
type fakeHost struct {
	bins map[string]string     // name -> path
	deps map[string][]HostFile // path -> deps
}

func (h fakeHost) LookPath(name string) (string, error) {
	if p, ok := h.bins[name]; ok {
		return p, nil
	}
	return "", errors.New(`exec: "` + name + `": executable file not found in $PATH`)
}

func (h fakeHost) Deps(bin string) ([]HostFile, error) { return h.deps[bin], nil }

var host = fakeHost{
	bins: map[string]string{"jq": "/usr/bin/jq", "tac": "/usr/bin/tac"},
	deps: map[string][]HostFile{
		"/usr/bin/jq": {
			{Path: "/lib64/ld-linux-x86-64.so.2", Link: "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"},
			{Path: "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"},
			{Path: "/lib/x86_64-linux-gnu/libc.so.6"},
			{Path: "/lib/x86_64-linux-gnu/libjq.so.1", Link: "libjq.so.1.0.4"},
			{Path: "/lib/x86_64-linux-gnu/libjq.so.1.0.4"},
		},
		"/usr/bin/tac": {
			{Path: "/lib64/ld-linux-x86-64.so.2", Link: "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"},
			{Path: "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"},
			{Path: "/lib/x86_64-linux-gnu/libc.so.6"},
		},
	},
}

func hook(elem, phase, name string) imagebuild.Hook {
	return imagebuild.Hook{Element: elem, Phase: phase, Name: name, Path: "/e/" + elem + "/" + phase + "/" + name}
}

// brief is an entry as the table states it: "path" file from source,
// "path/" directory, "path -> target" symlink.
func brief(p *Plan) []string {
	var out []string
	for _, e := range p.Entries {
		switch {
		case e.Dir:
			out = append(out, e.Path+"/")
		case e.Link != "":
			out = append(out, e.Path+" -> "+e.Link)
		default:
			out = append(out, e.Path+" < "+e.Source+" "+e.Mode.String())
		}
	}
	return out
}

func TestBuild(t *testing.T) {
	tests := []struct {
		name      string
		elems     []Element
		entries   []string
		hooks     []string
		init      []string
		wantError string
	}{
		{
			name: "binaries with their libraries, shared ones once",
			elems: []Element{
				{Name: "a", Binaries: []string{"jq"}},
				{Name: "b", Binaries: []string{"tac", "/usr/bin/jq"}},
			},
			entries: []string{
				"lib/", "lib/x86_64-linux-gnu/",
				"lib/x86_64-linux-gnu/ld-linux-x86-64.so.2 < /lib/x86_64-linux-gnu/ld-linux-x86-64.so.2 -rwxr-xr-x",
				"lib/x86_64-linux-gnu/libc.so.6 < /lib/x86_64-linux-gnu/libc.so.6 -rwxr-xr-x",
				"lib/x86_64-linux-gnu/libjq.so.1 -> libjq.so.1.0.4",
				"lib/x86_64-linux-gnu/libjq.so.1.0.4 < /lib/x86_64-linux-gnu/libjq.so.1.0.4 -rwxr-xr-x",
				"lib64/", "lib64/ld-linux-x86-64.so.2 -> /lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
				"usr/", "usr/bin/",
				"usr/bin/jq < /usr/bin/jq -rwxr-xr-x",
				"usr/bin/tac < /usr/bin/tac -rwxr-xr-x",
			},
		},
		{
			name: "files, hooks and init.d merged over elements in name order",
			elems: []Element{
				{Name: "base", Files: []File{
					{Rel: "etc", Mode: fs.ModeDir | 0o755},
					{Rel: "etc/motd", Source: "/e/base/ramdisk-files/etc/motd", Mode: 0o644},
					{Rel: "etc/link", Link: "motd", Mode: fs.ModeSymlink | 0o777},
				}, ExtraData: []imagebuild.Hook{hook("base", ExtraData, "20-b")}, Init: []imagebuild.Hook{hook("base", InitD, "50-base")}},
				{Name: "top", ExtraData: []imagebuild.Hook{hook("top", ExtraData, "10-a"), hook("top", ExtraData, "30-c")},
					Init: []imagebuild.Hook{hook("top", InitD, "10-top"), hook("top", InitD, "90-last")}},
			},
			entries: []string{
				"etc/", "etc/imprint/", "etc/imprint/init.d/",
				"etc/imprint/init.d/10-top < /e/top/init.d/10-top -rwxr-xr-x",
				"etc/imprint/init.d/50-base < /e/base/init.d/50-base -rwxr-xr-x",
				"etc/imprint/init.d/90-last < /e/top/init.d/90-last -rwxr-xr-x",
				"etc/link -> motd",
				"etc/motd < /e/base/ramdisk-files/etc/motd -rw-r--r--",
			},
			hooks: []string{"top/10-a", "base/20-b", "top/30-c"},
			init:  []string{"etc/imprint/init.d/10-top", "etc/imprint/init.d/50-base", "etc/imprint/init.d/90-last"},
		},
		{
			name:      "binary not found",
			elems:     []Element{{Name: "a", Binaries: []string{"no-such-tool"}}},
			wantError: `element a: binary-deps.d no-such-tool: binary not found on the build host`,
		},
		{
			name:      "relative path in binary-deps",
			elems:     []Element{{Name: "a", Binaries: []string{"bin/jq"}}},
			wantError: `element a: binary-deps.d bin/jq: want a name looked up in PATH or an absolute path`,
		},
		{
			name:      "binary path escaping",
			elems:     []Element{{Name: "a", Binaries: []string{"/usr/../../etc/shadow"}}},
			wantError: `"/usr/../../etc/shadow" escapes the archive (..)`,
		},
		{
			name: "a file below a symlink of the plan escapes",
			elems: []Element{
				{Name: "a", Files: []File{{Rel: "usr", Link: "/usr", Mode: fs.ModeSymlink | 0o777}}},
				{Name: "b", Binaries: []string{"jq"}},
			},
			wantError: `element b: binary-deps.d jq: usr/bin/jq is below usr, a symlink (/usr) of element a: ramdisk-files/usr: the path would escape the archive`,
		},
		{
			name: "two files for one path",
			elems: []Element{
				{Name: "a", Files: []File{{Rel: "etc/x", Source: "/e/a/x", Mode: 0o644}}},
				{Name: "b", Files: []File{{Rel: "etc/x", Source: "/e/b/x", Mode: 0o644}}},
			},
			wantError: `element b: ramdisk-files/etc/x: etc/x is also element a: ramdisk-files/etc/x`,
		},
		{
			name: "init.d name twice",
			elems: []Element{
				{Name: "a", Init: []imagebuild.Hook{hook("a", InitD, "10-x")}},
				{Name: "b", Init: []imagebuild.Hook{hook("b", InitD, "10-x")}},
			},
			wantError: `element "b": init.d/10-x is also in element "a"`,
		},
		{
			name: "a file where the plan needs a directory",
			elems: []Element{
				{Name: "a", Files: []File{{Rel: "usr", Source: "/e/a/usr", Mode: 0o644}}},
				{Name: "b", Binaries: []string{"jq"}},
			},
			wantError: `usr/bin/jq is below usr, a file of element a: ramdisk-files/usr`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Build(tc.elems, host)
			if tc.wantError != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantError) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantError)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.entries, brief(p)); diff != "" {
				t.Errorf("entries (-want +got):\n%s", diff)
			}
			var hooks []string
			for _, h := range p.Hooks {
				hooks = append(hooks, h.Element+"/"+h.Name)
			}
			if diff := cmp.Diff(tc.hooks, hooks); diff != "" {
				t.Errorf("extra-data.d order (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.init, p.Init); diff != "" {
				t.Errorf("init.d (-want +got):\n%s", diff)
			}
		})
	}
}

func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, data := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		mode := os.FileMode(0o644)
		if strings.HasPrefix(data, "#!") {
			mode = 0o755
		}
		if err := os.WriteFile(p, []byte(data), mode); err != nil {
			t.Fatal(err)
		}
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"e/binary-deps.d/e":         "jq tac # two\n# comment\n/usr/bin/xxd\n",
		"e/binary-deps.d/README.md": "not a list\n",
		"e/ramdisk-files/etc/motd":  "hi\n",
		"e/init.d/10-x":             "#!/bin/sh\n",
		"e/init.d/README.md":        "docs\n",
		"e/extra-data.d/20-y":       "#!/bin/sh\n",
		"bad/install.d/10-x":        "#!/bin/sh\n",
		"noexec/init.d/10-x":        "echo not executable\n",
	})
	if err := os.Symlink("motd", filepath.Join(dir, "e/ramdisk-files/etc/link")); err != nil {
		t.Fatal(err)
	}
	els, err := Load([]string{filepath.Join(dir, "e")})
	if err != nil {
		t.Fatal(err)
	}
	e := els[0]
	if diff := cmp.Diff([]string{"jq", "tac", "/usr/bin/xxd"}, e.Binaries); diff != "" {
		t.Errorf("binaries (-want +got):\n%s", diff)
	}
	var files []string
	for _, f := range e.Files {
		files = append(files, f.Rel+" "+f.Link)
	}
	if diff := cmp.Diff([]string{"etc ", "etc/link motd", "etc/motd "}, files); diff != "" {
		t.Errorf("files (-want +got):\n%s", diff)
	}
	if len(e.Init) != 1 || e.Init[0].Name != "10-x" || len(e.ExtraData) != 1 || e.ExtraData[0].Name != "20-y" {
		t.Errorf("hooks: init %v extra-data %v", e.Init, e.ExtraData)
	}
	for elem, want := range map[string]string{
		"bad":    "install.d: not supported by build-ramdisk",
		"noexec": "init.d/10-x is not executable",
	} {
		if _, err := Load([]string{filepath.Join(dir, elem)}); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Load %s: err = %v, want %q", elem, err, want)
		}
	}
}

// TestApply stages a plan, runs real extra-data.d hooks (sh) in order with
// TARGET_ROOT and TMP_HOOKS_PATH, and reads the archive back.
func TestApply(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"a/ramdisk-files/etc/motd": "hello\n",
		"a/extra-data.d/20-second": "#!/bin/sh\nset -e\necho second >>\"$TMP_HOOKS_PATH/order\"\ncp \"$TMP_HOOKS_PATH/order\" \"$TARGET_ROOT/etc/hook-order\"\n",
		"b/extra-data.d/10-first":  "#!/bin/sh\nset -e\necho first >>\"$TMP_HOOKS_PATH/order\"\ntest -f \"$TARGET_ROOT/etc/motd\"\n",
		"b/init.d/10-run":          "#!/bin/sh\necho run\n",
	})
	els, err := Load([]string{filepath.Join(dir, "a"), filepath.Join(dir, "b")})
	if err != nil {
		t.Fatal(err)
	}
	p, err := Build(els, host)
	if err != nil {
		t.Fatal(err)
	}
	arch, err := Apply(context.Background(), p, filepath.Join(dir, "work"), io.Discard, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	got, err := nodearchive.Read(arch)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]struct {
		mode uint64
		data string
	}{
		"etc":                       {cpio.S_IFDIR | 0o755, ""},
		"etc/motd":                  {cpio.S_IFREG | 0o644, "hello\n"},
		"etc/hook-order":            {cpio.S_IFREG | 0o644, "first\nsecond\n"},
		"etc/imprint":               {cpio.S_IFDIR | 0o755, ""},
		"etc/imprint/init.d":        {cpio.S_IFDIR | 0o755, ""},
		"etc/imprint/init.d/10-run": {cpio.S_IFREG | 0o755, "#!/bin/sh\necho run\n"},
	}
	for name, w := range want {
		f, ok := got[name]
		switch {
		case !ok:
			t.Errorf("archive lacks %s", name)
		case f.Mode != w.mode || string(f.Content) != w.data:
			t.Errorf("%s: mode %o %q, want %o %q", name, f.Mode, f.Content, w.mode, w.data)
		}
	}
	if len(got) != len(want) {
		t.Errorf("archive has %d entries, want %d: %v", len(got), len(want), got)
	}

	// a failing hook names its element and file
	writeFiles(t, dir, map[string]string{"c/extra-data.d/10-fail": "#!/bin/sh\nexit 3\n"})
	els, _ = Load([]string{filepath.Join(dir, "c")})
	p, _ = Build(els, host)
	if _, err := Apply(context.Background(), p, filepath.Join(dir, "work2"), io.Discard, slog.New(slog.DiscardHandler)); err == nil ||
		!strings.Contains(err.Error(), `element "c": extra-data.d/10-fail: exit status 3`) {
		t.Errorf("failing hook: err = %v", err)
	}
}

// TestOSHostDeps: the real host's ldd lists an ELF interpreter and libc
// for a dynamically linked binary.
func TestOSHostDeps(t *testing.T) {
	testenv.RequireTool(t, "sh")
	p, err := OSHost{}.LookPath("sh")
	if err != nil {
		t.Fatal(err)
	}
	deps, err := OSHost{}.Deps(p)
	if err != nil {
		t.Fatal(err)
	}
	var libc bool
	for _, d := range deps {
		libc = libc || strings.Contains(d.Path, "libc.so")
	}
	if !libc {
		t.Errorf("Deps(%s) = %v, want libc among them", p, deps)
	}
}

func TestConcat(t *testing.T) {
	if _, err := Concat([]byte("not an initramfs"), []byte{1}); err == nil {
		t.Error("Concat accepted a base that is not an initramfs")
	}
	b, err := Concat([]byte{0x1f, 0x8b, 1}, []byte{2})
	if err != nil || string(b) != "\x1f\x8b\x01\x02" {
		t.Errorf("Concat = %q, %v", b, err)
	}
}
