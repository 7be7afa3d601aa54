//go:build loop || vm

package imagebuild

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/imprint-dev/imprint/internal/sys"
	"github.com/imprint-dev/imprint/internal/testenv"
)

func loopPrereqs(t *testing.T) {
	t.Helper()
	testenv.RequireLoop(t, "debootstrap", "mkfs.ext4", "e2fsck", "resize2fs", "dumpe2fs", "debugfs", "gzip", "chroot")
}

func writeHook(t *testing.T, dir, phase, name, body string) {
	t.Helper()
	p := filepath.Join(dir, phase, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte("#!/bin/sh\nset -e\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
}

// loopConfig builds a small bookworm config from the host's apt mirror.
func loopConfig(t *testing.T, out string) Config {
	mirror, err := HostMirror(os.DirFS("/"), "bookworm")
	if err != nil {
		testenv.Skipf(t, "no host mirror: %v", err)
	}
	return Config{
		ImageData: map[string]Image{"/": {Container: "gzip", Format: "ext4", URI: "file://" + out + "/loop-test.img.gz"}},
		Output:    out,
		Repos:     []Repo{{Name: "debian", Type: "deb", URI: mirror, Suite: "bookworm", Section: "main", Priority: ptr(700)}},
		Codename:  "bookworm",
		Packages:  []string{"less", "netbase"},
	}
}

func loopOptions(t *testing.T, work string, elements ...string) BuildOptions {
	cache, err := filepath.Abs("../build/imagebuild-cache")
	if err != nil {
		t.Fatal(err)
	}
	return BuildOptions{WorkDir: work, Elements: elements,
		Options: Options{Variant: "minbase", Cache: cache, ImageSize: 2 << 30}}
}

// leftovers lists mounts, loop devices and chroot processes under dir.
func leftovers(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	mounts, err := sys.Mounter{}.MountedUnder(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range mounts {
		out = append(out, "mount "+m)
	}
	la, _ := exec.Command("losetup", "-a").CombinedOutput()
	for _, l := range strings.Split(string(la), "\n") {
		if strings.Contains(l, dir) {
			out = append(out, "loop "+l)
		}
	}
	pids, _ := SysProcs{}.InRoot(dir)
	for _, p := range pids {
		out = append(out, "process "+strings.TrimSpace(string(must(os.ReadFile(filepath.Join("/proc", strconv.Itoa(p), "cmdline"))))))
	}
	return out
}

func must[T any](v T, _ error) T { return v }
