//go:build vm

package agent_test

import (
	"context"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/imprint-dev/imprint/internal/vmtest"
)

// realImageHost is the provisioned node's host name.
const realImageHost = "imprint-vm-1.domain.tld"

// realImageDoc is vmtest.FuelDoc for this node: one 3 GiB disk, /boot on
// a partition, an "os" VG holding root and swap, the configdrive; QEMU's
// default MAC, the serial console, a root key and the phone-home URL.
func realImageDoc(t *testing.T, rootURI, bootURI, authKey, phoneHome string) []byte {
	t.Helper()
	return vmtest.MarshalDoc(t, vmtest.FuelDoc(t, vmtest.FuelNode{Host: realImageHost, RootURI: rootURI, BootURI: bootURI,
		AuthKey: authKey, PhoneHome: phoneHome}))
}

// TestVMProvisionRealImage provisions the image `imprint build-image`
// makes (the default bookworm package set, built once and cached under
// build/target-images/) through the agent in the bootstrap VM, then boots
// the disk on its own: SeaBIOS, the grub the agent installed, Debian's
// kernel and initramfs (LVM root), systemd, cloud-init reading the
// configdrive. The node phones home to the host with the document's host
// name; over ssh with the document's key the OS shows the LVM layout,
// /etc/nailgun_systemtype and the key; from the host the disk has the
// document's GPT.
func TestVMProvisionRealImage(t *testing.T) {
	// e2e.TestVMEndToEnd runs this path (and PXE, the flip and
	// reprovisioning) in every VM tier; this one isolates the agent from
	// the controller, for when that test fails.
	if os.Getenv("IMPRINT_VM_SLOW") == "" {
		t.Skip("set IMPRINT_VM_SLOW=1 to provision a real image through the agent alone and boot it (about 15 min)")
	}
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	t0 := time.Now()
	ri := serveRealImage(t, log)
	t.Logf("phase image: %s (built: %v)", time.Since(t0).Round(time.Second), ri.Image.Built)

	ph, key, pub := ri.PhoneHome, ri.Key, ri.Pub
	doc := ri.Doc

	// 1. the bootstrap VM provisions the disk
	t1 := time.Now()
	vm := vmtest.Start(t, vmtest.Options{Disks: []vmtest.Disk{{Size: 3 << 30, Serial: "IMPRINT-VDA"}}, BootTimeout: 300 * time.Second})
	t.Logf("phase bootstrap boot: %s", time.Since(t1).Round(time.Second))
	c := vm.Client
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Minute)
	defer cancel()
	plan, err := c.Plan(ctx, doc)
	if err != nil {
		t.Fatalf("plan: %v", err)
	}
	if len(plan.LVs) != 2 || plan.Configdrive == "" || len(plan.Bootloader) != 1 || plan.Bootloader[0] != "/dev/vda" {
		t.Fatalf("plan: %+v", plan)
	}
	vm.ProvisionAndReboot(ctx, t, doc, 15*time.Minute)
	disk := vm.Disks[0]

	// 2. the disk from the host: the document's GPT
	parts, err := vmtest.Partitions(disk)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, p := range parts {
		probe, err := vmtest.Probe(disk, p.StartBytes)
		if err != nil {
			t.Fatal(err)
		}
		kinds = append(kinds, probe["TYPE"])
		if probe["TYPE"] == "vfat" && !strings.EqualFold(probe["LABEL"], "config-2") {
			t.Errorf("partition %d: vfat labelled %q, want the config-2 drive", p.Number, probe["LABEL"])
		}
		t.Logf("partition %d: %d MiB at %d MiB, type %s, %v", p.Number, p.SizeBytes>>20, p.StartBytes>>20, p.Type, probe)
	}
	// bios_grub, the UEFI placeholder, /boot, the PV of os, the configdrive
	if got := strings.Join(kinds, ","); got != ",,ext2,LVM2_member,vfat" {
		t.Errorf("partitions hold %q, want bios_grub, UEFI placeholder, /boot ext2, an LVM PV, the config-2 drive", got)
	}
	if len(parts) == 5 && !strings.EqualFold(parts[3].Type, "E6D6D379-F507-44C2-A23C-238F2A3DF928") {
		t.Errorf("PV partition type %s, want Linux LVM", parts[3].Type)
	}

	// 3. the disk boots on its own: grub, the kernel, systemd, cloud-init
	t3 := time.Now()
	node := vmtest.BootDisk(t, disk, 240*time.Second)
	t.Logf("phase grub to kernel: %s", time.Since(t3).Round(time.Second))
	form, err := node.WaitPhoneHome(ph, 12*time.Minute) // ~7 min on two loaded cores
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("phase kernel to phone-home: %s (disk boot to phone-home %s); phone-home %v", time.Since(t3)-node.BootTime,
		time.Since(t3).Round(time.Second), form)
	if got := form.Get("fqdn"); got != realImageHost {
		t.Errorf("phone-home fqdn %q, want %q", got, realImageHost)
	}
	if got := form.Get("hostname"); got != "imprint-vm-1" {
		t.Errorf("phone-home hostname %q, want imprint-vm-1", got)
	}

	// 4. inside the OS, logged in with the document's key
	var out string
	for deadline := time.Now().Add(2 * time.Minute); ; {
		sctx, scancel := context.WithTimeout(ctx, 60*time.Second)
		out, err = node.SSH(sctx, key, "hostname; cat /etc/nailgun_systemtype; echo; "+
			"lvs --noheadings --units m --nosuffix -o vg_name,lv_name,lv_size; findmnt -n -o SOURCE /; "+
			"findmnt -n -o SOURCE /boot; swapon --show=NAME --noheadings; cat /root/.ssh/authorized_keys")
		scancel()
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Second)
	}
	if err != nil {
		t.Fatalf("ssh as root with the document's auth_key: %v\n%s", err, node.Tail(40))
	}
	t.Logf("the provisioned OS:\n%s", out)
	lines := strings.Split(out, "\n")
	if len(lines) < 2 || strings.TrimSpace(lines[0]) != "imprint-vm-1" || strings.TrimSpace(lines[1]) != "target" {
		t.Errorf("hostname and /etc/nailgun_systemtype: %q", lines)
	}
	lvs := map[string]string{}
	for _, l := range lines {
		if f := strings.Fields(l); len(f) == 3 && f[0] == "os" {
			lvs[f[1]] = f[2]
		}
	}
	if lvs["root"] != "2048.00" || lvs["swap"] != "192.00" {
		t.Errorf("LVs in the OS: %v, want os/root 2048 MiB and os/swap 192 MiB", lvs)
	}
	for _, want := range []string{"/dev/mapper/os-root\n", "/dev/vda3\n", pub} {
		if !strings.Contains(out, want) {
			t.Errorf("the OS's state lacks %q", want)
		}
	}
	if !strings.Contains(out, "/dev/dm-") && !strings.Contains(out, "os-swap") {
		t.Errorf("no swap on the os/swap LV in use")
	}
	t.Logf("total: %s", time.Since(t0).Round(time.Second))
}

// testWriter sends log lines to t.Log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// realImage is what the real-image tests serve their bootstrap VM: the
// target image `make image` built, a phone-home endpoint and a fresh SSH
// key; Doc is realImageDoc pointing at them.
type realImage struct {
	Image     vmtest.TargetImage
	Srv       *vmtest.HostServer
	PhoneHome *vmtest.PhoneHome
	Key       string // the private key whose public half is in Doc
	Pub       string
	Doc       []byte
}

func serveRealImage(t *testing.T, log *slog.Logger) realImage {
	t.Helper()
	ti := vmtest.RequireTargetImage(t, log)
	srv := vmtest.NewHostServer(t)
	srv.File("/images/root.img.gz", ti.Root)
	srv.File("/images/boot.img.gz", ti.Boot)
	srv.File("/images/imprint-target.yaml", ti.Metadata)
	ph := srv.PhoneHome("/phone-home")
	key, pub, err := vmtest.NewSSHKey(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	doc := realImageDoc(t, srv.GuestURL("/images/root.img.gz"), srv.GuestURL("/images/boot.img.gz"), pub, srv.GuestURL("/phone-home"))
	return realImage{Image: ti, Srv: srv, PhoneHome: ph, Key: key, Pub: pub, Doc: doc}
}
