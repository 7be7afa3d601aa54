//go:build vm

package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/imprint-dev/imprint/imagebuild"
	"github.com/imprint-dev/imprint/internal/testenv"
)

// TestVMOctaviaAmphoraBoot builds the amphora image as `imprint
// build-image -r PASSWORD -s 2` with the element-test elements
// (element-deps, ELEMENTS_PATH, environment.d, root.d, first-boot.d),
// checks the qcow2 offline (size, partition mounted at its offset, kernel,
// packages, root's password set, the elements' order; get-kernel reads
// the qcow2), then boots it under QEMU (TCG) with a NoCloud seed over
// HTTP: cloud-init must finish, haproxy must run and answer on its health
// endpoint, and the first-boot.d hook must have run on this first boot.
func TestVMOctaviaAmphoraBoot(t *testing.T) {
	// one image build (about 6 min) and a TCG boot (3-6 min): beyond the
	// VM tier's budget; run on purpose
	if os.Getenv("IMPRINT_VM_SLOW") == "" {
		t.Skip("set IMPRINT_VM_SLOW=1 to build the amphora image and boot it (10-15 min)")
	}
	octaviaPrereqs(t)
	testenv.RequireTool(t, "qemu-system-x86_64")
	dir := t.TempDir()
	t.Chdir(dir)
	home := octaviaHome(t)
	t.Setenv("HOME", home)
	for _, v := range []string{"DIB_DISTRIBUTION_MIRROR", "DIB_ELEMENTS", "DIB_RELEASE"} {
		t.Setenv(v, "")
	}
	wantOrder := testElements(t, filepath.Join(home, ".cache", "image-create"))
	t0 := time.Now()
	code, _, errs := runCmd(t, "", "imprint", "build-image", "-r", "amphora-test-pw", "-s", "2", "-o", "lb")
	if code != 0 {
		t.Fatalf("imprint build-image: exit %d\n%s", code, lastBytes(errs, 6000))
	}
	t.Logf("imprint build-image -r -s 2 with elements took %s", time.Since(t0).Round(time.Second))
	disk := filepath.Join(dir, "lb.qcow2")
	if size, format := qcow2VirtualSize(t, disk); format != "qcow2" || size != 2<<30 {
		t.Errorf("%s: %s of %d bytes, want qcow2 of 2 GiB (-s 2)", disk, format, size)
	}
	m := mountFirstPartition(t, disk, "qcow2")
	packages := append(append(imagebuild.DefaultPackages(imagebuild.KernelCloud), imagebuild.AmphoraPackages...), "haproxy")
	checkAmphoraTree(t, m.Dir, packages, true)
	checkElementsTree(t, m.Dir, wantOrder)
	kdir := filepath.Join(t.TempDir(), "kernel", "out")
	if code, _, errs := runCmd(t, "", "imprint", "get-kernel", "-o", kdir, disk); code != 0 {
		t.Fatalf("get-kernel %s: exit %d %s", disk, code, errs)
	}
	ks, _ := filepath.Glob(filepath.Join(m.Dir, "boot", "vmlinuz-*"))
	want, _ := os.ReadFile(ks[0])
	if got, _ := os.ReadFile(filepath.Join(kdir, "lb-vmlinuz")); len(want) == 0 || !bytes.Equal(got, want) {
		t.Errorf("get-kernel on the qcow2: vmlinuz of %d bytes, the image's has %d", len(got), len(want))
	}

	// boot it, with a NoCloud seed over HTTP
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/meta-data", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "instance-id: amphora-vm-test\nlocal-hostname: amphora\n")
	})
	mux.HandleFunc("/user-data", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `#cloud-config
runcmd:
  - - bash
    - -c
    - |
      for i in $(seq 120); do test -e /var/lib/imprint/first-boot.done && break; sleep 1; done
      h=$(exec 3<>/dev/tcp/127.0.0.1/8404 && printf 'GET / HTTP/1.0\r\n\r\n' >&3 && cat <&3 | tail -1)
      echo "IMPRINT-STATUS haproxy=$(systemctl is-active haproxy) health=[$h] firstboot=[$(cat /var/lib/imprint-first-boot-marker)] done=$(test -e /var/lib/imprint/first-boot.done && echo yes) boot=$(cat /proc/sys/kernel/random/boot_id)" > /dev/ttyS0
`)
	})
	mux.HandleFunc("/vendor-data", func(w http.ResponseWriter, r *http.Request) {})
	srv := &http.Server{Handler: mux}
	go srv.Serve(ln)
	defer srv.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	serial := filepath.Join(dir, "serial.log")
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
	statusRe := regexp.MustCompile(`IMPRINT-STATUS haproxy=(\S+) health=\[([^\]]*)\] firstboot=\[([^\]]*)\] done=(\S*) boot=(\S+)`)
	finishedRe := regexp.MustCompile(`Cloud-init v\. \S+ finished at`)
	var status []string
	var log string
	for time.Since(boot) < 12*time.Minute {
		time.Sleep(3 * time.Second)
		data, _ := os.ReadFile(serial)
		log = string(data)
		status = statusRe.FindStringSubmatch(log)
		if status != nil && finishedRe.MatchString(log) {
			break
		}
	}
	if status == nil || !finishedRe.MatchString(log) {
		t.Fatalf("no IMPRINT-STATUS line or cloud-init final message within 12 min; serial tail:\n%s", lastBytes(log, 5000))
	}
	t.Logf("booted, cloud-init done in %s: %s", time.Since(boot).Round(time.Second), status[0])
	if status[1] != "active" {
		t.Errorf("haproxy is %q, want active", status[1])
	}
	if status[2] != "amphora haproxy ok" {
		t.Errorf("haproxy health endpoint answered %q", status[2])
	}
	if status[4] != "yes" || status[3] != "first-boot ran "+status[5] {
		t.Errorf("first-boot.d: marker %q done=%q, want it written during this boot (%s)", status[3], status[4], status[5])
	}
	if !strings.Contains(log, "IMPRINT-FIRST-BOOT-HOOK ran") {
		t.Errorf("the first-boot.d hook's console line is missing")
	}
}
