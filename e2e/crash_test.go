package e2e

import (
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/imprint-dev/imprint/agent"
	"github.com/imprint-dev/imprint/api"
	"github.com/imprint-dev/imprint/bootstrap/nodearchive"
	"github.com/imprint-dev/imprint/internal/vmtest"
	"github.com/imprint-dev/imprint/inventory"
)

// TestControllerProcessSIGKILL is the crash test without a VM: `imprint
// controller` as a process on SQLite, a fake agent (the agent's own
// callback client, an httptest agent API that checks the node's token),
// SIGKILL while the job runs, a restart on the same database and address;
// the result is accepted, the node flipped and rebooted, and its next
// network boot gets the local disk.
func TestControllerProcessSIGKILL(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "imprint")
	build := exec.Command("go", "build", "-o", bin, "github.com/imprint-dev/imprint/cmd/imprint")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	for _, n := range []string{"vmlinuz", "initramfs.cpio.gz"} {
		os.WriteFile(filepath.Join(dir, n), []byte(n), 0o644)
	}
	f, _ := os.Create(filepath.Join(dir, "root.img.gz"))
	zw := gzip.NewWriter(f)
	zw.Write([]byte("image"))
	zw.Close()
	f.Close()

	var mu sync.Mutex
	var nodeToken string
	provisions, reboots := 0, 0
	agentSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if nodeToken == "" || r.Header.Get("Authorization") != "Bearer "+nodeToken {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		switch r.URL.Path {
		case "/v1/provision":
			provisions++
			w.WriteHeader(http.StatusAccepted)
			json.NewEncoder(w).Encode(api.StartResponse{ID: "job-1", State: api.StatePending})
		case "/v1/reboot":
			reboots++
			w.WriteHeader(http.StatusAccepted)
		default:
			w.WriteHeader(http.StatusNotFound)
		}
	}))
	defer agentSrv.Close()

	port, err := vmtest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	const mac = "52:54:00:12:34:56"
	ctl := &ctlProcess{bin: bin, dir: dir, log: slog.New(slog.DiscardHandler), args: []string{"controller",
		"--listen", "127.0.0.1:" + strconv.Itoa(port), "--token", "op", "--db", "sqlite:" + filepath.Join(dir, "state.db"),
		"--kernel", filepath.Join(dir, "vmlinuz"), "--initrd", filepath.Join(dir, "initramfs.cpio.gz"),
		"--image", "/=" + filepath.Join(dir, "root.img.gz"), "--node", mac + "=n1,agent=" + agentSrv.URL}}
	ctx := context.Background()
	if err := ctl.start(ctx); err != nil {
		t.Fatal(err)
	}
	defer ctl.kill()
	get := func(path string) string {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	script := get("/ipxe?mac=" + mac)
	var nodeURL string
	for _, f := range strings.Fields(script) {
		if v, ok := strings.CutPrefix(f, "imprint.controller="); ok {
			nodeURL = v
		}
	}
	// The node's token is in its per-node initramfs, after the shared one.
	files, err := nodearchive.Read([]byte(strings.TrimPrefix(get("/boot/initramfs/"+mac), "initramfs.cpio.gz")))
	if err != nil {
		t.Fatalf("per-node initramfs: %v", err)
	}
	mu.Lock()
	nodeToken = strings.TrimSpace(string(files[nodearchive.TokenFile].Content))
	mu.Unlock()
	rep := &agent.CallbackClient{URL: nodeURL, Token: nodeToken, Backoff: 100 * time.Millisecond, MaxBackoff: 500 * time.Millisecond}
	inv := &inventory.Inventory{NICs: []inventory.NIC{{Name: "eth0", MAC: mac}},
		Disks: []inventory.Disk{{Name: "vda", Path: "/dev/vda", SizeBytes: 20 << 30}}}
	if err := rep.Discovery(ctx, api.Discovery{NodeID: "uuid", Listen: ":9999", Scheme: "http", Addresses: []string{"10.0.2.15"}, Inventory: inv}); err != nil {
		t.Fatal(err)
	}
	cl := &api.ControllerClient{URL: base, Token: "op"}
	waitPhase := func(phase string) {
		t.Helper()
		for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			n, err := cl.Node(ctx, mac)
			if err != nil {
				continue
			}
			for _, ev := range n.Events {
				if ev.Phase == phase {
					return
				}
				if ev.Phase == "failed" {
					t.Fatalf("node failed: %s", ev.Detail)
				}
			}
		}
		t.Fatalf("no %s event; controller output:\n%s", phase, ctl.tail(20))
	}
	waitPhase("provisioning")
	if err := ctl.kill(); err != nil {
		t.Fatal(err)
	}
	if err := ctl.start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := rep.Result(ctx, api.Status{ID: "job-1", State: api.StateSucceeded}); err != nil {
		t.Fatalf("result to the restarted controller: %v", err)
	}
	waitPhase("rebooting")
	if s := get("/ipxe?mac=" + mac); !strings.Contains(s, "sanboot") && !strings.Contains(s, "exit") || strings.Contains(s, "kernel ") {
		t.Errorf("the provisioned node's next boot:\n%s", s)
	}
	mu.Lock()
	defer mu.Unlock()
	if provisions != 1 || reboots != 1 {
		t.Errorf("%d provisions, %d reboots; want 1 each", provisions, reboots)
	}
}
