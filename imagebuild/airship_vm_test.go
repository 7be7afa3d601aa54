//go:build vm

package imagebuild_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/imprint-dev/imprint/internal/testenv"
	"github.com/imprint-dev/imprint/internal/vmtest"
)

// bootReport boots args under QEMU (TCG) until the guest powers off (the
// user-data's report unit does once cloud-init is done) and returns the
// report lines of the serial console.
func bootReport(t *testing.T, ctx context.Context, name string, args []string, timeout time.Duration) (map[string]string, string) {
	serial := filepath.Join(t.TempDir(), name+".serial")
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	argv := append([]string{"-accel", "tcg", "-m", "1536", "-smp", "1", "-display", "none", "-no-reboot", "-monitor", "none",
		"-serial", "file:" + serial, "-nic", "user,model=virtio-net-pci,mac=52:54:00:a1:50:01"}, args...)
	t0 := time.Now()
	out, err := exec.CommandContext(ctx, "qemu-system-x86_64", argv...).CombinedOutput()
	data, _ := os.ReadFile(serial)
	if err != nil || ctx.Err() != nil {
		t.Errorf("%s: qemu: %v %s (after %s); serial tail:\n%s", name, err, out, time.Since(t0).Round(time.Second), tailString(string(data), 5000))
		return nil, string(data)
	}
	rep := map[string]string{}
	in := false
	for _, l := range strings.Split(strings.ReplaceAll(string(data), "\r", ""), "\n") {
		switch {
		case strings.Contains(l, "IMPRINT-REPORT-BEGIN"):
			in = true
		case strings.Contains(l, "IMPRINT-REPORT-END"):
			in = false
		case in:
			k, v, _ := strings.Cut(strings.TrimSpace(l), " ")
			if strings.HasPrefix(k, "IMPRINT-") || k == "status:" {
				rep[k] = strings.TrimSpace(v)
			}
		}
	}
	t.Logf("%s: powered off after %s; report %q", name, time.Since(t0).Round(time.Second), rep)
	return rep, string(data)
}

func tailString(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// checkReport asserts what the user-data and network-config of
// testdata/airship must have done in the booted image.
func checkReport(t *testing.T, name, mode string, rep map[string]string, serial string) {
	t.Helper()
	if rep == nil {
		return
	}
	want := map[string]string{
		"status:":       "done",
		"IMPRINT-FILE":  "imprint build-image from an Airship ImageConfiguration",
		"IMPRINT-EFI":   mode,
		"IMPRINT-ROUTE": "default via 10.0.2.2 dev ens3",
	}
	for k, v := range want {
		if !strings.HasPrefix(rep[k], v) {
			t.Errorf("%s: %s = %q, want %q", name, k, rep[k], v)
		}
	}
	if !strings.HasPrefix(rep["IMPRINT-USER"], "airship:x:") || !strings.HasSuffix(rep["IMPRINT-USER"], ":/home/airship:/bin/bash") {
		t.Errorf("%s: user airship: %q", name, rep["IMPRINT-USER"])
	}
	// the network-config's static address, not the DHCP lease (10.0.2.15)
	if rep["IMPRINT-ADDR"] != "ens3 10.0.2.50/24" {
		t.Errorf("%s: addresses %q, want only the network-config's ens3 10.0.2.50/24", name, rep["IMPRINT-ADDR"])
	}
	// params.networking: the host name and /etc/hosts entry
	if rep["IMPRINT-HOST"] != "airship-node 10.0.2.2 gateway.airship.test gateway" {
		t.Errorf("%s: host %q", name, rep["IMPRINT-HOST"])
	}
	if !strings.Contains(serial, "Cloud-init v.") || !strings.Contains(serial, "finished at") {
		t.Errorf("%s: no cloud-init final message on the console", name)
	}
}

// TestVMAirshipISO builds testdata/airship/image-configuration.yaml (an
// ImageConfiguration, build-iso; or reuses the loop tier's cached build of
// it) and checks the ISO and the output metadata, then boots the one ISO
// as a CD under SeaBIOS and under OVMF at the same time: each must reach cloud-init done with the user-data's
// user and file, the network-config's static address and route, and the
// networking params' host name and hosts entry.
func TestVMAirshipISO(t *testing.T) {
	// the build (4-10 minutes, unless the loop tier's TestLoopAirshipISO
	// cached it) and two TCG boots side by side (3 minutes; 8 on a machine
	// loaded by other QEMUs): beyond the VM tier's budget
	if os.Getenv("IMPRINT_VM_SLOW") == "" {
		t.Skip("set IMPRINT_VM_SLOW=1 to build the Airship live ISO and boot it (BIOS and UEFI)")
	}
	testenv.RequireTool(t, "qemu-system-x86_64", "grub-mkrescue", "xorriso", "mksquashfs", "mformat")
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Minute)
	defer cancel()
	ab, _ := airshipBuild(t, ctx, "image-configuration.yaml", true)
	checkAirshipMetadata(t, ab, "live-boot", "less")
	checkISO(t, ab.Output, "AIRSHIP_LIVE")

	vars := filepath.Join(t.TempDir(), "OVMF_VARS.fd")
	uefi, err := vmtest.FirmwareArgs(vmtest.FirmwareUEFI, vars)
	if err != nil {
		testenv.Skipf(t, "%v", err)
	}
	cd := []string{"-drive", "file=" + ab.Output + ",media=cdrom,readonly=on,format=raw", "-boot", "d"}
	var wg sync.WaitGroup
	for _, m := range []struct {
		mode string
		args []string
	}{{"bios", cd}, {"uefi", append(append([]string(nil), uefi...), cd...)}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rep, serial := bootReport(t, ctx, m.mode, m.args, 20*time.Minute)
			checkReport(t, m.mode, m.mode, rep, serial)
		}()
	}
	wg.Wait()
}

// TestVMAirshipQcow builds testdata/airship/airship-image.yaml (the
// seed's AirshipImage CR, build-qcow, params.storage: a 256 MiB /boot and
// the root on a 3 GiB disk) and boots the qcow2 under SeaBIOS: cloud-init
// must reach done with the user-data's user and file and the
// network-config's address, on the partitions the storage params asked for.
func TestVMAirshipQcow(t *testing.T) {
	// a full default-package build plus a TCG boot: beyond the VM tier's budget
	if os.Getenv("IMPRINT_VM_SLOW") == "" {
		t.Skip("set IMPRINT_VM_SLOW=1 to build and boot the Airship build-qcow image")
	}
	testenv.RequireTool(t, "qemu-system-x86_64", "qemu-img")
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Minute)
	defer cancel()
	ab, _ := airshipBuild(t, ctx, "airship-image.yaml", true)
	checkAirshipMetadata(t, ab, "grub-pc", "less")
	info, err := exec.Command("qemu-img", "info", "--output=json", ab.Output).CombinedOutput()
	if err != nil || !strings.Contains(string(info), `"virtual-size": 3221225472`) || !strings.Contains(string(info), `"format": "qcow2"`) {
		t.Errorf("qemu-img info: %v\n%s", err, info)
	}
	rep, serial := bootReport(t, ctx, "qcow-bios", []string{"-drive", "file=" + ab.Output + ",if=virtio,format=qcow2,snapshot=on"}, 20*time.Minute)
	checkReport(t, "qcow-bios", "bios", rep, serial)
	if rep == nil {
		return
	}
	// lsblk -bno NAME,SIZE,FSTYPE,MOUNTPOINT /dev/vda, one device a ';'
	disk := map[string]string{}
	for _, l := range strings.Split(rep["IMPRINT-DISK"], ";") {
		if f := strings.Fields(l); len(f) >= 2 {
			disk[strings.TrimLeft(f[0], "`|-─└├")] = strings.Join(f[1:], " ")
		}
	}
	if disk["vda"] != "3221225472" || disk["vda1"] != "268435456 ext4 /boot" || !strings.HasSuffix(disk["vda2"], " ext4 /") {
		t.Errorf("disk layout %q: want vda 3 GiB, vda1 256 MiB ext4 /boot, vda2 ext4 /", rep["IMPRINT-DISK"])
	}
	// statfs's size leaves out ext4's journal (64 MiB: mke2fs sized it for the
	// builder's sparse 3 GiB scratch file) and inode tables; the block count
	// is checked exactly by TestLoopAirshipQcow (dumpe2fs)
	if n, _ := strconv.ParseInt(rep["IMPRINT-BOOTFS"], 10, 64); n < 160<<20 || n > 256<<20 {
		t.Errorf("/boot filesystem %q bytes (statfs): want the 256 MiB partition less ext4's overhead", rep["IMPRINT-BOOTFS"])
	}
}
