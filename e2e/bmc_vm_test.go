//go:build vm

package e2e

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/imprint-dev/imprint/controller"
	"github.com/imprint-dev/imprint/internal/testenv"
)

// bmcOperator is the operator of a node whose QEMU is owned by a real
// IPMI BMC (OpenIPMI's ipmi_sim; QEMU's ipmi-bmc-extern talks to it):
// Config{BMC: true} has the controller power it on through the BMC over
// IPMI-over-LAN, and its reprovision is `imprint nodes reprovision
// --reason` (the built binary), which flips the node and power-cycles it
// through the BMC (a new QEMU process); at the end the controller powers
// it off. At each step ipmitool against the same BMC must agree with the
// controller (check).
type bmcOperator struct {
	t      *testing.T
	bin    string
	host   string
	reason string
	cliOut []string
}

func newBMCOperator(t *testing.T, dir, host string) *bmcOperator {
	t.Helper()
	testenv.RequireTool(t, "ipmi_sim", "ipmitool")
	return &bmcOperator{t: t, bin: imprintBinary(t, dir), host: host, reason: "e2e: disk replaced"}
}

func (o *bmcOperator) nodes(ctx context.Context, url, token string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, o.bin, append([]string{"nodes", "--controller", url}, args...)...)
	cmd.Env = append(os.Environ(), "IMPRINT_CONTROLLER_TOKEN="+token)
	out, err := cmd.CombinedOutput()
	o.cliOut = append(o.cliOut, "$ imprint nodes "+strings.Join(args, " ")+"\n"+string(out))
	return string(out), err
}

// reprovision is Config.Reprovision: the operator's commands.
func (o *bmcOperator) reprovision(ctx context.Context, url, token, mac string) error {
	t := o.t
	if out, err := o.nodes(ctx, url, token, "reprovision", o.host, "--reason", o.reason); err != nil {
		return err
	} else if !strings.Contains(out, "flipped to the bootstrap") {
		t.Errorf("reprovision said %q", out)
	}
	out, err := o.nodes(ctx, url, token, "power", "status", o.host)
	if err == nil && !strings.Contains(out, "power on (ipmi BMC 127.0.0.1:") {
		t.Errorf("power status after the reprovision: %q", out)
	}
	if out, err := o.nodes(ctx, url, token, "show", o.host); err == nil && !strings.Contains(out, "bmc:            ipmi 127.0.0.1:") {
		t.Errorf("show lacks the BMC: %q", out)
	}
	return err
}

// log prints what the operator ran and saw, and the power checks.
func (o *bmcOperator) log(res *Result) {
	t := o.t
	t.Logf("imprint nodes:\n%s", strings.Join(o.cliOut, "\n"))
	if res == nil {
		return
	}
	for _, pc := range res.Power {
		t.Logf("power %-22s controller %-4s ipmitool %-4s qemu pid %d seen %v", pc.Step, pc.Controller, pc.Ipmitool, pc.QEMUPid, pc.Seen)
	}
	for _, ev := range res.Events {
		t.Logf("event round %d %-13s %s", ev.Round, ev.Phase, controller.Printable(ev.Detail))
	}
}

// check: the power cycle went through off (a new QEMU process), the node
// is off at the end, and the controller's timeline names the reason and
// the BMC. Run checks that ipmitool agreed with the controller at each
// step (its error otherwise).
func (o *bmcOperator) check(res *Result) {
	t := o.t
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
	if len(res.Power) == 0 {
		t.Fatal("no power checks recorded")
	}
	if last := res.Power[len(res.Power)-1]; last.QEMUPid != 0 {
		t.Errorf("QEMU pid %d still running after power off", last.QEMUPid)
	}
	var sawReason, sawCycle bool
	for _, ev := range res.Events {
		sawReason = sawReason || (ev.Phase == controller.PhaseReprovision && strings.Contains(ev.Detail, o.reason))
		sawCycle = sawCycle || (ev.Phase == controller.PhasePower && strings.Contains(ev.Detail, "power cycle through ipmi BMC"))
	}
	if !sawReason || !sawCycle {
		t.Errorf("timeline: reprovision with the reason %v, power cycle through the BMC %v", sawReason, sawCycle)
	}
}
