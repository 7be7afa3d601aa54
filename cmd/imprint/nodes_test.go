//go:build !imprint_ramdisk

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/imprint-dev/imprint/agent"
	"github.com/imprint-dev/imprint/api"
	"github.com/imprint-dev/imprint/bootstrap/nodearchive"
	"github.com/imprint-dev/imprint/controller"
	"github.com/imprint-dev/imprint/inventory"
)

// TestNodes drives a real controller (SQLite) through a node whose agent
// reports hostile strings, then reads it back with imprint nodes: list
// (table and JSON), show (timeline, last result), a wrong token, and no
// raw control character on the terminal.
func TestNodes(t *testing.T) {
	dir, _ := controllerFiles(t)
	store, err := controller.OpenStore(context.Background(), "sqlite:"+filepath.Join(dir, "c.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctrl, err := controller.New(controller.Config{Token: "op-token", Store: store, GuestURL: "http://" + ln.Addr().String(),
		Kernel: filepath.Join(dir, "vmlinuz"), Initrd: filepath.Join(dir, "initramfs.cpio.gz"),
		Images: []controller.Image{{MountPoint: "/", Path: filepath.Join(dir, "root.img.gz")}},
		Nodes: []controller.Node{{MAC: "52:54:00:aa:bb:cc", Hostname: "node-1", AgentURL: "http://127.0.0.1:1"},
			{MAC: "52:54:00:aa:bb:cd", Hostname: "node-2"}}})
	if err != nil {
		t.Fatal(err)
	}
	srv := &httptest.Server{Listener: ln, Config: &http.Server{Handler: ctrl.Handler()}}
	srv.Start()
	defer func() { srv.Close(); ctrl.Close() }()

	resp, err := http.Get(srv.URL + "/ipxe?mac=52:54:00:aa:bb:cc")
	if err != nil {
		t.Fatal(err)
	}
	script, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var nodeURL string
	for _, f := range strings.Fields(string(script)) {
		if v, ok := strings.CutPrefix(f, "imprint.controller="); ok {
			nodeURL = v
		}
	}
	// The node's token is in its per-node initramfs, after the shared one.
	resp, err = http.Get(srv.URL + "/boot/initramfs/52-54-00-aa-bb-cc")
	if err != nil {
		t.Fatal(err)
	}
	initrd, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	files, err := nodearchive.Read(initrd[len("initramfs.cpio.gz"):])
	if err != nil {
		t.Fatalf("per-node initramfs (%d): %v", resp.StatusCode, err)
	}
	nodeToken := strings.TrimSpace(string(files[nodearchive.TokenFile].Content))
	const evil = "\x1b]0;pwned\x07\x1b[2J"
	rep := &agent.CallbackClient{URL: nodeURL, Token: nodeToken, Sleep: func(context.Context, time.Duration) error { return context.Canceled }}
	ctx := context.Background()
	inv := &inventory.Inventory{NICs: []inventory.NIC{{Name: "eth0", MAC: "52:54:00:aa:bb:cc"}}}
	if err := rep.Discovery(ctx, api.Discovery{NodeID: "uuid" + evil, Listen: ":9999", Scheme: "http", Version: evil, Inventory: inv}); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	ctrl.Wait(wctx, "52:54:00:aa:bb:cc", controller.PhaseFailed) // no agent at 127.0.0.1:1: the post fails
	if err := rep.Result(ctx, api.Status{ID: "job" + evil, State: api.StateFailed, Error: &api.JobError{Step: "images", Device: "/dev/vda" + evil, Reason: api.ReasonVerifyFailed, Message: "boom" + evil}}); err != nil {
		t.Fatal(err)
	}

	nodes := func(args ...string) (int, string) {
		var out bytes.Buffer
		code := dispatch(context.Background(), &cmdEnv{stdin: strings.NewReader(""), stdout: &out, stderr: &out},
			append([]string{"imprint", "nodes", "--controller", srv.URL, "--token", "op-token"}, args...))
		return code, out.String()
	}
	code, out := nodes("list")
	if code != 0 || !strings.Contains(out, "52:54:00:aa:bb:cc  node-1") || !strings.Contains(out, "node-2") || !strings.Contains(out, "failed at images") {
		t.Errorf("list: %d\n%s", code, out)
	}
	code, out = nodes("list", "-o", "json")
	var list []api.NodeSummary
	if err := json.Unmarshal([]byte(out), &list); code != 0 || err != nil || len(list) != 2 || list[0].LastStatus == nil || list[0].Round != 1 {
		t.Errorf("list -o json: %d %v\n%s", code, err, out)
	}
	if strings.Contains(out, nodeToken) {
		t.Errorf("the operator API shows the node's token:\n%s", out)
	}
	code, out = nodes("show", "node-1")
	for _, want := range []string{"node 52:54:00:aa:bb:cc (node-1), round 1", "pxe-bootstrap", "discovered", "failed", `error:        step images, device /dev/vda\x1b]0;pwned\x07\x1b[2J: boom\x1b]0;pwned`, `reported id:    uuid\x1b]0;pwned`, "reason:       verify_failed"} {
		if !strings.Contains(out, want) {
			t.Errorf("show lacks %q:\n%s", want, out)
		}
	}
	if code != 0 || strings.ContainsAny(out, "\x1b\x07") {
		t.Errorf("show: exit %d, raw control characters in:\n%q", code, out)
	}
	if code, out := nodes("show", "52:54:00:aa:bb:cd", "-o", "json"); code != 0 || !strings.Contains(out, `"hostname": "node-2"`) {
		t.Errorf("show node-2 -o json: %d\n%s", code, out)
	}
	if code, out := nodes("show", "nope"); code != 1 || !strings.Contains(out, "404") {
		t.Errorf("show nope: %d %s", code, out)
	}
	var o bytes.Buffer
	if code := dispatch(ctx, &cmdEnv{stdout: &o, stderr: &o}, []string{"imprint", "nodes", "--controller", srv.URL, "--token", nodeToken, "list"}); code != 1 || !strings.Contains(o.String(), "403") {
		t.Errorf("a node's token on the operator API: %d %s", code, o.String())
	}
	if code, out := nodes("list", "-o", "yaml"); code != 2 || !strings.Contains(out, "want table or json") {
		t.Errorf("-o yaml: %d %s", code, out)
	}
}

// TestCtlRefusesUnpinnedTLS: an https agent without --fingerprint is refused
// unless --insecure; a wrong pin fails, the right one works.
func TestCtlRefusesUnpinnedTLS(t *testing.T) {
	srv := httptest.NewTLSServer(api.NewRouter(api.Deps{Token: "tk", Inventory: agentFakeInventory}))
	defer srv.Close()
	fp := api.Fingerprint(srv.Certificate().Raw)
	ctl := func(args ...string) (int, string) {
		var out bytes.Buffer
		code := dispatch(context.Background(), &cmdEnv{stdin: strings.NewReader(""), stdout: &out, stderr: &out},
			append([]string{"imprint", "ctl", "--agent", srv.URL, "--token", "tk"}, args...))
		return code, out.String()
	}
	if code, out := ctl("inventory"); code != 2 || !strings.Contains(out, "--fingerprint") || !strings.Contains(out, "--insecure") {
		t.Errorf("unpinned: %d %s", code, out)
	}
	if code, out := ctl("--insecure", "inventory"); code != 0 || !strings.Contains(out, `"/dev/vda"`) {
		t.Errorf("--insecure: %d %s", code, out)
	}
	if code, out := ctl("--fingerprint", fp, "inventory"); code != 0 || !strings.Contains(out, `"/dev/vda"`) {
		t.Errorf("pinned: %d %s", code, out)
	}
	if code, out := ctl("--fingerprint", "00:11", "inventory"); code != 1 || !strings.Contains(out, "does not match the pinned") {
		t.Errorf("wrong pin: %d %s", code, out)
	}
}
