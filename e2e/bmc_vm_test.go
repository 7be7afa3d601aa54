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
	"github.com/imprint-dev/imprint/internal/testenv"
	"github.com/imprint-dev/imprint/internal/vmtest"
)

// TestVMReprovisionBMC: a node whose QEMU is owned by a real IPMI BMC
// (OpenIPMI's ipmi_sim; QEMU's ipmi-bmc-extern talks to it). The
// controller powers it on through the BMC over IPMI-over-LAN, provisions
// it, and `imprint nodes reprovision --reason` flips it and power-cycles
// it through the BMC (a new QEMU process); it is provisioned again and
// comes back with its OS; the controller powers it off. At each step
// ipmitool against the same BMC agrees with the controller.
func TestVMReprovisionBMC(t *testing.T) {
	im := vmtest.Require(t)
	testenv.RequireTool(t, "ipmi_sim", "ipmitool")
	log := testLogger(t)
	ti := vmtest.RequireTargetImage(t, log)
	dir := t.TempDir()
	bin := os.Getenv("IMPRINT_BIN")
	if bin == "" {
		bin = filepath.Join(dir, "imprint")
		build := exec.Command("go", "build", "-o", bin, "github.com/imprint-dev/imprint/cmd/imprint")
		build.Env = append(build.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("go build imprint: %v\n%s", err, out)
		}
	}
	const reason = "e2e: disk replaced"
	var cliOut []string
	nodes := func(ctx context.Context, url, token string, args ...string) (string, error) {
		cmd := exec.CommandContext(ctx, bin, append([]string{"nodes", "--controller", url}, args...)...)
		cmd.Env = append(os.Environ(), "IMPRINT_CONTROLLER_TOKEN="+token)
		out, err := cmd.CombinedOutput()
		cliOut = append(cliOut, "$ imprint nodes "+strings.Join(args, " ")+"\n"+string(out))
		return string(out), err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Minute)
	defer cancel()
	var tl strings.Builder
	res, err := Run(ctx, Config{Dir: dir, Kernel: im.Kernel, Initrd: im.Initrd, Images: TargetImages(ti),
		Hostname: "bmc-node", MAC: "52:54:00:12:34:5a", Out: &tl, Logger: log, BMC: true,
		Reprovision: func(ctx context.Context, url, token, mac string) error {
			if out, err := nodes(ctx, url, token, "reprovision", "bmc-node", "--reason", reason); err != nil {
				return err
			} else if !strings.Contains(out, "flipped to the bootstrap") {
				t.Errorf("reprovision said %q", out)
			}
			out, err := nodes(ctx, url, token, "power", "status", "bmc-node")
			if err == nil && !strings.Contains(out, "power on (ipmi BMC 127.0.0.1:") {
				t.Errorf("power status after the reprovision: %q", out)
			}
			if out, err := nodes(ctx, url, token, "show", "bmc-node"); err == nil && !strings.Contains(out, "bmc:            ipmi 127.0.0.1:") {
				t.Errorf("show lacks the BMC: %q", out)
			}
			return err
		}})
	t.Logf("timeline:\n%s", tl.String())
	t.Logf("imprint nodes:\n%s", strings.Join(cliOut, "\n"))
	if res != nil {
		for _, pc := range res.Power {
			t.Logf("power %-22s controller %-4s ipmitool %-4s qemu pid %d seen %v", pc.Step, pc.Controller, pc.Ipmitool, pc.QEMUPid, pc.Seen)
		}
		for _, ev := range res.Events {
			t.Logf("event round %d %-13s %s", ev.Round, ev.Phase, controller.Printable(ev.Detail))
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Rounds) != 2 {
		t.Fatalf("%d rounds, want 2", len(res.Rounds))
	}
	for i, r := range res.Rounds {
		if r.Observed.Hostname != "bmc-node" || r.Observed.CloudInit != "done" {
			t.Errorf("round %d: hostname %q cloud-init %q, want bmc-node, done", i+1, r.Observed.Hostname, r.Observed.CloudInit)
		}
	}
	if !res.Rounds[1].PhoneHome.Time.After(res.Rounds[0].PhoneHome.Time) {
		t.Errorf("round 2's phone-home is not after round 1's")
	}
	// The power cycle went through off: ipmitool saw it, and the QEMU
	// of round 2 is another process.
	var pids []int
	for _, pc := range res.Power {
		// ipmitool polls every 200ms: it may miss a short off; the new
		// QEMU pid below is the proof the power went off.
		if pc.Step == "reprovisioned" {
			t.Logf("during the reprovision ipmitool saw %v", pc.Seen)
		}
		if pc.QEMUPid != 0 {
			pids = append(pids, pc.QEMUPid)
		}
	}
	if len(pids) < 2 || pids[0] == pids[len(pids)-1] {
		t.Errorf("QEMU pids %v: the power cycle did not start a new QEMU", pids)
	}
	if last := res.Power[len(res.Power)-1]; last.QEMUPid != 0 {
		t.Errorf("QEMU pid %d still running after power off", last.QEMUPid)
	}
	// The controller's timeline names the reason and the BMC.
	var sawReason, sawCycle bool
	for _, ev := range res.Events {
		sawReason = sawReason || (ev.Phase == controller.PhaseReprovision && strings.Contains(ev.Detail, reason))
		sawCycle = sawCycle || (ev.Phase == controller.PhasePower && strings.Contains(ev.Detail, "power cycle through ipmi BMC"))
	}
	if !sawReason || !sawCycle {
		t.Errorf("timeline: reprovision with the reason %v, power cycle through the BMC %v", sawReason, sawCycle)
	}
}
