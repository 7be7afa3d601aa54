//go:build vm

package vmtest

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/imprint-dev/imprint/pxe"
)

// script is the node's current iPXE script, which the test flips.
type script struct {
	mu sync.Mutex
	s  string
}

func (sc *script) set(s string) { sc.mu.Lock(); sc.s = s; sc.mu.Unlock() }

func (sc *script) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	w.Write([]byte(sc.s))
}

// TestVMPXE network-boots the bootstrap with the script `imprint pxe`
// writes (iPXE over QEMU's TFTP, kernel and initramfs over HTTP), then
// flips the node to each local-disk script and boots the same disk again.
func TestVMPXE(t *testing.T) {
	im := Require(t)
	srv := NewHostServer(t)
	srv.File("/vmlinuz", im.Kernel)
	srv.File("/initramfs.cpio.gz", im.Initrd)
	current := &script{}
	srv.Handle("/boot.ipxe", current)
	tftp := t.TempDir()
	// The fixed TFTP boot file chains to the controller, which decides.
	chain := "#!ipxe\nchain " + srv.GuestURL("/boot.ipxe") + "\n"
	if err := os.WriteFile(filepath.Join(tftp, "chain.ipxe"), []byte(chain), 0o644); err != nil {
		t.Fatal(err)
	}
	nb := &NetBoot{TFTPDir: tftp, BootFile: "chain.ipxe"}
	token := "pxe-test-token"
	p := pxe.PXE{
		KernelURL: srv.GuestURL("/vmlinuz"), InitrdURL: srv.GuestURL("/initramfs.cpio.gz"),
		Token: token, Consoles: []string{"ttyS0"}, OnExit: "poweroff", Extra: []string{"panic=-1"},
	}
	boot, err := p.IPXEBoot()
	if err != nil {
		t.Fatal(err)
	}
	current.set(boot)

	vm := Start(t, Options{NetBoot: nb, Token: token, Disks: []Disk{{Size: 64 << 20, Serial: "PXE-DISK"}}})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := vm.Client.Healthz(ctx); err != nil {
		t.Fatalf("GET /healthz after PXE boot: %v", err)
	}
	vm.Stop()
	disk := vm.Disks[0]

	const marker = "IMPRINT-LOCAL-DISK-BOOTED"
	if err := WriteMarkerBootSector(disk, marker); err != nil {
		t.Fatal(err)
	}
	for _, mode := range []pxe.LocalBoot{pxe.LocalExit, pxe.LocalSanboot} {
		t.Run(string(mode), func(t *testing.T) {
			script, err := pxe.IPXELocal(mode)
			if err != nil {
				t.Fatal(err)
			}
			current.set(script)
			before := srv.Hits("/boot.ipxe")
			vm := Start(t, Options{NetBoot: nb, Ready: marker, BootTimeout: 90 * time.Second,
				Disks: []Disk{{Path: disk}}})
			vm.Stop()
			// The disk booted because iPXE ran the flipped script, not
			// because the chain failed and the firmware fell through.
			if n := srv.Hits("/boot.ipxe") - before; n != 1 {
				t.Errorf("boot.ipxe fetched %d times during the boot, want 1", n)
			}
		})
	}
}
