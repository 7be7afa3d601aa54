//go:build loop

package imagebuild_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/imprint-dev/imprint/internal/testenv"
)

// TestLoopAirshipRoot builds testdata/airship/root.yaml (build-root, the
// body at the top level as airshipctl's executor documents have it) and
// checks the tarball without booting it: the output metadata matches the
// file, the NoCloud seed is in the tree byte for byte, the image's own
// cloud-init accepts the user-data (schema) and renders the
// network-config's static address for ifupdown (net-convert), and dpkg
// in the tree lists the packages the metadata does.
func TestLoopAirshipRoot(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	ab, _ := airshipBuild(t, ctx, "root.yaml", false)
	md := checkAirshipMetadata(t, ab, "less")
	root := t.TempDir()
	if out, err := exec.Command("tar", "--numeric-owner", "-xpf", ab.Output, "-C", root).CombinedOutput(); err != nil {
		t.Fatalf("tar: %v %s", err, out)
	}
	for _, f := range []string{"user-data", "network-config"} {
		want, _ := os.ReadFile(filepath.Join("testdata/airship", f))
		got, err := os.ReadFile(filepath.Join(root, "var/lib/cloud/seed/nocloud", f))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("seed %s: %v (%d bytes, want %d)", f, err, len(got), len(want))
		}
	}
	if md, _ := os.ReadFile(filepath.Join(root, "var/lib/cloud/seed/nocloud/meta-data")); !strings.HasPrefix(string(md), "instance-id: airship-root-") {
		t.Errorf("seed meta-data %q", md)
	}
	testenv.RequireTool(t, "chroot")
	chroot := func(argv ...string) string {
		t.Helper()
		out, err := exec.CommandContext(ctx, "chroot", append([]string{root}, argv...)...).CombinedOutput()
		if err != nil {
			t.Errorf("chroot %v: %v\n%s", argv, err, out)
		}
		return string(out)
	}
	if out := chroot("cloud-init", "schema", "--config-file", "/var/lib/cloud/seed/nocloud/user-data"); !strings.Contains(out, "Valid cloud-config") {
		t.Errorf("cloud-init schema: %s", out)
	}
	chroot("cloud-init", "devel", "net-convert", "-p", "/var/lib/cloud/seed/nocloud/network-config", "-k", "yaml",
		"-d", "/tmp/netout", "-D", "debian", "-O", "eni")
	// Debian's eni renderer writes interfaces.d/50-cloud-init
	eni, err := os.ReadFile(filepath.Join(root, "tmp/netout/etc/network/interfaces.d/50-cloud-init"))
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"iface ens3 inet static", "address 10.0.2.50/24", "gateway 10.0.2.2"} {
		if !strings.Contains(string(eni), w) {
			t.Errorf("net-convert (eni) lacks %q:\n%s", w, eni)
		}
	}
	var names []string
	for _, l := range strings.Split(strings.TrimSpace(chroot("dpkg-query", "-W", "-f", "${db:Status-Status} ${Package}\n")), "\n") {
		if st, name, _ := strings.Cut(l, " "); st == "installed" {
			names = append(names, name)
		}
	}
	var mdNames []string
	for _, p := range md.Packages {
		mdNames = append(mdNames, p.Name)
	}
	slices.Sort(names)
	if !slices.Equal(names, mdNames) {
		t.Errorf("metadata lists %d packages, dpkg in the tree %d", len(mdNames), len(names))
	}
}

// TestLoopAirshipISO builds testdata/airship/image-configuration.yaml
// (build-iso) into the shared cache and checks it without booting: the
// output metadata matches the ISO, which holds the live kernel, initramfs,
// squashfs and boot menu and boots BIOS and UEFI (El Torito). The VM
// tier's TestVMAirshipISO boots this same build.
func TestLoopAirshipISO(t *testing.T) {
	testenv.RequireTool(t, "grub-mkrescue", "xorriso", "mksquashfs", "mformat")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	ab, _ := airshipBuild(t, ctx, "image-configuration.yaml", true)
	checkAirshipMetadata(t, ab, "live-boot", "less")
	checkISO(t, ab.Output, "AIRSHIP_LIVE")
}
