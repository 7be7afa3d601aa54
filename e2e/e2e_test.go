package e2e

import (
	"context"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseObserved(t *testing.T) {
	for _, tt := range []struct {
		name string
		in   string
		want Observed
	}{
		{"empty", "", Observed{}},
		{"full", `hostname node-1
systemtype target
lv os/root 4040
lv os/swap  1024
mount / /dev/mapper/os-root ext4
mount /boot /dev/vda3   ext2
cloudinit error
cloudinit_problem 2026-12-02 17:00:00,000 - util.py[WARNING]: Running module locale failed
cloudinit_problem x  y
`, Observed{Hostname: "node-1", SystemType: "target", LogicalVolumes: []string{"os/root 4040", "os/swap 1024"},
			Mounts: []string{"/ /dev/mapper/os-root ext4", "/boot /dev/vda3 ext2"}, CloudInit: "error",
			CloudInitProblems: []string{"2026-12-02 17:00:00,000 - util.py[WARNING]: Running module locale failed", "x  y"}}},
		{"uefi", "bootmode uefi\nsecureboot SecureBoot disabled\nbootorder 0001,0004\n" +
			"bootentry Boot0001* UEFI PXEv4 (MAC:525400123456)\tPciRoot(0x0)/MAC(525400123456,1)\n" +
			"bootentry Boot0004* debian (vda)\tHD(2,GPT,abc,0x1,0x2)/File(\\EFI\\debian\\shimx64.efi)\n",
			Observed{BootMode: "uefi", SecureBoot: "SecureBoot disabled", BootOrder: "0001,0004", BootEntries: []string{
				"Boot0001* UEFI PXEv4 (MAC:525400123456)\tPciRoot(0x0)/MAC(525400123456,1)",
				"Boot0004* debian (vda)\tHD(2,GPT,abc,0x1,0x2)/File(\\EFI\\debian\\shimx64.efi)"}}},
		{"missing file leaves the value empty", "systemtype \nhostname x\n", Observed{Hostname: "x"}},
		{"unknown keys are ignored", "motd hello\nhostname y", Observed{Hostname: "y"}},
		{"datasource", "datasource DataSourceNoCloud [seed=/dev/vda4][dsmode=net]\n", Observed{Datasource: "DataSourceNoCloud [seed=/dev/vda4][dsmode=net]"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := parseObserved(tt.in); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("parseObserved:\n got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestConsoleWait(t *testing.T) {
	c := newConsole(io.Discard, nil)
	exited := make(chan struct{})
	c.Write([]byte("iPXE starting\nWelcome to u-root!\n"))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	// A line already there is found, and the position is past its end.
	pos, line, err := c.wait(ctx, 0, "u-root", exited)
	if err != nil || line != "Welcome to u-root!" || pos != c.len() {
		t.Fatalf("wait = %d %q %v, want %d %q", pos, line, err, c.len(), "Welcome to u-root!")
	}
	// A line written later, in pieces, is found once it arrives; text
	// before the mark is not matched again.
	done := make(chan string, 1)
	go func() {
		_, l, err := c.wait(ctx, pos, "Welcome to", exited)
		if err != nil {
			l = "error: " + err.Error()
		}
		done <- l
	}()
	time.Sleep(20 * time.Millisecond)
	c.Write([]byte("[    0.0] Linux version 6.1\nWelcome to Deb"))
	c.Write([]byte("ian GNU/Linux 12 (bookworm)!\n"))
	if l := <-done; l != "Welcome to Debian GNU/Linux 12 (bookworm)!" {
		t.Errorf("second wait got %q", l)
	}
	// An ending context names the marker.
	short, cancel2 := context.WithTimeout(ctx, 30*time.Millisecond)
	defer cancel2()
	if _, _, err := c.wait(short, c.len(), "login:", exited); err == nil || !strings.Contains(err.Error(), `"login:"`) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("timeout error = %v", err)
	}
	// QEMU exiting ends the wait at once.
	c.close()
	if _, _, err := c.wait(ctx, c.len(), "login:", exited); err == nil || !strings.Contains(err.Error(), "QEMU exited") {
		t.Errorf("after exit: %v", err)
	}
}

func TestMachineArgs(t *testing.T) {
	dir := t.TempDir()
	m := &Machine{cfg: MachineConfig{Dir: dir, MAC: "52:54:00:12:34:56", UUID: nodeUUID("52:54:00:12:34:56"), TFTPDir: "/t", BootFile: "boot.ipxe", MemoryMiB: 1536, CPUs: 2,
		Disks:   []Disk{{Path: dir + "/d0.img", Size: 1 << 20, Serial: "S0"}},
		Forward: map[int]int{2222: 22}}, monitor: dir + "/mon.sock"}
	args, err := m.args()
	if err != nil {
		t.Fatal(err)
	}
	s := strings.Join(args, " ")
	for _, want := range []string{
		"-boot order=nc", // PXE first, then the disk: what the flip relies on
		"user,id=n0,tftp=/t,bootfile=boot.ipxe,hostfwd=tcp:127.0.0.1:2222-:22",
		"virtio-net-pci,netdev=n0,mac=52:54:00:12:34:56",
		"file=" + dir + "/d0.img,if=none,id=d0,format=raw", "virtio-blk-pci,drive=d0,serial=S0",
		"-monitor unix:" + dir + "/mon.sock,server=on,wait=off",
		"-vga std",
		"-uuid 1a9e1a9e-0000-4000-8000-525400123456",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("qemu args lack %q:\n%s", want, s)
		}
	}
	if strings.Contains(s, "-no-reboot") {
		t.Error("-no-reboot: a guest reboot must go through the firmware and PXE again")
	}
	m.cfg.Disks[0].Serial = "has,comma"
	if _, err := m.args(); err == nil {
		t.Error("a serial with a comma was accepted")
	}
}
