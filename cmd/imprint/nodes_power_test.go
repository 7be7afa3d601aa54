//go:build !imprint_ramdisk

package main

import (
	"bytes"
	"context"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imprint-dev/imprint/controller"
	"github.com/imprint-dev/imprint/internal/redfishemu"
)

// TestNodesPower drives imprint nodes enroll, power and events against a
// real controller and the Redfish emulator (its machine off): the password
// comes from a file and is never printed; a BMC answering 500 fails the
// command with the node and the 500; reprovision needs a reason.
func TestNodesPower(t *testing.T) {
	const secret = "redfish-s3cret-pw"
	dir, _ := controllerFiles(t)
	e, err := redfishemu.Start(redfishemu.Config{Dir: t.TempDir(), Password: secret})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	store, err := controller.OpenStore(context.Background(), "sqlite:"+filepath.Join(dir, "c.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	ctrl, err := controller.New(controller.Config{Token: "op-token", Store: store, GuestURL: "http://127.0.0.1:1",
		Kernel: filepath.Join(dir, "vmlinuz"), Initrd: filepath.Join(dir, "initramfs.cpio.gz"),
		Images: []controller.Image{{MountPoint: "/", Path: filepath.Join(dir, "root.img.gz")}},
		Nodes:  []controller.Node{{MAC: "52:54:00:aa:bb:cc", Hostname: "node-1"}}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(ctrl.Handler())
	defer func() { srv.Close(); ctrl.Close() }()
	pwFile := filepath.Join(dir, "bmc-password")
	os.WriteFile(pwFile, []byte(secret+"\n"), 0o600)
	var all strings.Builder
	nodes := func(args ...string) (int, string) {
		var out bytes.Buffer
		code := dispatch(context.Background(), &cmdEnv{stdin: strings.NewReader(""), stdout: &out, stderr: &out},
			append([]string{"imprint", "nodes", "--controller", srv.URL, "--token", "op-token"}, args...))
		all.WriteString(out.String())
		return code, out.String()
	}
	bmcURL := "redfish+http://" + strings.TrimPrefix(e.URL, "http://")
	if code, out := nodes("reprovision", "node-1"); code != 2 || !strings.Contains(out, "--reason TEXT is required") {
		t.Errorf("reprovision without a reason: %d %s", code, out)
	}
	if code, out := nodes("enroll", "node-1", "--bmc", bmcURL, "--bmc-user", "admin"); code != 1 || !strings.Contains(out, "no BMC password") {
		t.Errorf("enroll without a password: %d %s", code, out)
	}
	if code, out := nodes("enroll", "node-1", "--bmc", bmcURL, "--bmc-user", "admin", "--bmc-password-file", pwFile); code != 0 || !strings.Contains(out, "redfish BMC http://127.0.0.1:") || !strings.Contains(out, "power is off") {
		t.Fatalf("enroll: %d %s", code, out)
	}
	if code, out := nodes("power", "status", "node-1"); code != 0 || !strings.Contains(out, "node 52:54:00:aa:bb:cc: power off (redfish BMC") {
		t.Errorf("power status: %d %s", code, out)
	}
	if code, out := nodes("show", "node-1"); code != 0 || !strings.Contains(out, "bmc:            redfish http://127.0.0.1:") {
		t.Errorf("show: %d %s", code, out)
	}
	e.SetFault(redfishemu.Fault500)
	if code, out := nodes("power", "on", "node-1", "--reason", "rack move"); code != 1 || !strings.Contains(out, "52:54:00:aa:bb:cc") || !strings.Contains(out, "500") {
		t.Errorf("power on against a 500: %d %s", code, out)
	}
	if code, out := nodes("power", "sideways", "node-1"); code != 2 || !strings.Contains(out, "want power on|off|cycle|status") {
		t.Errorf("power sideways: %d %s", code, out)
	}
	if code, out := nodes("events", "node-1"); code != 0 || !strings.Contains(out, "bmc ") || !strings.Contains(out, "power-failed") || !strings.Contains(out, "rack move") {
		t.Errorf("events: %d %s", code, out)
	}
	if strings.Contains(all.String(), secret) {
		t.Errorf("the BMC password was printed:\n%s", all.String())
	}
}
