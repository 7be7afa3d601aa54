//go:build vm

package imagebuild_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/kdomanski/iso9660"

	"github.com/imprint-dev/imprint/imagebuild"
	"github.com/imprint-dev/imprint/internal/logtest"
	"github.com/imprint-dev/imprint/internal/testenv"
	"github.com/imprint-dev/imprint/internal/vmtest"
)

// airshipBuild resolves testdata/airship/<doc> (its builder files copied to
// a config directory) and builds it with the shared debootstrap cache.
func airshipBuild(t *testing.T, ctx context.Context, doc string, edit func(*imagebuild.AirshipDoc)) (imagebuild.AirshipBuild, imagebuild.AirshipResult) {
	t.Helper()
	testenv.RequireLoop(t, "debootstrap", "mkfs.ext4", "e2fsck", "resize2fs", "dumpe2fs", "chroot", "tar")
	conf := t.TempDir()
	for _, f := range []string{doc, "user-data", "network-config"} {
		data, err := os.ReadFile(filepath.Join("testdata/airship", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(conf, f), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	data, _ := os.ReadFile(filepath.Join(conf, doc))
	d, err := imagebuild.ParseAirship(data)
	if err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		edit(&d)
	}
	in := imagebuild.AirshipInput{ConfigDir: d.ConfigDir(conf), WorkDir: filepath.Join(t.TempDir(), "work")}
	in.UserData, _ = os.ReadFile(filepath.Join(conf, "user-data"))
	in.NetworkConfig, _ = os.ReadFile(filepath.Join(conf, "network-config"))
	ab, err := d.Resolve(in)
	if err != nil {
		t.Fatal(err)
	}
	cache, err := filepath.Abs("../build/imagebuild-cache")
	if err != nil {
		t.Fatal(err)
	}
	bo := imagebuild.BuildOptions{WorkDir: t.TempDir(), Options: imagebuild.Options{Variant: "minbase", Cache: cache, ImageSize: 3 << 30}}
	log, _ := logtest.Capture(t)
	t0 := time.Now()
	res, err := imagebuild.BuildAirship(ctx, ab, bo, imagebuild.SystemDeps(log))
	if err != nil {
		t.Fatalf("BuildAirship: %v", err)
	}
	t.Logf("%s built in %s: %s", ab.Action, time.Since(t0).Round(time.Second), ab.Output)
	return ab, res
}

// checkAirshipMetadata reads the output metadata YAML and checks it
// against the files it lists and the packages and kernel the image must have.
func checkAirshipMetadata(t *testing.T, ab imagebuild.AirshipBuild, wantPkgs ...string) imagebuild.AirshipMetadata {
	t.Helper()
	data, err := os.ReadFile(ab.Metadata)
	if err != nil {
		t.Fatal(err)
	}
	var md imagebuild.AirshipMetadata
	dec := yaml.NewDecoder(strings.NewReader(string(data)))
	dec.KnownFields(true)
	if err := dec.Decode(&md); err != nil {
		t.Fatalf("output metadata: %v\n%s", err, data)
	}
	if md.Action != ab.Action || md.Name != ab.Name || len(md.Files) != 1 || md.Files[0].Name != filepath.Base(ab.Output) {
		t.Fatalf("output metadata: action %q name %q files %+v", md.Action, md.Name, md.Files)
	}
	f, err := os.Open(ab.Output)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	n, _ := io.Copy(h, f)
	if n != md.Files[0].Size || hex.EncodeToString(h.Sum(nil)) != md.Files[0].SHA256 {
		t.Errorf("output metadata: %s is %d bytes sha256 %x; the metadata says %d %s", ab.Output, n, h.Sum(nil), md.Files[0].Size, md.Files[0].SHA256)
	}
	if !strings.HasSuffix(md.Kernel.Version, "-cloud-amd64") || md.Kernel.Package != "linux-image-"+md.Kernel.Version {
		t.Errorf("output metadata: kernel %+v", md.Kernel)
	}
	have := map[string]string{}
	for _, p := range md.Packages {
		have[p.Name] = p.Version
	}
	for _, w := range append([]string{"cloud-init", md.Kernel.Package}, wantPkgs...) {
		if have[w] == "" {
			t.Errorf("output metadata: package %s not listed as installed", w)
		}
	}
	if strings.Join(md.Seed, ",") != "meta-data,network-config,user-data" {
		t.Errorf("output metadata: seed %v", md.Seed)
	}
	if md.OS.Name != "Debian" || md.OS.Major != 12 {
		t.Errorf("output metadata: os %+v", md.OS)
	}
	t.Logf("output metadata: %s %d bytes sha256 %s, kernel %s, %d packages", md.Files[0].Name, md.Files[0].Size, md.Files[0].SHA256[:12], md.Kernel.Version, len(md.Packages))
	return md
}

// bootReport boots args under QEMU (TCG) until the guest powers off (the
// user-data's report unit does once cloud-init is done) and returns the
// report lines of the serial console.
func bootReport(t *testing.T, ctx context.Context, name string, args []string, timeout time.Duration) (map[string]string, string) {
	serial := filepath.Join(t.TempDir(), name+".serial")
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	argv := append([]string{"-accel", "tcg", "-m", "1536", "-smp", "1", "-display", "none", "-no-reboot", "-monitor", "none",
		"-serial", "file:" + serial, "-nic", "user,model=virtio-net-pci,mac=52:54:00:a1:50:01"}, args...)
	t0 := time.Now()
	out, err := exec.CommandContext(ctx, "qemu-system-x86_64", argv...).CombinedOutput()
	data, _ := os.ReadFile(serial)
	if err != nil || ctx.Err() != nil {
		t.Errorf("%s: qemu: %v %s (after %s); serial tail:\n%s", name, err, out, time.Since(t0).Round(time.Second), tailString(string(data), 5000))
		return nil, string(data)
	}
	rep := map[string]string{}
	in := false
	for _, l := range strings.Split(strings.ReplaceAll(string(data), "\r", ""), "\n") {
		switch {
		case strings.Contains(l, "IMPRINT-REPORT-BEGIN"):
			in = true
		case strings.Contains(l, "IMPRINT-REPORT-END"):
			in = false
		case in:
			k, v, _ := strings.Cut(strings.TrimSpace(l), " ")
			if strings.HasPrefix(k, "IMPRINT-") || k == "status:" {
				rep[k] = strings.TrimSpace(v)
			}
		}
	}
	t.Logf("%s: powered off after %s; report %q", name, time.Since(t0).Round(time.Second), rep)
	return rep, string(data)
}

func tailString(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// checkReport asserts what the user-data and network-config of
// testdata/airship must have done in the booted image.
func checkReport(t *testing.T, name, mode string, rep map[string]string, serial string) {
	t.Helper()
	if rep == nil {
		return
	}
	want := map[string]string{
		"status:":       "done",
		"IMPRINT-FILE":  "imprint build-image from an Airship ImageConfiguration",
		"IMPRINT-EFI":   mode,
		"IMPRINT-ROUTE": "default via 10.0.2.2 dev ens3",
	}
	for k, v := range want {
		if !strings.HasPrefix(rep[k], v) {
			t.Errorf("%s: %s = %q, want %q", name, k, rep[k], v)
		}
	}
	if !strings.HasPrefix(rep["IMPRINT-USER"], "airship:x:") || !strings.HasSuffix(rep["IMPRINT-USER"], ":/home/airship:/bin/bash") {
		t.Errorf("%s: user airship: %q", name, rep["IMPRINT-USER"])
	}
	// the network-config's static address, not the DHCP lease (10.0.2.15)
	if rep["IMPRINT-ADDR"] != "ens3 10.0.2.50/24" {
		t.Errorf("%s: addresses %q, want only the network-config's ens3 10.0.2.50/24", name, rep["IMPRINT-ADDR"])
	}
	// params.networking: the host name and /etc/hosts entry
	if rep["IMPRINT-HOST"] != "airship-node 10.0.2.2 gateway.airship.test gateway" {
		t.Errorf("%s: host %q", name, rep["IMPRINT-HOST"])
	}
	if !strings.Contains(serial, "Cloud-init v.") || !strings.Contains(serial, "finished at") {
		t.Errorf("%s: no cloud-init final message on the console", name)
	}
}

// TestVMAirshipISO builds testdata/airship/image-configuration.yaml (an
// ImageConfiguration, build-iso) and checks the ISO and the output
// metadata, then boots the one ISO as a CD under SeaBIOS and under OVMF at
// the same time: each must reach cloud-init done with the user-data's
// user and file, the network-config's static address and route, and the
// networking params' host name and hosts entry.
func TestVMAirshipISO(t *testing.T) {
	testenv.RequireTool(t, "qemu-system-x86_64", "grub-mkrescue", "xorriso", "mksquashfs", "mformat")
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Minute)
	defer cancel()
	ab, _ := airshipBuild(t, ctx, "image-configuration.yaml", nil)
	checkAirshipMetadata(t, ab, "live-boot", "less")

	// the ISO's contents, read back with an ISO9660 reader
	f, err := os.Open(ab.Output)
	if err != nil {
		t.Fatal(err)
	}
	img, err := iso9660.OpenImage(f)
	if err != nil {
		t.Fatal(err)
	}
	label, _ := img.Label()
	if label != "AIRSHIP_LIVE" {
		t.Errorf("volume id %q, want AIRSHIP_LIVE", label)
	}
	root, err := img.RootDir()
	if err != nil {
		t.Fatal(err)
	}
	sizes := map[string]int64{}
	var walk func(dir *iso9660.File, p string)
	walk = func(dir *iso9660.File, p string) {
		kids, err := dir.GetChildren()
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range kids {
			if k.IsDir() {
				if p == "" && (k.Name() == "live" || k.Name() == "boot") || p == "boot" && k.Name() == "grub" {
					walk(k, p+"/"+k.Name())
				}
				continue
			}
			sizes[strings.TrimPrefix(p+"/"+k.Name(), "/")] = k.Size()
		}
	}
	walk(root, "")
	f.Close()
	for _, p := range []string{imagebuild.ISOKernel, imagebuild.ISOInitrd, imagebuild.ISOSquashfs, imagebuild.ISOGrubCfg} {
		if sizes[p] == 0 {
			t.Errorf("ISO has no %s (files: %v)", p, sizes)
		}
	}
	t.Logf("ISO %s: squashfs %d MiB, initrd %d MiB", ab.Output, sizes[imagebuild.ISOSquashfs]>>20, sizes[imagebuild.ISOInitrd]>>20)
	// El Torito: a BIOS and a UEFI boot image
	et, err := exec.Command("xorriso", "-indev", ab.Output, "-report_el_torito", "plain").CombinedOutput()
	if err != nil {
		t.Fatalf("xorriso: %v\n%s", err, et)
	}
	if !strings.Contains(string(et), "BIOS") || !strings.Contains(string(et), "UEFI") {
		t.Errorf("El Torito catalogue lacks a BIOS or a UEFI entry:\n%s", et)
	}

	vars := filepath.Join(t.TempDir(), "OVMF_VARS.fd")
	uefi, err := vmtest.FirmwareArgs(vmtest.FirmwareUEFI, vars)
	if err != nil {
		testenv.Skipf(t, "%v", err)
	}
	cd := []string{"-drive", "file=" + ab.Output + ",media=cdrom,readonly=on,format=raw", "-boot", "d"}
	var wg sync.WaitGroup
	for _, m := range []struct {
		mode string
		args []string
	}{{"bios", cd}, {"uefi", append(append([]string(nil), uefi...), cd...)}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rep, serial := bootReport(t, ctx, m.mode, m.args, 20*time.Minute)
			checkReport(t, m.mode, m.mode, rep, serial)
		}()
	}
	wg.Wait()
}
