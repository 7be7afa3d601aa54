package vmtest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/imprint-dev/imprint/imagebuild"
	"github.com/imprint-dev/imprint/internal/testenv"
)

// TargetImage is an OS image made by `imprint build-image`'s Go API
// (imagebuild.Build) for provisioning tests: the default package set of
// Debian bookworm as a "/" ext4 and a "/boot" ext2 image, the way Fuel's
// image_data names them.
type TargetImage struct {
	Dir      string // the cache directory holding the outputs
	Root     string // "/" image, gzip
	Boot     string // "/boot" image, gzip
	Metadata string // the metadata YAML
	// Built is false when every output was already there.
	Built    bool
	Duration time.Duration
}

// TargetImageConfig is the build config of [BuildTargetImage]: bookworm
// from mirror, the default packages (imagebuild.DefaultPackages with the
// cloud kernel), written to out.
func TargetImageConfig(mirror, out string) imagebuild.Config {
	return imagebuild.Config{
		ImageData: map[string]imagebuild.Image{
			"/":     {Container: "gzip", Format: "ext4", URI: "file://" + out + "/imprint-target.img.gz"},
			"/boot": {Container: "gzip", Format: "ext2", URI: "file://" + out + "/imprint-target-boot.img.gz"},
		},
		Output:   out,
		Repos:    []imagebuild.Repo{{Name: "debian", Type: "deb", URI: mirror, Suite: "bookworm", Section: "main"}},
		Codename: "bookworm",
	}
}

// targetImageKey is the cache key of a config: its JSON with the output
// directory (and so the URIs) left out, after the defaults are applied,
// and the builder's Revision.
func targetImageKey(cfg imagebuild.Config, variant string) (string, error) {
	c := cfg
	c.Output = ""
	c.ImageData = map[string]imagebuild.Image{}
	for mp, im := range cfg.ImageData {
		im.URI = filepath.Base(im.URI)
		c.ImageData[mp] = im
	}
	b, err := json.Marshal(struct {
		Config   imagebuild.Config
		Variant  string
		Revision int
	}{c, variant, imagebuild.Revision})
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8]), nil
}

// BuildTargetImage builds the target image into
// <repo>/build/target-images/<key>/, key being a digest of the config
// (TargetImageConfig over the host's apt mirror, defaults applied), or
// returns the outputs already there: a second call does not rebuild.
// Concurrent callers (other test processes) wait on a lock file. It needs
// root, debootstrap and the host's mirror; a build takes 10-20 minutes on
// two cores under load.
func BuildTargetImage(ctx context.Context, log *slog.Logger) (TargetImage, error) {
	root, err := RepoRoot()
	if err != nil {
		return TargetImage{}, err
	}
	mirror, err := imagebuild.HostMirror(os.DirFS("/"), "bookworm")
	if err != nil {
		return TargetImage{}, fmt.Errorf("vmtest: target image: %w", err)
	}
	const variant = "minbase"
	cfg, err := imagebuild.Prepare(TargetImageConfig(mirror, "/key"), imagebuild.BuildOptions{})
	if err != nil {
		return TargetImage{}, fmt.Errorf("vmtest: target image config: %w", err)
	}
	key, err := targetImageKey(cfg, variant)
	if err != nil {
		return TargetImage{}, err
	}
	dir := filepath.Join(root, "build", "target-images", key)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return TargetImage{}, err
	}
	cfg = TargetImageConfig(mirror, dir)
	ti := TargetImage{Dir: dir, Root: filepath.Join(dir, "imprint-target.img.gz"),
		Boot: filepath.Join(dir, "imprint-target-boot.img.gz"), Metadata: filepath.Join(dir, "imprint-target.yaml")}

	lock, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return TargetImage{}, err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return TargetImage{}, fmt.Errorf("vmtest: lock %s: %w", lock.Name(), err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)

	// A dot directory: Go tools walking the module tree (goimports, gopls)
	// skip it, instead of descending into the chroot's /proc while the
	// build runs, which kept its unmount busy and failed the build.
	work := filepath.Join(root, "build", "target-images", ".work")
	bo := imagebuild.BuildOptions{WorkDir: work, Options: imagebuild.Options{Variant: variant,
		Cache: filepath.Join(root, "build", "imagebuild-cache"), ImageSize: 2 << 30}}
	res, err := imagebuild.Build(ctx, cfg, bo, imagebuild.SystemDeps(log))
	if err != nil {
		return TargetImage{}, fmt.Errorf("vmtest: build target image in %s: %w", dir, err)
	}
	ti.Built, ti.Duration = !res.Skipped, res.Duration
	for _, p := range []string{ti.Root, ti.Boot, ti.Metadata} {
		if _, err := os.Stat(p); err != nil {
			return TargetImage{}, fmt.Errorf("vmtest: target image: %w", err)
		}
	}
	return ti, nil
}

// RequireTargetImage is BuildTargetImage for a test: it skips without root
// or debootstrap (fails under CI) and fails the test on a build error. The
// build is bounded by 40 minutes.
func RequireTargetImage(t testing.TB, log *slog.Logger) TargetImage {
	t.Helper()
	testenv.RequireRoot(t, "building a target image: losetup, mount, chroot")
	testenv.RequireTool(t, "debootstrap", "losetup", "mkfs.ext4", "mkfs.ext2", "resize2fs", "chroot")
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Minute)
	defer cancel()
	ti, err := BuildTargetImage(ctx, log)
	if err != nil {
		t.Fatal(err)
	}
	if ti.Built {
		t.Logf("vmtest: target image built in %s (%s)", ti.Duration.Round(time.Second), ti.Dir)
	} else {
		t.Logf("vmtest: target image reused from %s", ti.Dir)
	}
	return ti
}
