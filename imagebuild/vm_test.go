//go:build vm

package imagebuild

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/imprint-dev/imprint/internal/logtest"
	"github.com/imprint-dev/imprint/internal/testenv"
)

// TestVMBootDiskImage builds the default image (minbase plus the default
// package set) as a whole-disk qcow2, grows the disk by 1 GiB and boots it
// under QEMU (TCG) with a NoCloud seed served over HTTP (SMBIOS serial
// ds=nocloud-net): grub, the kernel and the initramfs must bring up
// systemd, cloud-init must run the seed's runcmd, grow / to the bigger
// disk, and ssh must start with freshly made host keys.
func TestVMBootDiskImage(t *testing.T) {
	// A full debootstrap plus a TCG boot of the result: 10-15 minutes on two
	// cores, beyond the VM tier's budget; run it on purpose.
	if os.Getenv("IMPRINT_VM_SLOW") == "" {
		t.Skip("set IMPRINT_VM_SLOW=1 to build a whole-disk image and boot it (10-15 min)")
	}
	loopPrereqs(t)
	testenv.RequireTool(t, "qemu-system-x86_64", "qemu-img")
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Minute)
	defer cancel()
	out, work := t.TempDir(), t.TempDir()
	cfg := loopConfig(t, out)
	cfg.Packages, cfg.Repos[0].Priority = nil, nil
	bo := loopOptions(t, work)
	disk := filepath.Join(out, "disk.qcow2")
	bo.Options.DiskImage, bo.Options.DiskFormat = disk, "qcow2"
	log, _ := logtest.Capture(t)
	t0 := time.Now()
	res, err := Build(ctx, cfg, bo, SystemDeps(log))
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	t.Logf("default image with disk built in %s (root raw %d MiB)", time.Since(t0).Round(time.Second), res.Sums["/"].RawSize>>20)
	if b, err := exec.Command("qemu-img", "resize", disk, "+1G").CombinedOutput(); err != nil {
		t.Fatalf("qemu-img resize: %v %s", err, b)
	}

	// the NoCloud seed
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/meta-data", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "instance-id: imprint-vm-test\nlocal-hostname: imprint-vm\n")
	})
	mux.HandleFunc("/user-data", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "#cloud-config\nruncmd:\n  - [sh, -c, 'echo IMPRINT-RUNCMD root=$(df -m --output=size / | tail -1 | tr -d \" \")M host=$(hostname) > /dev/ttyS0']\n")
	})
	mux.HandleFunc("/vendor-data", func(w http.ResponseWriter, r *http.Request) {})
	srv := &http.Server{Handler: mux}
	go srv.Serve(ln)
	defer srv.Close()
	port := ln.Addr().(*net.TCPAddr).Port

	serial := filepath.Join(out, "serial.log")
	sf, err := os.Create(serial)
	if err != nil {
		t.Fatal(err)
	}
	defer sf.Close()
	qemu := exec.CommandContext(ctx, "qemu-system-x86_64", "-accel", "tcg", "-m", "1024", "-smp", "2",
		"-nographic", "-no-reboot", "-serial", "file:"+serial, "-monitor", "none",
		"-drive", "file="+disk+",if=virtio,format=qcow2",
		"-netdev", "user,id=n0", "-device", "virtio-net-pci,netdev=n0", "-device", "virtio-rng-pci",
		"-smbios", fmt.Sprintf("type=1,serial=ds=nocloud-net;s=http://10.0.2.2:%d/", port))
	qemu.Stdout, qemu.Stderr = sf, sf
	if err := qemu.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { qemu.Process.Kill(); qemu.Wait() }()
	boot := time.Now()
	want := map[string]bool{"IMPRINT-RUNCMD": false, "login:": false}
	var runcmd string
	deadline := time.Now().Add(10 * time.Minute)
	for time.Now().Before(deadline) {
		time.Sleep(2 * time.Second)
		data, _ := os.ReadFile(serial)
		sc := bufio.NewScanner(strings.NewReader(string(data)))
		for sc.Scan() {
			for k := range want {
				if strings.Contains(sc.Text(), k) {
					want[k] = true
					if k == "IMPRINT-RUNCMD" && !strings.Contains(sc.Text(), "echo") {
						runcmd = sc.Text()
					}
				}
			}
		}
		if want["IMPRINT-RUNCMD"] && want["login:"] && runcmd != "" {
			break
		}
	}
	data, _ := os.ReadFile(serial)
	if runcmd == "" || !want["login:"] {
		t.Fatalf("no login prompt or cloud-init runcmd within 10 min; serial tail:\n%s", tail(string(data), 4000))
	}
	t.Logf("booted to login and ran the seed in %s: %s", time.Since(boot).Round(time.Second), runcmd)
	if !strings.Contains(runcmd, "host=imprint-vm") {
		t.Errorf("cloud-init did not set the hostname: %s", runcmd)
	}
	var sizeMiB int
	if i := strings.Index(runcmd, "root="); i >= 0 {
		fmt.Sscanf(runcmd[i+5:], "%dM", &sizeMiB)
	}
	if min := int(res.Sums["/"].RawSize>>20) + 1800; sizeMiB < min {
		t.Errorf("root filesystem %d MiB after boot, want at least %d (grown into the extra 1 GiB disk space)", sizeMiB, min)
	}
	if strings.Contains(string(data), "Failed to start ssh.service") {
		t.Errorf("ssh failed to start:\n%s", tail(string(data), 3000))
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
