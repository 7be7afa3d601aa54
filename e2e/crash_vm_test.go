//go:build vm

package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/imprint-dev/imprint/controller"
	"github.com/imprint-dev/imprint/internal/vmtest"
)

// TestVMControllerCrash: `imprint controller` on SQLite is killed with
// SIGKILL while the node writes its image and restarted on the same
// database; the node finishes, is flipped and boots its OS; reset again,
// it boots the OS, not the bootstrap.
func TestVMControllerCrash(t *testing.T) {
	im := vmtest.Require(t)
	log := testLogger(t)
	ti := vmtest.RequireTargetImage(t, log)
	dir := t.TempDir()
	bin := imprintBinary(t, dir)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Minute)
	defer cancel()
	var tl strings.Builder
	res, err := RunCrash(ctx, Config{Dir: dir, Kernel: im.Kernel, Initrd: im.Initrd, Images: TargetImages(ti),
		Hostname: "crash-node", Out: &tl, Logger: log}, bin)
	t.Logf("timeline:\n%s", tl.String())
	if res != nil {
		for _, ev := range res.Events {
			t.Logf("event round %d %-13s %s", ev.Round, ev.Phase, controller.Printable(ev.Detail))
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	if res.ObservedOS.Hostname != "crash-node" {
		t.Errorf("hostname %q over ssh, want crash-node", res.ObservedOS.Hostname)
	}
	// One round, one bootstrap: after the restart the node was neither
	// provisioned again nor given the bootstrap; the reset got local boot.
	var phases []string
	for _, ev := range res.Events {
		if ev.Round != 1 {
			t.Errorf("event of round %d: %+v", ev.Round, ev)
		}
		if ev.Phase != controller.PhaseProgress {
			phases = append(phases, string(ev.Phase))
		}
	}
	want := "pxe-bootstrap discovered provisioning provisioned rebooting pxe-local os-up pxe-local"
	got := strings.Join(phases, " ")
	if got != want && got != want+" os-up" {
		t.Errorf("phases (progress left out):\n got %s\nwant %s[ os-up]", got, want)
	}
}

// imprintBinary is IMPRINT_BIN, an imprint binary built beforehand, else
// one built now (static, as the ramdisk's) into dir.
func imprintBinary(t *testing.T, dir string) string {
	t.Helper()
	if bin := os.Getenv("IMPRINT_BIN"); bin != "" {
		return bin
	}
	bin := filepath.Join(dir, "imprint")
	build := exec.Command("go", "build", "-o", bin, "github.com/imprint-dev/imprint/cmd/imprint")
	build.Env = append(build.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build imprint: %v\n%s", err, out)
	}
	return bin
}
