//go:build !imprint_ramdisk

package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/imprint-dev/imprint/bootstrap/nodearchive"
	"github.com/imprint-dev/imprint/controller"
	"github.com/imprint-dev/imprint/internal/logtest"
	"github.com/imprint-dev/imprint/pxe"
)

func controllerFiles(t *testing.T) (dir string, args []string) {
	dir = t.TempDir()
	for _, n := range []string{"vmlinuz", "initramfs.cpio.gz"} {
		os.WriteFile(filepath.Join(dir, n), []byte(n), 0o644)
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte("image"))
	zw.Close()
	os.WriteFile(filepath.Join(dir, "root.img.gz"), gz.Bytes(), 0o644)
	os.WriteFile(filepath.Join(dir, "keys.pub"), []byte("# root keys\nssh-ed25519 AAAAkey1 a@b\n\nssh-rsa AAAAkey2 c@d\n"), 0o644)
	return dir, []string{"--kernel", filepath.Join(dir, "vmlinuz"), "--initrd", filepath.Join(dir, "initramfs.cpio.gz")}
}

func TestControllerFlags(t *testing.T) {
	dir, base := controllerFiles(t)
	args := append(base, "--listen", "127.0.0.1:0", "--guest-url", "http://10.0.2.2", "--token", "tok",
		"--image", "/="+filepath.Join(dir, "root.img.gz")+":xfs", "--image", "/boot="+filepath.Join(dir, "root.img.gz"),
		"--node", "52:54:00:AA:BB:CC=node-1.lab", "--node", "52:54:00:00:00:02=node-2,agent=http://127.0.0.1:10022,ip=10.0.2.20,group=rack7",
		"--image-url", "http://nginx-a/img", "--image-url", "http://nginx-b", "--group-image-url", "rack7=http://rack7-cache", "--max-transfers", "8",
		"--ssh-key", filepath.Join(dir, "keys.pub"), "--local-boot", "sanboot", "--cmdline", "console=ttyS0 imprint.log_format=text",
		"--network", "192.168.50.0/24", "--gateway", "192.168.50.1", "--dns", "192.168.50.1, 192.168.50.2")
	var stderr bytes.Buffer
	f, code, ok := parseControllerFlags(args, &stderr)
	if !ok {
		t.Fatalf("parse failed (%d): %s", code, stderr.String())
	}
	keys := []string{"ssh-ed25519 AAAAkey1 a@b", "ssh-rsa AAAAkey2 c@d"}
	cmdline := []string{"console=ttyS0", "imprint.log_format=text"}
	want := controller.Config{
		Listen: "127.0.0.1:0", GuestURL: "http://10.0.2.2", Token: "tok",
		Kernel: filepath.Join(dir, "vmlinuz"), Initrd: filepath.Join(dir, "initramfs.cpio.gz"),
		Images: []controller.Image{{MountPoint: "/", Path: filepath.Join(dir, "root.img.gz"), Format: "xfs"}, {MountPoint: "/boot", Path: filepath.Join(dir, "root.img.gz")}},
		Nodes: []controller.Node{
			{MAC: "52:54:00:AA:BB:CC", Hostname: "node-1.lab", SSHKeys: keys, Cmdline: cmdline},
			{MAC: "52:54:00:00:00:02", Hostname: "node-2", SSHKeys: keys, Cmdline: cmdline, AgentURL: "http://127.0.0.1:10022", IP: "10.0.2.20", Group: "rack7"},
		},
		LocalBoot:      pxe.LocalSanboot,
		LeaseTTL:       30 * time.Second,
		ImageURLs:      []string{"http://nginx-a/img", "http://nginx-b"},
		GroupImageURLs: map[string][]string{"rack7": {"http://rack7-cache"}},
		MaxTransfers:   8,
		TransferWait:   controller.DefaultTransferWait,
		PowerTimeout:   2 * time.Minute,
		Network: controller.Network{Prefix: netip.MustParsePrefix("192.168.50.0/24"), Gateway: netip.MustParseAddr("192.168.50.1"),
			NameServers: []netip.Addr{netip.MustParseAddr("192.168.50.1"), netip.MustParseAddr("192.168.50.2")}},
	}
	if diff := cmp.Diff(want, f.cfg, cmpopts.IgnoreFields(controller.Config{}, "OnEvent", "Now", "Power", "Logger"),
		cmp.Comparer(func(a, b netip.Addr) bool { return a == b }), cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); diff != "" {
		t.Errorf("config (-want +got):\n%s", diff)
	}
	if f.db != "sqlite:"+defaultDB {
		t.Errorf("default --db %q", f.db)
	}

	// Without --token a random one is made.
	f, _, ok = parseControllerFlags(append(base, "--image", "/="+filepath.Join(dir, "root.img.gz"), "--node", "52:54:00:aa:bb:cc=n"), &stderr)
	if !ok || !regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(f.cfg.Token) {
		t.Errorf("generated token %q (ok %v)", f.cfg.Token, ok)
	}
}

func TestControllerFlagErrors(t *testing.T) {
	dir, base := controllerFiles(t)
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--image", "root.img"}, `--image "root.img": want MOUNT=PATH[:FORMAT]`},
		{[]string{"--image", "/=" + dir + "/root.img.gz:btrfs"}, `format "btrfs"`},
		{[]string{"--node", "52:54:00:aa:bb:cc"}, "want MAC=HOSTNAME"},
		{[]string{"--node", "52:54:00:aa:bb:cc=n,power=ipmi"}, `unknown option "power"`},
		{[]string{"--ssh-key", dir + "/missing.pub"}, "--ssh-key: open"},
		{[]string{"--local-boot", "pxe"}, `--local-boot "pxe": want exit or sanboot`},
		{[]string{"--network", "10.0.2.0"}, "--network:"},
		{[]string{"--log-format", "xml"}, "--log-format"},
		{[]string{"stray"}, `unexpected argument "stray"`},
		{[]string{"--db", "mysql://x"}, `--db "mysql://x": want sqlite:PATH or postgres://`},
	}
	for _, tt := range tests {
		var stderr bytes.Buffer
		_, code, ok := parseControllerFlags(append(append([]string{}, base...), tt.args...), &stderr)
		if ok || code != 2 || !strings.Contains(stderr.String(), tt.want) {
			t.Errorf("%v: ok %v code %d, stderr %q, want %q", tt.args, ok, code, stderr.String(), tt.want)
		}
	}
	// The controller's own validation runs in runController: exit 2 with
	// the field named.
	var out, stderr bytes.Buffer
	rc := runController(context.Background(), &cmdEnv{stdout: &out, stderr: &stderr}, append(base, "--db", "sqlite:"+filepath.Join(dir, "c.db"), "--node", "52:54:00:aa:bb:cc=bad_name"))
	if rc != 2 || !strings.Contains(stderr.String(), "nodes[0].hostname") || !strings.Contains(stderr.String(), "images: an image for / is required") {
		t.Errorf("rc %d, stderr %q", rc, stderr.String())
	}
}

// TestControllerCommandServes runs the command, fetches a node's iPXE script
// and sees the event printed.
func TestControllerCommandServes(t *testing.T) {
	dir, base := controllerFiles(t)
	ctx, cancel := context.WithCancel(context.Background())
	var stdout, stderr logtest.Buffer
	done := make(chan int)
	go func() {
		done <- runController(ctx, &cmdEnv{stdout: &stdout, stderr: &stderr}, append(base, "--listen", "127.0.0.1:0", "--token", "tok", "--db", "sqlite:"+filepath.Join(dir, "state", "c.db"),
			"--image", "/="+filepath.Join(dir, "root.img.gz"), "--node", "52:54:00:aa:bb:cc=node-1"))
	}()
	re := regexp.MustCompile(`controller on (http://127\.0\.0\.1:\d+);`)
	var url string
	for deadline := time.Now().Add(10 * time.Second); url == "" && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if m := re.FindStringSubmatch(stdout.String()); m != nil {
			url = m[1]
		}
	}
	if url == "" {
		cancel()
		t.Fatalf("no URL printed; stdout %q stderr %q", stdout.String(), stderr.String())
	}
	resp, err := http.Get(url + "/ipxe?mac=52:54:00:aa:bb:cc")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	// No token at all on the script's kernel command line: the node's own
	// is in its per-node initramfs, which the script names.
	if !regexp.MustCompile(`imprint\.controller=`+regexp.QuoteMeta(url)+`/agent/52:54:00:aa:bb:cc `).Match(b) || strings.Contains(string(b), "tok") ||
		!strings.Contains(string(b), "initrd --name initrd.img "+url+"/boot/initramfs/52-54-00-aa-bb-cc\n") {
		t.Errorf("iPXE script (want the node's per-node initramfs, no token):\n%s", b)
	}
	resp, err = http.Get(url + "/boot/initramfs/52-54-00-aa-bb-cc")
	if err != nil {
		t.Fatal(err)
	}
	initrd, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	files, err := nodearchive.Read(initrd[len("initramfs.cpio.gz"):])
	if tok := strings.TrimSpace(string(files[nodearchive.TokenFile].Content)); err != nil || !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(tok) {
		t.Errorf("per-node initramfs (%d): token %q, %v; want the node's own", resp.StatusCode, tok, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "state", "c.db")); err != nil {
		t.Errorf("--db file: %v", err)
	}
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(stdout.String(), "pxe-bootstrap") && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(stdout.String(), "52:54:00:aa:bb:cc  round 1  pxe-bootstrap") {
		t.Errorf("event not printed; stdout:\n%s", stdout.String())
	}
	cancel()
	if rc := <-done; rc != 0 {
		t.Errorf("rc = %d, stderr %s", rc, stderr.String())
	}
}

// TestPrintEventEscapes: what a node reports (its phone-home host name,
// its agent's error messages) reaches the operator's terminal escaped.
func TestPrintEventEscapes(t *testing.T) {
	var out bytes.Buffer
	start := time.Now()
	printEvent(&out, start, controller.Event{Time: start, MAC: "52:54:00:aa:bb:cc", Round: 1, Phase: controller.PhaseFailed,
		Detail: "job x failed: step images: \x1b]0;owned\x07\x1b[2J\rfake\u202eevil\xff"})
	got := out.String()
	if strings.ContainsAny(strings.TrimSuffix(got, "\n"), "\x1b\x07\r\n\u202e") || strings.IndexByte(got, 0xff) >= 0 {
		t.Errorf("raw control characters printed: %q", got)
	}
	if !strings.Contains(got, `\x1b]0;owned\x07\x1b[2J\x0dfake\u202eevil\xff`) {
		t.Errorf("escaped detail not shown: %q", got)
	}
}
