package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/imprint-dev/imprint/imagewriter"
	"github.com/imprint-dev/imprint/internal/devguard"
)

func runProvisionTest(t *testing.T, node *agentFakeNode, args ...string) (int, string) {
	t.Helper()
	var out bytes.Buffer
	args = append([]string{"--kernel-cmdline", "", "--token-file", "", "--log-format", "text", "--state-dir", t.TempDir(), "--destructive", "yes"}, args...)
	code := provisionCommand(context.Background(), &cmdEnv{stdout: &out, stderr: &out}, args, node.steps)
	return code, out.String()
}

func TestProvisionCommand(t *testing.T) {
	node := &agentFakeNode{}
	code, out := runProvisionTest(t, node, "--input", "testdata/provision_fuel90_ubuntu_1disk.json")
	if code != 0 || !strings.Contains(out, "provision: succeeded") {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	last := -1
	for _, line := range []string{"--- Provisioning (do_provisioning) ---", "--- Partitioning disks (do_partitioning) ---",
		"--- Copying images (do_copyimage) ---", "--- Installing bootloader (do_bootloader) ---", "--- Provisioning END (do_provisioning) ---"} {
		i := strings.Index(out, line)
		if i < last {
			t.Errorf("%q missing or out of order", line)
		}
		last = i
	}
	if got := strings.Join(node.calls, ","); !strings.HasPrefix(got, "disks,image ") || !strings.HasSuffix(got, ",bootloader") {
		t.Errorf("steps: %s", got)
	}
}

func TestProvisionCommandFailures(t *testing.T) {
	code, out := runProvisionTest(t, &agentFakeNode{failURI: "-boot.img.gz"}, "--input", "testdata/provision_fuel90_ubuntu_1disk.json")
	if code != 1 || !strings.Contains(out, `provision: failed at step images on "/dev/vda3"`) || !strings.Contains(out, "404 Not Found") {
		t.Errorf("bad image URL: exit %d:\n%s", code, out)
	}
	if strings.Contains(out, "Provisioning END") {
		t.Error("END line after a failure")
	}

	doc, _ := os.ReadFile("testdata/provision_fuel90_ubuntu_1disk.json")
	bad := filepath.Join(t.TempDir(), "bad.json")
	os.WriteFile(bad, bytes.Replace(doc, []byte(`"kernel_params"`), []byte(`"kernel_paramz"`), 1), 0o644)
	code, out = runProvisionTest(t, &agentFakeNode{}, "--input_data_file", bad)
	if code != 2 || !strings.Contains(out, "failed at step prepare") || !strings.Contains(out, "ks_meta.pm_data.kernel_params: required") {
		t.Errorf("invalid document: exit %d:\n%s", code, out)
	}
	code, out = runProvisionTest(t, &agentFakeNode{}, "--input", filepath.Join(t.TempDir(), "missing.json"))
	if code != 2 || !strings.Contains(out, "missing.json") {
		t.Errorf("missing document: exit %d:\n%s", code, out)
	}
}

// Outside the bootstrap ramdisk, provision refuses (exit 3) before any step
// runs unless the destructive setting says yes; started as fuel-agent's
// provision, any failure exits 255 as fuel-agent does.
func TestProvisionCommandRefusedOutsideRamdisk(t *testing.T) {
	node := &agentFakeNode{}
	var out bytes.Buffer
	args := []string{"--kernel-cmdline", "", "--token-file", "", "--log-format", "text", "--state-dir", t.TempDir(),
		"--destructive", "no", "--input", "testdata/provision_fuel90_ubuntu_1disk.json"}
	code := provisionCommand(context.Background(), &cmdEnv{stdout: &out, stderr: &out}, args, node.steps)
	if code != 3 || !strings.Contains(out.String(), "destructive") {
		t.Errorf("exit %d:\n%s", code, out.String())
	}
	if len(node.calls) != 0 {
		t.Errorf("steps ran: %q", node.calls)
	}
	out.Reset()
	code = provisionCommand(context.Background(), &cmdEnv{stdout: &out, stderr: &out, alias: "provision"}, args, node.steps)
	if code != 255 {
		t.Errorf("as fuel-agent's provision: exit %d, want 255:\n%s", code, out.String())
	}
}

// imprint provision exits with a code per failure reason (its --help).
func TestProvisionCommandReasonExitCodes(t *testing.T) {
	for _, tt := range []struct {
		err    error
		code   int
		reason string
	}{
		{fmt.Errorf("sha256 mismatch: %w", imagewriter.ErrVerify), 21, "verify_failed"},
		{fmt.Errorf("GET: 503: %w", imagewriter.ErrSource), 20, "image_unreachable"},
		{fmt.Errorf("write: %w", syscall.EIO), 41, "io_error"},
		{fmt.Errorf("%w: refusing", devguard.ErrNotPlanned), 10, "not_planned"},
	} {
		code, out := runProvisionTest(t, &agentFakeNode{failURI: "-boot.img.gz", failErr: tt.err}, "--input", "testdata/provision_fuel90_ubuntu_1disk.json")
		if code != tt.code || !strings.Contains(out, "(reason "+tt.reason+")") {
			t.Errorf("%v: exit %d, want %d with reason %s:\n%s", tt.err, code, tt.code, tt.reason, out)
		}
	}
}

// TestFuelAgentLogTee: invoked by a fuel-agent name, what the command
// writes to stderr also lands in the fuel-agent log (appended), as
// Astute's log parser reads it; invoked as imprint, nothing is written.
func TestFuelAgentLogTee(t *testing.T) {
	logFile := filepath.Join(t.TempDir(), "log", "fuel-agent.log")
	if err := os.MkdirAll(filepath.Dir(logFile), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(logFile, []byte("earlier run\n"), 0o640)
	var errb strings.Builder
	code := dispatch(context.Background(), &cmdEnv{stdout: io.Discard, stderr: &errb, fuelAgentLog: logFile},
		[]string{"/bbin/provision", "--input_data_file", "/nonexistent/provision.json"})
	if code != 2 && code != fuelAgentFailure {
		t.Errorf("exit %d", code)
	}
	b, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(b), "earlier run\n") || !strings.Contains(string(b), "/nonexistent/provision.json") || !strings.Contains(errb.String(), "/nonexistent/provision.json") {
		t.Errorf("console:\n%s\nlog:\n%s", errb.String(), b)
	}
	before := len(b)
	dispatch(context.Background(), &cmdEnv{stdout: io.Discard, stderr: io.Discard, fuelAgentLog: logFile},
		[]string{"imprint", "provision", "--input", "/nonexistent/provision.json"})
	if b, _ := os.ReadFile(logFile); len(b) != before {
		t.Errorf("imprint provision wrote the fuel-agent log:\n%s", b[before:])
	}
}
