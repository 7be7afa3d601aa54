//go:build vm

package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/imprint-dev/imprint/internal/testenv"
	"github.com/imprint-dev/imprint/internal/vmtest"
)

// TestVMBuildRamdiskElements extends the bootstrap ramdisk with `imprint
// build-ramdisk` and boots it: element rd-jq (given as a directory)
// depends on rd-base (found through --elements-path). rd-jq adds the host's
// jq with its shared libraries (binary-deps.d) and an init.d script that
// runs it; rd-base adds a file (ramdisk-files/), an extra-data.d hook that
// writes into TARGET_ROOT on the build host, and an earlier init.d script
// that prints both, written as diskimage-builder's ramdisk fragments are
// (shell without a #! line: run with the ramdisk's /bin/sh). The console must show both init.d scripts in name
// order, jq's computed output (so the binary and its libraries work in the
// ramdisk), all before the agent starts — and the agent must still come up.
func TestVMBuildRamdiskElements(t *testing.T) {
	testenv.RequireTool(t, "jq", "qemu-system-x86_64")
	base, err := vmtest.FindImage()
	if err != nil {
		testenv.Skipf(t, "no VM image: %v", err)
	}
	dir := t.TempDir()
	epath := filepath.Join(dir, "path")
	files := map[string]string{
		"path/rd-base/ramdisk-files/etc/rd-base.txt": "rd-base static file\n",
		"path/rd-base/extra-data.d/10-stamp":         "#!/bin/sh\nset -e\nmkdir -p \"$TARGET_ROOT/etc\"\necho \"extra-data ran on the build host (tmp hooks: ${TMP_HOOKS_PATH:+set})\" >\"$TARGET_ROOT/etc/rd-extra-data.txt\"\n",
		"path/rd-base/init.d/05-base":                "echo \"rd-init 05-base: $(cat /etc/rd-base.txt)\"\necho \"rd-init 05-base: $(cat /etc/rd-extra-data.txt)\"\n",
		"rd-jq/element-deps":                         "rd-base\n",
		"rd-jq/binary-deps.d/rd-jq":                  "jq\n",
		"rd-jq/init.d/10-jq":                         "#!/bin/sh\njq -n -r '\"rd-init 10-jq: \" + (\"jq works\" | ascii_upcase)'\n",
	}
	for name, data := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		mode := os.FileMode(0o644)
		if strings.Contains(name, ".d/") && !strings.Contains(name, "binary-deps.d") {
			mode = 0o755
		}
		if err := os.WriteFile(p, []byte(data), mode); err != nil {
			t.Fatal(err)
		}
	}
	initrd := filepath.Join(dir, "initramfs.cpio.gz")
	code, _, errs := runCmd(t, "", "imprint", "build-ramdisk", "--base", base.Initrd, "--element", filepath.Join(dir, "rd-jq"),
		"--elements-path", epath, "-o", initrd)
	if code != 0 {
		t.Fatalf("imprint build-ramdisk: exit %d\n%s", code, errs)
	}
	t.Logf("build-ramdisk: %s", strings.TrimSpace(errs))

	t0 := time.Now()
	vm := vmtest.Start(t, vmtest.Options{Image: &vmtest.Image{Kernel: base.Kernel, Initrd: initrd}, BootTimeout: 300 * time.Second})
	t.Logf("booted the extended ramdisk to agent ready in %s", time.Since(t0).Round(time.Second))
	console := vm.Console()
	if err := vm.Stop(); err != nil {
		t.Errorf("Stop: %v", err)
	}
	for _, l := range strings.Split(console, "\n") {
		if strings.Contains(l, "rd-init") || strings.Contains(l, "init.d script") {
			t.Logf("console: %s", strings.TrimSpace(l))
		}
	}
	want := []string{
		"script=05-base",
		"rd-init 05-base: rd-base static file",
		"rd-init 05-base: extra-data ran on the build host (tmp hooks: set)",
		"script=10-jq",
		"rd-init 10-jq: JQ WORKS",
		"bootstrap done",
		"imprint agent ready",
	}
	last := -1
	for _, w := range want {
		i := strings.Index(console, w)
		switch {
		case i < 0:
			t.Errorf("console lacks %q", w)
		case i < last:
			t.Errorf("console: %q comes before the previous marker (want the order %q)", w, want)
		default:
			last = i
		}
	}
	if t.Failed() {
		t.Logf("console tail:\n%s", vmtest.TailLines(console, 60))
	}
}
