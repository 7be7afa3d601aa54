//go:build vm

package inventory_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/imprint-dev/imprint/api"
	"github.com/imprint-dev/imprint/internal/vmtest"
	"github.com/imprint-dev/imprint/inventory"
)

// TestVMInventoryNaming boots the bootstrap ramdisk (its real Debian kernel,
// not a fixture) with an NVMe namespace, two virtio-scsi disks and a
// virtio-blk disk at fixed PCI addresses, and checks the names the agent's
// /v1/inventory computes from the guest's sysfs. It is the check that the
// hand-built fixtures' layouts are the kernel's (vmtest.Options only
// attaches virtio-blk, so this test starts QEMU itself).
func TestVMInventoryNaming(t *testing.T) {
	im := vmtest.Require(t)
	dir := t.TempDir()
	img := func(name string) string {
		p := filepath.Join(dir, name)
		f, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := f.Truncate(256 << 20); err != nil {
			t.Fatal(err)
		}
		f.Close()
		return p
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	tok := make([]byte, 16)
	rand.Read(tok)
	token := hex.EncodeToString(tok)

	cmdline := "console=ttyS0 panic=-1 imprint.token=" + token + " imprint.on_exit=poweroff"
	args := []string{
		"-accel", "tcg", "-smp", "2", "-m", "1024", "-nodefaults", "-display", "none", "-serial", "stdio", "-no-reboot",
		"-kernel", im.Kernel, "-initrd", im.Initrd, "-append", cmdline,
		"-device", "virtio-rng-pci",
		"-netdev", fmt.Sprintf("user,id=n0,hostfwd=tcp:127.0.0.1:%d-:%d", port, vmtest.AgentPort),
		"-device", "virtio-net-pci,netdev=n0",
		"-drive", "file=" + img("nvme.img") + ",if=none,id=nv0,format=raw",
		"-device", "nvme,id=nvme0,serial=IMPRINTNVME01,addr=0x10",
		"-device", "nvme-ns,drive=nv0,bus=nvme0,nsid=1",
		"-device", "virtio-scsi-pci,id=scsi0,addr=0x11",
		"-drive", "file=" + img("s0.img") + ",if=none,id=s0,format=raw",
		"-device", "scsi-hd,drive=s0,bus=scsi0.0,channel=0,scsi-id=0,lun=0,serial=IMPRINTSCSI01,wwn=0x5000c50015ea71ad",
		"-drive", "file=" + img("s1.img") + ",if=none,id=s1,format=raw",
		"-device", "scsi-hd,drive=s1,bus=scsi0.0,channel=0,scsi-id=1,lun=0,serial=IMPRINTSCSI02",
		"-drive", "file=" + img("vd.img") + ",if=none,id=v0,format=raw",
		"-device", "virtio-blk-pci,drive=v0,serial=IMPRINTVDA,addr=0x12",
	}
	cmd := exec.Command(vmtest.QEMU, args...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	serial, err := os.Create(filepath.Join(dir, "serial.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer serial.Close()
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", vmtest.QEMU, err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
	})
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		once := false
		for sc.Scan() {
			fmt.Fprintln(serial, sc.Text())
			if !once && strings.Contains(sc.Text(), "imprint agent ready") {
				once = true
				close(ready)
			}
		}
	}()
	tail := func() string {
		b, _ := os.ReadFile(serial.Name())
		lines := strings.Split(string(b), "\n")
		return strings.Join(lines[max(0, len(lines)-40):], "\n")
	}
	select {
	case <-ready:
	case <-exited:
		t.Fatalf("qemu exited before the agent was ready:\n%s", tail())
	case <-time.After(240 * time.Second):
		t.Fatalf("agent not ready after 240s:\n%s", tail())
	}

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c := &api.Client{URL: "http://127.0.0.1:" + strconv.Itoa(port), Token: token, HTTP: &http.Client{Timeout: 60 * time.Second}}
	var inv *inventory.Inventory
	// The SCSI disks appear once sd_mod has bound; give coldplug a moment.
	for attempt := 0; ; attempt++ {
		inv, err = c.Inventory(ctx)
		if err == nil && len(inv.Disks) >= 4 || attempt == 20 {
			break
		}
		time.Sleep(time.Second)
	}
	if err != nil {
		t.Fatalf("GET /v1/inventory: %v\n%s", err, tail())
	}
	type names struct {
		Bus, Model, Serial, WWN string
		ByID, ByPath            []string
	}
	got := map[string]names{}
	for _, d := range inv.Disks {
		got[d.Serial] = names{d.Bus, d.Model, d.Serial, d.WWN, d.ByID, d.ByPath}
		t.Logf("%s: %+v", d.Name, got[d.Serial])
	}
	// QEMU 7.2's namespace reports no NGUID/EUI-64 to this kernel, so its
	// wwid is the fallback nvme.<vid>-<hex serial>-<hex model>-<nsid>.
	const wwid = "nvme.1b36-494d5052494e544e564d453031-51454d55204e564d65204374726c-00000001"
	want := map[string]names{
		"IMPRINTNVME01": {Bus: "nvme", Model: "QEMU NVMe Ctrl", Serial: "IMPRINTNVME01", WWN: wwid,
			ByID: []string{
				"/dev/disk/by-id/nvme-QEMU_NVMe_Ctrl_IMPRINTNVME01",
				"/dev/disk/by-id/nvme-QEMU_NVMe_Ctrl_IMPRINTNVME01_1",
				"/dev/disk/by-id/nvme-" + wwid,
			},
			ByPath: []string{"/dev/disk/by-path/pci-0000:00:10.0-nvme-1"}},
		"IMPRINTSCSI01": {Bus: "scsi", Model: "QEMU HARDDISK", Serial: "IMPRINTSCSI01", WWN: "0x5000c50015ea71ad",
			ByID:   []string{"/dev/disk/by-id/scsi-35000c50015ea71ad", "/dev/disk/by-id/wwn-0x5000c50015ea71ad"},
			ByPath: []string{"/dev/disk/by-path/pci-0000:00:11.0-scsi-0:0:0:0"}},
		"IMPRINTSCSI02": {Bus: "scsi", Model: "QEMU HARDDISK", Serial: "IMPRINTSCSI02",
			ByID:   []string{"/dev/disk/by-id/scsi-0QEMU_QEMU_HARDDISK_IMPRINTSCSI02"},
			ByPath: []string{"/dev/disk/by-path/pci-0000:00:11.0-scsi-0:0:1:0"}},
		"IMPRINTVDA": {Bus: "virtio", Serial: "IMPRINTVDA",
			ByID:   []string{"/dev/disk/by-id/virtio-IMPRINTVDA"},
			ByPath: []string{"/dev/disk/by-path/pci-0000:00:12.0", "/dev/disk/by-path/virtio-pci-0000:00:12.0"}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("guest inventory names (-want +got):\n%s", diff)
	}
}
