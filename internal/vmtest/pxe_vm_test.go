//go:build vm

package vmtest

import (
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/imprint-dev/imprint/bootstrap"
)

// pxeServer is the controller's HTTP side of a PXE boot: the ramdisk's
// files and the node's current iPXE script, which the test flips.
type pxeServer struct {
	mu     sync.Mutex
	script string
	hits   int // GET /boot.ipxe answered
	port   int
}

func (s *pxeServer) scriptHits() int { s.mu.Lock(); defer s.mu.Unlock(); return s.hits }

func (s *pxeServer) set(script string) { s.mu.Lock(); s.script = script; s.mu.Unlock() }

// guestURL is the server as the guest sees it (10.0.2.2 is the host's
// loopback in QEMU's user-mode network).
func (s *pxeServer) guestURL(p string) string { return "http://10.0.2.2:" + strconv.Itoa(s.port) + p }

func startPXEServer(t *testing.T, im Image) *pxeServer {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &pxeServer{port: l.Addr().(*net.TCPAddr).Port}
	mux := http.NewServeMux()
	mux.HandleFunc("/vmlinuz", func(w http.ResponseWriter, r *http.Request) { http.ServeFile(w, r, im.Kernel) })
	mux.HandleFunc("/initramfs.cpio.gz", func(w http.ResponseWriter, r *http.Request) { http.ServeFile(w, r, im.Initrd) })
	mux.HandleFunc("/boot.ipxe", func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.hits++
		w.Write([]byte(s.script))
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return s
}

// TestVMPXE network-boots the bootstrap with the script `imprint pxe`
// writes (iPXE over QEMU's TFTP, kernel and initramfs over HTTP), then
// flips the node to each local-disk script and boots the same disk again.
func TestVMPXE(t *testing.T) {
	im := Require(t)
	srv := startPXEServer(t, im)
	tftp := t.TempDir()
	// The fixed TFTP boot file chains to the controller, which decides.
	chain := "#!ipxe\nchain " + srv.guestURL("/boot.ipxe") + "\n"
	if err := os.WriteFile(filepath.Join(tftp, "chain.ipxe"), []byte(chain), 0o644); err != nil {
		t.Fatal(err)
	}
	nb := &NetBoot{TFTPDir: tftp, BootFile: "chain.ipxe"}
	token := "pxe-test-token"
	p := bootstrap.PXE{
		KernelURL: srv.guestURL("/vmlinuz"), InitrdURL: srv.guestURL("/initramfs.cpio.gz"),
		Token: token, Consoles: []string{"ttyS0"}, OnExit: "poweroff", Extra: []string{"panic=-1"},
	}
	boot, err := p.IPXEBoot()
	if err != nil {
		t.Fatal(err)
	}
	srv.set(boot)

	vm := Start(t, Options{NetBoot: nb, Token: token, Disks: []Disk{{Size: 64 << 20, Serial: "PXE-DISK"}}})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := vm.Client.Raw(ctx, "GET", "/healthz", nil); err != nil {
		t.Fatalf("GET /healthz after PXE boot: %v", err)
	}
	vm.Stop()
	disk := vm.Disks[0]

	const marker = "IMPRINT-LOCAL-DISK-BOOTED"
	if err := WriteMarkerBootSector(disk, marker); err != nil {
		t.Fatal(err)
	}
	for _, mode := range []bootstrap.LocalBoot{bootstrap.LocalExit, bootstrap.LocalSanboot} {
		t.Run(string(mode), func(t *testing.T) {
			script, err := bootstrap.IPXELocal(mode)
			if err != nil {
				t.Fatal(err)
			}
			srv.set(script)
			before := srv.scriptHits()
			vm := Start(t, Options{NetBoot: nb, Ready: marker, BootTimeout: 90 * time.Second,
				Disks: []Disk{{Path: disk}}})
			vm.Stop()
			// The disk booted because iPXE ran the flipped script, not
			// because the chain failed and the firmware fell through.
			if srv.scriptHits() != before+1 {
				t.Errorf("boot.ipxe fetched %d times during the boot, want 1", srv.scriptHits()-before)
			}
			t.Logf("console:\n%s", vm.Tail(12))
		})
	}
}
