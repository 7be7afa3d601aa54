package vmtest

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/imprint-dev/imprint/internal/testenv"
)

// The console watcher copies everything to the log and reports marker
// lines even when QEMU's writes split them.
func TestLineWatcher(t *testing.T) {
	p := filepath.Join(t.TempDir(), "serial.log")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	lw := newLineWatcher(f, readyMarker)
	input := "[    1.0] Run /init as init process\r\n" +
		`{"msg":"imprint agent ready","addr":"[::]:9999"}` + "\n" +
		"[    5.6] Kernel panic - not syncing: VFS\n" +
		"time=... level=ERROR msg=\"imprint agent exited\" err=\"exit status 2\"\n"
	for _, chunk := range []string{input[:20], input[20:45], input[45:]} {
		if _, err := lw.Write([]byte(chunk)); err != nil {
			t.Fatal(err)
		}
	}
	f.Close()
	close(lw.events)
	var got []string
	for ev := range lw.events {
		got = append(got, ev.kind)
	}
	want := []string{readyMarker, panicMarker, "imprint agent exited"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
	b, _ := os.ReadFile(p)
	if string(b) != input {
		t.Errorf("log = %q, want the whole console", b)
	}
}

func TestTail(t *testing.T) {
	if got := TailLines("a\nb\nc\nd\n", 2); got != "c\nd" {
		t.Errorf("tail = %q", got)
	}
	if got := TailLines("a", 5); got != "a" {
		t.Errorf("tail = %q", got)
	}
}

func TestQEMUArgs(t *testing.T) {
	vm := &VM{Dir: t.TempDir(), Token: "tok", Image: Image{Kernel: "/k", Initrd: "/i"},
		opts: Options{CPUs: 2, MemoryMiB: 1024, Cmdline: []string{"x=y"}, Disks: []Disk{{Size: 1 << 20, Serial: "S1"}, {Size: 2 << 20}}}}
	args, err := vm.qemuArgs()
	if err != nil {
		t.Fatal(err)
	}
	s := strings.Join(args, " ")
	for _, want := range []string{"-accel tcg", "-no-reboot", "-device virtio-rng-pci",
		"-append console=ttyS0 panic=-1 imprint.token=tok imprint.on_exit=poweroff x=y",
		"id=d0,format=raw -device virtio-blk-pci,drive=d0,serial=S1", "-device virtio-blk-pci,drive=d1 ",
		"hostfwd=tcp:127.0.0.1:"} {
		if !strings.Contains(s+" ", want) {
			t.Errorf("qemu args lack %q:\n%s", want, s)
		}
	}
	for i, size := range []int64{1 << 20, 2 << 20} {
		st, err := os.Stat(vm.Disks[i])
		if err != nil || st.Size() != size {
			t.Errorf("disk %d: %v, size %v; want %d", i, err, st, size)
		}
	}
	vm = &VM{Dir: t.TempDir(), Token: "tok", Image: Image{Kernel: "/k", Initrd: "/i"},
		opts: Options{Disks: []Disk{{Size: 1 << 20, Bus: BusSCSI, Serial: "S0"}, {Size: 1 << 20}, {Size: 1 << 20, Bus: BusSCSI}}}}
	if args, err = vm.qemuArgs(); err != nil {
		t.Fatal(err)
	}
	s = strings.Join(args, " ")
	for _, want := range []string{"-device virtio-scsi-pci,id=scsi0 -drive", "-device scsi-hd,drive=d0,bus=scsi0.0,channel=0,scsi-id=0,lun=0,serial=S0",
		"-device virtio-blk-pci,drive=d1 ", "-device scsi-hd,drive=d2,bus=scsi0.0,channel=0,scsi-id=1,lun=0 "} {
		if !strings.Contains(s+" ", want) {
			t.Errorf("scsi qemu args lack %q:\n%s", want, s)
		}
	}
	if strings.Count(s, "virtio-scsi-pci") != 1 {
		t.Errorf("want one virtio-scsi controller:\n%s", s)
	}
	bad := &VM{Dir: t.TempDir(), opts: Options{Disks: []Disk{{Size: 1, Serial: "a,b"}}}}
	if _, err := bad.qemuArgs(); err == nil || !strings.Contains(err.Error(), "serial") {
		t.Errorf("serial with a comma: error = %v", err)
	}
}

func TestQEMUArgsDiskBoot(t *testing.T) {
	disk := filepath.Join(t.TempDir(), "provisioned.img")
	if err := os.WriteFile(disk, make([]byte, 4096), 0o644); err != nil {
		t.Fatal(err)
	}
	vm := &VM{Dir: t.TempDir(), Token: "tok", opts: Options{CPUs: 2, MemoryMiB: 1024, DiskBoot: true,
		Cmdline: []string{"x=y"}, Disks: []Disk{{Path: disk}}}}
	args, err := vm.qemuArgs()
	if err != nil {
		t.Fatal(err)
	}
	s := strings.Join(args, " ")
	if !strings.Contains(s, "-boot order=c -device VGA") || !strings.Contains(s, "file="+disk+",") {
		t.Errorf("disk boot args lack -boot order=c or the disk:\n%s", s)
	}
	if vm.SSHAddr == "" || !strings.Contains(s, "hostfwd=tcp:"+vm.SSHAddr+"-:22") {
		t.Errorf("disk boot: ssh not forwarded (SSHAddr %q):\n%s", vm.SSHAddr, s)
	}
	for _, unwanted := range []string{"-kernel", "-initrd", "-append", "tftp="} {
		if strings.Contains(s, unwanted) {
			t.Errorf("disk boot args have %q:\n%s", unwanted, s)
		}
	}
	if _, err := Boot(t, Options{DiskBoot: true, Disks: []Disk{{Path: disk}}}); err == nil || !strings.Contains(err.Error(), "Ready") {
		t.Errorf("DiskBoot without Ready: error = %v", err)
	}
}

// The phone-home recorder keeps cloud-init's form posts and refuses
// anything else.
func TestPhoneHomeRecorder(t *testing.T) {
	p := NewPhoneHome()
	srv := httptest.NewServer(p)
	defer srv.Close()
	if r, err := http.Get(srv.URL); err != nil || r.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET: %v %v, want 405", r, err)
	}
	form := url.Values{"instance_id": {"iid-1"}, "hostname": {"node-1"}, "pub_key_ed25519": {"ssh-ed25519 AAAA"}}
	r, err := http.PostForm(srv.URL, form)
	if err != nil || r.StatusCode != http.StatusOK {
		t.Fatalf("POST: %v %v", r, err)
	}
	select {
	case <-p.got:
	default:
		t.Fatal("first post did not signal")
	}
	if posts := p.Posts(); len(posts) != 1 || posts[0].Get("hostname") != "node-1" || posts[0].Get("pub_key_ed25519") != "ssh-ed25519 AAAA" {
		t.Errorf("posts = %v", posts)
	}
}

func TestQEMUArgsUEFI(t *testing.T) {
	if _, err := os.Stat(filepath.Join(OVMFDir, "OVMF_CODE_4M.secboot.fd")); err != nil {
		testenv.Skipf(t, "OVMF missing (Debian's ovmf, scripts/apt-packages.txt): %v", err)
	}
	disk := filepath.Join(t.TempDir(), "provisioned.img")
	if err := os.WriteFile(disk, make([]byte, 4096), 0o644); err != nil {
		t.Fatal(err)
	}
	// Secure Boot disk boot: q35 with SMM, the secboot code, a fresh copy
	// of the Microsoft-keys NVRAM, the disk first by bootindex.
	vm := &VM{Dir: t.TempDir(), Token: "tok", opts: Options{CPUs: 2, MemoryMiB: 1024, DiskBoot: true,
		Firmware: FirmwareSecureBoot, Disks: []Disk{{Path: disk}}}}
	args, err := vm.qemuArgs()
	if err != nil {
		t.Fatal(err)
	}
	s := strings.Join(args, " ")
	for _, want := range []string{"-machine q35,smm=on", "driver=cfi.pflash01,property=secure,value=on",
		"if=pflash,format=raw,unit=0,readonly=on,file=" + OVMFDir + "/OVMF_CODE_4M.secboot.fd",
		"if=pflash,format=raw,unit=1,file=" + vm.Vars, "virtio-blk-pci,drive=d0,bootindex=1"} {
		if !strings.Contains(s, want) {
			t.Errorf("args lack %q:\n%s", want, s)
		}
	}
	if strings.Contains(s, "-boot order") {
		t.Errorf("OVMF gets -boot order:\n%s", s)
	}
	b, err := os.ReadFile(vm.Vars)
	ms, _ := os.ReadFile(filepath.Join(OVMFDir, "OVMF_VARS_4M.ms.fd"))
	if err != nil || len(b) == 0 || string(b) != string(ms) {
		t.Errorf("NVRAM %s is not a copy of OVMF_VARS_4M.ms.fd (%v)", vm.Vars, err)
	}
	// UEFI network boot: iPXE's EFI ROM, no bootindex (the NVRAM decides);
	// an existing NVRAM file is reused, not overwritten.
	os.WriteFile(vm.Vars, []byte("kept"), 0o644)
	vm2 := &VM{Dir: t.TempDir(), Token: "tok", opts: Options{CPUs: 2, MemoryMiB: 1024, Firmware: FirmwareUEFI, Vars: vm.Vars,
		NetBoot: &NetBoot{TFTPDir: t.TempDir(), BootFile: "boot.ipxe"}, Disks: []Disk{{Size: 1 << 20}}}}
	args, err = vm2.qemuArgs()
	if err != nil {
		t.Fatal(err)
	}
	s = strings.Join(args, " ")
	for _, want := range []string{"OVMF_CODE_4M.fd", "virtio-net-pci,netdev=n0,romfile=" + IPXEEFIROM} {
		if !strings.Contains(s, want) {
			t.Errorf("args lack %q:\n%s", want, s)
		}
	}
	if strings.Contains(s, "bootindex") {
		t.Errorf("UEFI network boot with a bootindex:\n%s", s)
	}
	if b, _ := os.ReadFile(vm.Vars); string(b) != "kept" {
		t.Errorf("the existing NVRAM was overwritten")
	}
	if _, err := ParseFirmware("coreboot"); err == nil {
		t.Error("ParseFirmware accepted coreboot")
	}
}

// A login prompt ends no line: as a Ready marker it is seen anyway.
func TestLineWatcherPrompt(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "serial.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	lw := newLineWatcher(f, " login:")
	lw.Write([]byte("Debian GNU/Linux 12 localhost ttyS0\r\n\r\nlocalhost log"))
	select {
	case ev := <-lw.events:
		t.Fatalf("event %+v before the marker was complete", ev)
	default:
	}
	lw.Write([]byte("in: "))
	select {
	case ev := <-lw.events:
		if ev.kind != " login:" || ev.line != "localhost login:" {
			t.Errorf("event %+v", ev)
		}
	default:
		t.Fatal("no event for a prompt without a newline")
	}
}
