//go:build vm

package vmtest

import (
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/imprint-dev/imprint/api"
	"github.com/imprint-dev/imprint/controller"
	"github.com/imprint-dev/imprint/internal/testenv"
	"github.com/imprint-dev/imprint/pxe"
)

// SnpOnlyEFI is Debian's iPXE EFI binary (package ipxe) that drives the
// NIC it was loaded from through the firmware's SNP.
const SnpOnlyEFI = "/usr/lib/ipxe/snponly.efi"

// bootSegment is a network namespace with a tap, a reference controller
// listening in it (its operator API too) and a dnsmasq answering as
// pxe.DHCPBoot says: the rack's provisioning segment, with no TFTP server
// anywhere.
type bootSegment struct {
	ns    *NetNS
	ctrl  *controller.Controller
	store controller.Store
	dm    *Dnsmasq
	base  string // the controller's URL as nodes see it
}

// newBootSegment: hostAddr is the namespace's address (CIDR) the
// controller listens on; dhcp are the dnsmasq ranges and extra options.
func newBootSegment(t *testing.T, im Image, hostAddr string, nodes []controller.Node, dhcp ...string) *bootSegment {
	t.Helper()
	ns := RequireNetNS(t, hostAddr)
	ip, _, err := net.ParseCIDR(hostAddr)
	if err != nil {
		t.Fatal(err)
	}
	l, err := ns.Listen(net.JoinHostPort(ip.String(), "0"))
	if err != nil {
		t.Fatalf("listen in %s: %v", ns.Name, err)
	}
	base := "http://" + l.Addr().String()
	dir := t.TempDir()
	img := filepath.Join(dir, "root.img.gz") // never fetched: the tests stop at the discovery
	f, _ := os.Create(img)
	gzip.NewWriter(f).Close()
	f.Close()
	store, err := controller.OpenStore(context.Background(), "sqlite:"+filepath.Join(dir, "controller.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	ctrl, err := controller.New(controller.Config{Token: "operator-token", Store: store, GuestURL: base,
		Kernel: im.Kernel, Initrd: im.Initrd, IPXEEFI: SnpOnlyEFI,
		Images: []controller.Image{{MountPoint: "/", Path: img}}, Nodes: nodes,
		Logger: slog.New(slog.NewTextHandler(testWriter{t}, nil))})
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: ctrl.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close(); ctrl.Close() })
	opts, err := pxe.DHCPBoot{Controller: base}.Dnsmasq()
	if err != nil {
		t.Fatal(err)
	}
	return &bootSegment{ns: ns, ctrl: ctrl, store: store, base: base, dm: ns.Dnsmasq(append(dhcp, opts...)...)}
}

// discovery is what the node's agent reported, from the controller's store.
func (s *bootSegment) discovery(t *testing.T, mac string) api.Discovery {
	t.Helper()
	rec, err := s.store.Node(context.Background(), mac)
	if err != nil {
		t.Fatal(err)
	}
	var d api.Discovery
	if err := json.Unmarshal(rec.Discovery, &d); err != nil {
		t.Fatalf("discovery of %s: %v", mac, err)
	}
	return d
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// TestVMUEFIHTTPBoot: a UEFI node whose firmware has no PXE (turned off
// through fw_cfg) and whose NIC has no iPXE option ROM boots the agent by
// UEFI HTTP boot alone: OVMF's HttpBootDxe asks DHCP as HTTPClient,
// dnsmasq answers with the class and the controller's /boot/ipxe.efi
// (Debian's snponly.efi), iPXE asks DHCP again and chains the controller's
// per-MAC script, which loads the kernel and the node's own initramfs
// (its token in the per-node archive) over HTTP; the agent reports to the
// controller. No TFTP server exists on the segment.
func TestVMUEFIHTTPBoot(t *testing.T) {
	im := Require(t)
	testenv.RequireTool(t, "dnsmasq")
	if _, err := os.Stat(SnpOnlyEFI); err != nil {
		testenv.Skipf(t, "iPXE EFI binary (Debian package ipxe): %v", err)
	}
	const mac = "52:54:00:0e:f1:01"
	seg := newBootSegment(t, im, "10.0.3.1/24",
		[]controller.Node{{MAC: mac, Hostname: "httpboot", AgentURL: "http://127.0.0.1:1", Cmdline: []string{"console=ttyS0", "panic=-1", "imprint.on_exit=poweroff"}}},
		"dhcp-range=10.0.3.10,10.0.3.50,255.255.255.0,1h")
	t0 := time.Now()
	vm := LaunchNet(t, NetOptions{
		NICs:     []NIC{{MAC: mac, Netdev: "tap,ifname=" + seg.ns.Tap + ",script=no,downscript=no"}},
		NetNS:    seg.ns,
		Firmware: FirmwareUEFI, FirmwareNetBoot: true, NoFirmwarePXE: true,
		NoAgentCheck: true, BootTimeout: 10 * time.Minute,
	})
	vm.Wait(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	ev, err := seg.ctrl.Wait(ctx, mac, controller.PhaseDiscovered)
	if err != nil {
		t.Fatalf("%v\n%s", err, vm.Tail(40))
	}
	t.Logf("HTTP boot to discovery: %s (%s)", time.Since(t0).Round(time.Second), ev.Detail)
	con, dlog := vm.Console(), seg.dm.Log()
	for _, want := range []string{">>Start HTTP Boot over IPv4", "iPXE"} {
		if !strings.Contains(con, want) {
			t.Errorf("console lacks %q", want)
		}
	}
	if strings.Contains(con, "PXEv4") || strings.Contains(con, "PXEv6") {
		t.Errorf("console shows a firmware PXE boot option: HTTP boot was not alone")
	}
	for _, want := range []string{"vendor class: HTTPClient", "/boot/ipxe.efi", "user class: iPXE", "/ipxe?mac=${net0/mac}"} {
		if !strings.Contains(dlog, want) {
			t.Errorf("dnsmasq log lacks %q", want)
		}
	}
	if !logLine(dlog, "tags:", "efihttp") || !logLine(dlog, "tags:", "ipxe") {
		t.Errorf("dnsmasq tagged no request efihttp and ipxe")
	}
	if strings.Contains(con, "imprint.token") {
		t.Errorf("the token reached the kernel command line")
	}
	var boots []string
	for _, e := range seg.ctrl.Events() {
		boots = append(boots, fmt.Sprintf("%s %s", e.Phase, e.Detail))
	}
	t.Logf("controller timeline:\n%s", strings.Join(boots, "\n"))
}

// TestVMIPv6iPXE: an IPv6-only provisioning segment (no IPv4 anywhere, no
// SLAAC: dnsmasq advertises the prefix on-link only and hands addresses by
// stateful DHCPv6). A UEFI node's iPXE (efi-virtio's) gets its address and
// the controller's per-MAC script URL (option 59) by DHCPv6, fetches the
// script, the kernel and its per-node initramfs from the controller's
// IPv6 address; the ramdisk configures its NIC by DHCPv6 (ip=prov:dhcp6,
// a real DHCPv6 server, not a unit fake) and the agent reports to the
// controller over IPv6 with its DHCPv6 address.
func TestVMIPv6iPXE(t *testing.T) {
	im := Require(t)
	testenv.RequireTool(t, "dnsmasq")
	const mac = "52:54:00:06:1e:01"
	seg := newBootSegment(t, im, "fd00:6::1/64",
		[]controller.Node{{MAC: mac, Hostname: "ipv6boot", AgentURL: "http://127.0.0.1:1",
			Cmdline: []string{"console=ttyS0", "panic=-1", "imprint.on_exit=poweroff", "ifname=prov:" + mac, "ip=prov:dhcp6"}}},
		"enable-ra", "dhcp-range=fd00:6::100,fd00:6::1ff,64,1h")
	if !strings.HasPrefix(seg.base, "http://[fd00:6::1]:") {
		t.Fatalf("controller URL %s, want http://[fd00:6::1]:PORT", seg.base)
	}
	t0 := time.Now()
	vm := LaunchNet(t, NetOptions{
		NICs:     []NIC{{MAC: mac, Netdev: "tap,ifname=" + seg.ns.Tap + ",script=no,downscript=no"}},
		NetNS:    seg.ns,
		Firmware: FirmwareUEFI, FirmwareNetBoot: true, ROM: IPXEEFIROM, NoFirmwarePXE: true,
		NoAgentCheck: true, BootTimeout: 10 * time.Minute,
	})
	vm.Wait(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if _, err := seg.ctrl.Wait(ctx, mac, controller.PhaseDiscovered); err != nil {
		t.Fatalf("%v\n%s", err, vm.Tail(40))
	}
	t.Logf("IPv6 iPXE boot to discovery: %s", time.Since(t0).Round(time.Second))
	var timeline []string
	for _, e := range seg.ctrl.Events() {
		timeline = append(timeline, fmt.Sprintf("%s %s", e.Phase, e.Detail))
	}
	t.Logf("controller timeline:\n%s", strings.Join(timeline, "\n"))
	if !strings.Contains(strings.Join(timeline, "\n"), "bootstrap http://[fd00:6::1]:") {
		t.Errorf("the boot script's URLs are not the controller's IPv6 address")
	}
	d := seg.discovery(t, mac)
	t.Logf("discovery over IPv6: addresses %v", d.Addresses)
	leased := false
	for _, a := range d.Addresses {
		ip := net.ParseIP(a)
		if ip == nil || ip.To4() != nil {
			t.Errorf("address %q on an IPv6-only segment", a)
			continue
		}
		if strings.HasPrefix(a, "fd00:6::") {
			if ip.To16()[14] != 0x01 { // fd00:6::100 - fd00:6::1ff
				t.Errorf("address %s is not from the DHCPv6 range (SLAAC?)", a)
			} else {
				leased = true
			}
		}
	}
	if !leased {
		t.Errorf("addresses %v: no DHCPv6 lease from fd00:6::100-1ff", d.Addresses)
	}
	dlog := seg.dm.Log()
	if n := strings.Count(dlog, "DHCPREPLY(tap0) fd00:6::"); n < 2 {
		t.Errorf("dnsmasq: %d DHCPv6 replies, want iPXE's and the ramdisk's", n)
	}
	if !strings.Contains(dlog, "/ipxe?mac=${net0/mac}") {
		t.Errorf("dnsmasq sent no bootfile-url")
	}
	if strings.Contains(vm.Console(), "slaac address") {
		t.Errorf("the ramdisk took a SLAAC address; the test wants DHCPv6 alone")
	}
}

// logLine: some line of log holds every one of words.
func logLine(log string, words ...string) bool {
	for _, l := range strings.Split(log, "\n") {
		all := true
		for _, w := range words {
			all = all && strings.Contains(l, w)
		}
		if all {
			return true
		}
	}
	return false
}
