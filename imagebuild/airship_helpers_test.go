//go:build loop || vm

package imagebuild_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kdomanski/iso9660"
	"go.yaml.in/yaml/v3"

	"github.com/imprint-dev/imprint/imagebuild"
	"github.com/imprint-dev/imprint/internal/logtest"
	"github.com/imprint-dev/imprint/internal/testenv"
)

// airshipBuild resolves testdata/airship/<doc> (its builder files copied to
// a config directory) and builds it with the shared debootstrap cache.
// cached: the outputs live in build/imagebuild-cache/airship-<key>, the key
// a hash of what is built (the resolved config, the action, the ISO steps),
// under a lock, so the loop tier's build of an image is the one the VM tier
// boots (like vmtest.BuildTargetImage, a change to the builder's code alone
// does not change the key: remove the directory to rebuild).
func airshipBuild(t *testing.T, ctx context.Context, doc string, cached bool) (imagebuild.AirshipBuild, imagebuild.AirshipResult) {
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
	in := imagebuild.AirshipInput{ConfigDir: d.ConfigDir(conf), WorkDir: filepath.Join(t.TempDir(), "work")}
	in.UserData, _ = os.ReadFile(filepath.Join(conf, "user-data"))
	in.NetworkConfig, _ = os.ReadFile(filepath.Join(conf, "network-config"))
	cache, err := filepath.Abs("../build/imagebuild-cache")
	if err != nil {
		t.Fatal(err)
	}
	force := false
	if cached {
		key := airshipKey(t, d, in)
		in.OutputDir = filepath.Join(cache, "airship-"+key)
		if err := os.MkdirAll(in.OutputDir, 0o755); err != nil {
			t.Fatal(err)
		}
		lock, err := os.OpenFile(filepath.Join(in.OutputDir, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		defer lock.Close()
		if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
			t.Fatal(err)
		}
		defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	} else {
		force = true
	}
	ab, err := d.Resolve(in)
	if err != nil {
		t.Fatal(err)
	}
	bo := imagebuild.BuildOptions{WorkDir: t.TempDir(), Force: force, Options: imagebuild.Options{Variant: "minbase", Cache: cache, ImageSize: 3 << 30}}
	log, _ := logtest.Capture(t)
	t0 := time.Now()
	res, err := imagebuild.BuildAirship(ctx, ab, bo, imagebuild.SystemDeps(log))
	if err != nil {
		t.Fatalf("BuildAirship: %v", err)
	}
	if res.Skipped {
		t.Logf("%s: cached build reused: %s", ab.Action, ab.Output)
	} else {
		t.Logf("%s built in %s: %s", ab.Action, time.Since(t0).Round(time.Second), ab.Output)
	}
	return ab, res
}

// airshipKey names a cached build: what the document resolves to (with
// fixed directories) and, for an ISO, its assembly steps.
func airshipKey(t *testing.T, d imagebuild.AirshipDoc, in imagebuild.AirshipInput) string {
	t.Helper()
	in.OutputDir, in.WorkDir = "/key/out", "/key/work"
	ab, err := d.Resolve(in)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	if err := json.NewEncoder(h).Encode(ab); err != nil {
		t.Fatal(err)
	}
	if ab.Action == imagebuild.ActionISO {
		p, err := imagebuild.ISOPlan(imagebuild.ISOInput{Tarball: ab.Tarball, KernelVersion: "k", WorkDir: ab.WorkDir, Output: ab.Output, Label: "L"})
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(h, p.String())
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// checkISO reads the live ISO back: its volume id, the kernel, initramfs,
// squashfs and grub.cfg (kdomanski/iso9660), and an El Torito catalogue
// with a BIOS and a UEFI boot image (xorriso).
func checkISO(t *testing.T, iso, wantLabel string) {
	t.Helper()
	testenv.RequireTool(t, "xorriso")
	f, err := os.Open(iso)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := iso9660.OpenImage(f)
	if err != nil {
		t.Fatal(err)
	}
	if label, _ := img.Label(); label != wantLabel {
		t.Errorf("volume id %q, want %s", label, wantLabel)
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
			name := strings.TrimPrefix(p+"/"+k.Name(), "/")
			if k.IsDir() {
				if name == "live" || name == "boot" || name == "boot/grub" {
					walk(k, name)
				}
				continue
			}
			sizes[name] = k.Size()
		}
	}
	walk(root, "")
	for _, p := range []string{imagebuild.ISOKernel, imagebuild.ISOInitrd, imagebuild.ISOSquashfs, imagebuild.ISOGrubCfg} {
		if sizes[p] == 0 {
			t.Errorf("ISO has no %s (files: %v)", p, sizes)
		}
	}
	t.Logf("ISO %s: squashfs %d MiB, initrd %d MiB", iso, sizes[imagebuild.ISOSquashfs]>>20, sizes[imagebuild.ISOInitrd]>>20)
	et, err := exec.Command("xorriso", "-indev", iso, "-report_el_torito", "plain").CombinedOutput()
	if err != nil {
		t.Fatalf("xorriso: %v\n%s", err, et)
	}
	if !strings.Contains(string(et), "BIOS") || !strings.Contains(string(et), "UEFI") {
		t.Errorf("El Torito catalogue lacks a BIOS or a UEFI entry:\n%s", et)
	}
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
