package vmtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/imprint-dev/imprint/internal/testenv"
)

// Image is a bootable kernel and initramfs pair.
type Image struct {
	Kernel string
	Initrd string
}

// Size is the initramfs file's size in bytes.
func (im Image) Size() int64 {
	st, err := os.Stat(im.Initrd)
	if err != nil {
		return 0
	}
	return st.Size()
}

// BuildTimeout bounds an initramfs build started by the harness.
const BuildTimeout = 15 * time.Minute

var (
	buildOnce sync.Once
	buildErr  error
)

// RepoRoot returns the directory holding the module's go.mod, searching up
// from the working directory (go test runs in the package's directory).
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && len(b) > 0 {
			if _, err := os.Stat(filepath.Join(dir, "scripts", "mkinitramfs.sh")); err == nil {
				return dir, nil
			}
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("vmtest: no go.mod with scripts/mkinitramfs.sh above the working directory")
		}
		dir = parent
	}
}

// FindImage returns the image the tests boot: IMPRINT_VM_KERNEL and
// IMPRINT_VM_INITRD when set, else build/bootstrap/cloud/ of the
// repository, built with scripts/mkinitramfs.sh (KERNEL_FLAVOUR=cloud)
// when missing. scripts/test-vm.sh builds it before the tests, so the
// harness builds only when a test is run by hand on a fresh tree.
func FindImage() (Image, error) {
	if k, i := os.Getenv("IMPRINT_VM_KERNEL"), os.Getenv("IMPRINT_VM_INITRD"); k != "" || i != "" {
		im := Image{Kernel: k, Initrd: i}
		for _, p := range []string{k, i} {
			if _, err := os.Stat(p); err != nil {
				return Image{}, fmt.Errorf("vmtest: IMPRINT_VM_KERNEL/IMPRINT_VM_INITRD: %w", err)
			}
		}
		return im, nil
	}
	root, err := RepoRoot()
	if err != nil {
		return Image{}, err
	}
	dir := filepath.Join(root, "build", "bootstrap", "cloud")
	im := Image{Kernel: filepath.Join(dir, "vmlinuz"), Initrd: filepath.Join(dir, "initramfs.cpio.gz")}
	if exists(im.Kernel) && exists(im.Initrd) {
		return im, nil
	}
	buildOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), BuildTimeout)
		defer cancel()
		cmd := exec.CommandContext(ctx, filepath.Join(root, "scripts", "mkinitramfs.sh"))
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "KERNEL_FLAVOUR=cloud")
		out, err := cmd.CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("vmtest: scripts/mkinitramfs.sh (KERNEL_FLAVOUR=cloud): %w\n%s", err, TailLines(string(out), 40))
		}
	})
	if buildErr != nil {
		return Image{}, buildErr
	}
	return im, nil
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// Require skips the test when QEMU is missing (it fails instead under CI,
// see internal/testenv: there a skipped VM tier would be a silent hole) and
// returns the image, building it if needed.
func Require(t testing.TB) Image {
	t.Helper()
	testenv.RequireTool(t, QEMU)
	im, err := FindImage()
	if err != nil {
		t.Fatal(err)
	}
	return im
}
