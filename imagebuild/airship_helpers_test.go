//go:build loop || vm

package imagebuild_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/imprint-dev/imprint/imagebuild"
	"github.com/imprint-dev/imprint/internal/logtest"
	"github.com/imprint-dev/imprint/internal/testenv"
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
