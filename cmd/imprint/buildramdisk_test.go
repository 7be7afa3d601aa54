//go:build !imprint_ramdisk

package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imprint-dev/imprint/bootstrap/nodearchive"
)

// TestBuildRamdisk runs the command on a small base: the output is the
// base followed by the element archive; element resolution's errors
// (missing element, cycle) and the command's refusals are clear.
func TestBuildRamdisk(t *testing.T) {
	dir := t.TempDir()
	base, err := nodearchive.WriteGzip(nil)
	if err != nil {
		t.Fatal(err)
	}
	basePath := filepath.Join(dir, "base.cpio.gz")
	os.WriteFile(basePath, base, 0o644)
	for name, data := range map[string]string{
		"path/dep/ramdisk-files/etc/dep.txt": "dep\n",
		"top/element-deps":                   "dep\n",
		"top/init.d/10-top":                  "#!/bin/sh\necho top\n",
		"cyc-a/element-deps":                 "cyc-b\n",
		"path/cyc-b/element-deps":            "cyc-a\n",
		"missing/element-deps":               "nowhere\n",
		"nobin/binary-deps.d/x":              "no-such-binary-imprint-test\n",
		"chroot/install.d/10-x":              "#!/bin/sh\n",
	} {
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, []byte(data), 0o755)
	}
	os.Symlink(filepath.Join(dir, "cyc-a"), filepath.Join(dir, "path", "cyc-a"))
	epath := filepath.Join(dir, "path")
	out := filepath.Join(dir, "out.cpio.gz")

	code, _, errs := runCmd(t, "", "imprint", "build-ramdisk", "--base", basePath, "--element", filepath.Join(dir, "top"), "--elements-path", epath, "-o", out)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(b, base) {
		t.Fatal("output does not start with the base")
	}
	files, err := nodearchive.Read(b[len(base):])
	if err != nil {
		t.Fatal(err)
	}
	if string(files["etc/dep.txt"].Content) != "dep\n" || string(files["etc/imprint/init.d/10-top"].Content) != "#!/bin/sh\necho top\n" {
		t.Errorf("element archive: %v", files)
	}

	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"missing element", []string{"--element", filepath.Join(dir, "missing")}, `element "nowhere": not found in ELEMENTS_PATH`},
		{"cycle", []string{"--element", filepath.Join(dir, "cyc-a")}, "element-deps cycle: cyc-a -> cyc-b -> cyc-a"},
		{"binary not found", []string{"--element", filepath.Join(dir, "nobin")}, "binary-deps.d no-such-binary-imprint-test: binary not found"},
		{"chroot phase", []string{"--element", filepath.Join(dir, "chroot")}, "install.d: not supported by build-ramdisk"},
		{"no element", nil, "--element: at least one element required"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"imprint", "build-ramdisk", "--base", basePath, "--elements-path", epath, "-o", filepath.Join(dir, "x")}, tc.args...)
			code, _, errs := runCmd(t, "", args...)
			if code == 0 || !strings.Contains(errs, tc.want) {
				t.Errorf("exit %d, stderr %q, want failure containing %q", code, errs, tc.want)
			}
			if _, err := os.Stat(filepath.Join(dir, "x")); err == nil {
				t.Error("output written despite the error")
			}
		})
	}
	code, _, errs = runCmd(t, "", "imprint", "build-ramdisk", "--base", basePath, "--element", filepath.Join(dir, "top"), "--elements-path", epath, "-o", basePath)
	if code == 0 || !strings.Contains(errs, "must not be the base initramfs") {
		t.Errorf("-o = base: exit %d %q", code, errs)
	}
}
