//go:build vm

package vmtest

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/imprint-dev/imprint/api"
	"github.com/imprint-dev/imprint/bootstrap/nodearchive"
	"github.com/imprint-dev/imprint/controller"
	"github.com/imprint-dev/imprint/netdata"
)

// discoveries records the agents' discovery POSTs.
type discoveries struct {
	mu   sync.Mutex
	got  []discoveryPost
	seen chan struct{}
}

type discoveryPost struct {
	Auth      string
	NodeID    string   `json:"node_id"`
	Addresses []string `json:"addresses"`
}

func newDiscoveries() *discoveries { return &discoveries{seen: make(chan struct{}, 16)} }

func (d *discoveries) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var p discoveryPost
	if err := json.NewDecoder(io.LimitReader(r.Body, 8<<20)).Decode(&p); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	p.Auth = r.Header.Get("Authorization")
	d.mu.Lock()
	d.got = append(d.got, p)
	d.mu.Unlock()
	select {
	case d.seen <- struct{}{}:
	default:
	}
	w.WriteHeader(http.StatusOK)
}

// wait returns the first discovery whose Authorization is "Bearer "+token.
func (d *discoveries) wait(token string, timeout time.Duration) (discoveryPost, error) {
	deadline := time.After(timeout)
	for {
		d.mu.Lock()
		for _, p := range d.got {
			if p.Auth == "Bearer "+token {
				d.mu.Unlock()
				return p, nil
			}
		}
		n := len(d.got)
		d.mu.Unlock()
		select {
		case <-d.seen:
		case <-deadline:
			return discoveryPost{}, fmt.Errorf("no discovery with the node's token within %v (%d others)", timeout, n)
		}
	}
}

// fetch GETs url into a file in dir.
func fetch(t *testing.T, url, dir, name string) (string, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %v %.200s", url, resp.StatusCode, err, b)
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p, b
}

// vlanFrames counts the 802.1Q frames with VLAN id vid in a pcap file and
// the untagged IPv4 frames to or from subnet (a.b.c.).
func vlanFrames(t *testing.T, pcap string, vid int, subnet [3]byte) (tagged, untagged int) {
	t.Helper()
	b, err := os.ReadFile(pcap)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < 24 || binary.LittleEndian.Uint32(b) != 0xa1b2c3d4 {
		t.Fatalf("%s: not a little-endian pcap (%d bytes)", pcap, len(b))
	}
	inSubnet := func(ip []byte) bool { return ip[0] == subnet[0] && ip[1] == subnet[1] && ip[2] == subnet[2] }
	for off := 24; off+16 <= len(b); {
		n := int(binary.LittleEndian.Uint32(b[off+8:]))
		off += 16
		if off+n > len(b) {
			break
		}
		f := b[off : off+n]
		off += n
		if len(f) < 18 {
			continue
		}
		switch binary.BigEndian.Uint16(f[12:]) {
		case 0x8100:
			if int(binary.BigEndian.Uint16(f[14:])&0x0fff) == vid {
				tagged++
			}
		case 0x0800:
			if len(f) >= 34 && (inSubnet(f[26:30]) || inSubnet(f[30:34])) {
				untagged++
			}
		case 0x0806:
			if len(f) >= 42 && (inSubnet(f[28:32]) || inSubnet(f[38:42])) {
				untagged++
			}
		}
	}
	return tagged, untagged
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// TestVMNetBondVLAN boots two nodes, each from its own per-node initramfs
// served by controller.InitrdHandler (the shared base plus the node's
// archive: token and network document, no token on the kernel command
// line):
//
//   - node A: an active-backup bond of two NICs (each on its own QEMU user
//     network with the agent's port forwarded) with 10.0.2.15/24, and a VLAN
//     100 on a third NIC with 192.168.100.1/24;
//   - node B: DHCPv4 and SLAAC on its user network and VLAN 100 with
//     192.168.100.2/24 on a NIC wired to A's third NIC (a QEMU socket
//     network: the host kernel has no VLAN or bonding), its controller URL
//     pointing at A's agent over the VLAN.
//
// It checks that A reports to the host-side controller with the archive's
// token and addresses, that B's agent reached A's agent across the VLAN
// (an HTTP answer, 404, from A), that the frames on the wire carry VLAN tag
// 100, and that after `set_link` cuts A's active bond member the agent's
// API answers through the other NIC's port forward.
func TestVMNetBondVLAN(t *testing.T) {
	im := Require(t)
	const (
		a0, a1, a2 = "52:54:00:0a:00:01", "52:54:00:0a:00:02", "52:54:00:0a:00:03"
		b0, b1     = "52:54:00:0b:00:01", "52:54:00:0b:00:02"
		tokA, tokB = "node-a-token-7f3e", "node-b-token-91c2"
	)
	docA := &netdata.Document{
		Links: []netdata.Link{
			{ID: "a0", Type: "phy", MAC: a0}, {ID: "a1", Type: "phy", MAC: a1},
			{ID: "bond0", Type: "bond", BondLinks: []string{"a0", "a1"}, BondMode: "active-backup", BondPrimary: "a0", BondMiimon: 100},
			{ID: "a2", Type: "phy", MAC: a2}, {ID: "vlan100", Type: "vlan", VLANLink: "a2", VLANID: 100},
		},
		Networks: []netdata.Network{
			{ID: "admin", Type: "ipv4", Link: "bond0", IPAddress: "10.0.2.15", Netmask: "255.255.255.0", Gateway: "10.0.2.2"},
			{ID: "prov", Type: "ipv4", Link: "vlan100", IPAddress: "192.168.100.1/24"},
		},
		Services: []netdata.Service{{Type: "dns", Address: "10.0.2.3"}},
	}
	docB := &netdata.Document{
		Links: []netdata.Link{{ID: "b0", Type: "phy", MAC: b0}, {ID: "b1", Type: "phy", MAC: b1},
			{ID: "vlan100", Type: "vlan", VLANLink: "b1", VLANID: 100}},
		Networks: []netdata.Network{
			{ID: "admin", Type: "ipv4_dhcp", Link: "b0"},
			{ID: "admin6", Type: "ipv6_slaac", Link: "b0"},
			{ID: "prov", Type: "ipv4", Link: "vlan100", IPAddress: "192.168.100.2/24"},
		},
	}
	host := NewHostServer(t)
	disc := newDiscoveries()
	host.Handle("/discovery", disc)
	archives := controller.NodeArchiveFunc(func(mac net.HardwareAddr) (nodearchive.Contents, bool, error) {
		switch mac.String() {
		case a0:
			return nodearchive.Contents{Token: tokA, Network: docA}, true, nil
		case b0:
			return nodearchive.Contents{Token: tokB, Network: docB}, true, nil
		}
		return nodearchive.Contents{}, false, nil
	})
	host.Handle("/boot/initramfs/", controller.InitrdHandler(im.Initrd, archives, slog.New(slog.NewTextHandler(os.Stderr, nil))))
	dir := t.TempDir()
	initrdA, bytesA := fetch(t, host.URL("/boot/initramfs/"+a0), dir, "initrd-a")
	initrdB, bytesB := fetch(t, host.URL("/boot/initramfs/"+strings.ReplaceAll(b0, ":", "-")), dir, "initrd-b")
	base := im.Size()
	if bytes.Equal(bytesA, bytesB) || int64(len(bytesA)) <= base {
		t.Fatalf("per-node initramfs: A %d bytes, B %d bytes, base %d; equal: %v", len(bytesA), len(bytesB), base, bytes.Equal(bytesA, bytesB))
	}
	for name, b := range map[string][]byte{"A": bytesA[base:], "B": bytesB[base:]} {
		files, err := nodearchive.Read(b)
		if err != nil {
			t.Fatalf("node %s archive: %v", name, err)
		}
		t.Logf("node %s: archive of %d bytes: token %q, network_data.json %d bytes", name, len(b),
			strings.TrimSpace(string(files[nodearchive.TokenFile].Content)), len(files[nodearchive.NetworkFile].Content))
	}

	sock, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	pcap := filepath.Join(dir, "a-vlan.pcap")
	A := LaunchNet(t, NetOptions{
		NICs: []NIC{
			{ID: "n0", MAC: a0, Netdev: "user", ForwardAgent: true},
			{ID: "n1", MAC: a1, Netdev: "user", ForwardAgent: true},
			{ID: "n2", MAC: a2, Netdev: "socket,listen=127.0.0.1:" + strconv.Itoa(sock), Dump: pcap},
		},
		Cmdline: []string{"imprint.controller=" + host.GuestURL("")},
		Initrd:  initrdA, Token: tokA,
	})
	time.Sleep(time.Second) // A's QEMU listens on the socket before B connects
	B := LaunchNet(t, NetOptions{
		NICs: []NIC{
			{ID: "n0", MAC: b0, Netdev: "user", ForwardAgent: true},
			{ID: "n1", MAC: b1, Netdev: "socket,connect=127.0.0.1:" + strconv.Itoa(sock)},
		},
		Cmdline: []string{"imprint.controller=http://192.168.100.1:9999"},
		Initrd:  initrdB, Token: tokB, CPUs: 1,
	})
	A.Wait(t)
	B.Wait(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	// A's agent took its token from the archive (none on the command line).
	if _, err := A.Client.Inventory(ctx); err != nil {
		t.Errorf("node A: GET /v1/inventory with the archive's token: %v", err)
	}
	var se *api.ResponseError
	if _, err := A.apiClient(A.BaseURL, tokB).Inventory(ctx); !errors.As(err, &se) || se.StatusCode != http.StatusUnauthorized {
		t.Errorf("node A: GET /v1/inventory with node B's token: %v, want 401", err)
	}
	// A reached the controller through the bond, with its token.
	d, err := disc.wait(tokA, 2*time.Minute)
	if err != nil {
		t.Fatalf("node A: %v", err)
	}
	t.Logf("node A discovery: node %s, addresses %v", d.NodeID, d.Addresses)
	if !contains(d.Addresses, "10.0.2.15") || !contains(d.Addresses, "192.168.100.1") {
		t.Errorf("node A discovery addresses %v lack 10.0.2.15 (bond0) or 192.168.100.1 (vlan100)", d.Addresses)
	}
	for _, want := range []string{"create-bond bond0 mode active-backup miimon 100 primary eth0", "create-vlan vlan100 on eth2 id 100",
		"iface=bond0", "iface=vlan100"} {
		if !strings.Contains(A.Console(), want) {
			t.Errorf("node A console lacks %q", want)
		}
	}
	// B's agent reached A's agent over VLAN 100: A answered its discovery
	// POST (A's agent has no /discovery: 404).
	line, err := B.WaitConsole("192.168.100.1:9999/discovery: 404", 2*time.Minute)
	if err != nil {
		t.Errorf("node B: %v", err)
	} else {
		t.Logf("node B -> node A over VLAN 100: %s", strings.TrimSpace(line))
	}
	for _, want := range []string{`msg="dhcp lease" cmd=ramdisk-init step=network iface=eth0 proto=DHCPv4 addr=10.0.2.15`, `msg="slaac address" cmd=ramdisk-init step=network iface=eth0 addr=fec0::`} {
		if !strings.Contains(B.Console(), want) {
			t.Errorf("node B console lacks %q", want)
		}
	}
	tagged, untagged := vlanFrames(t, pcap, 100, [3]byte{192, 168, 100})
	t.Logf("A's VLAN NIC: %d frames tagged 100, %d untagged in 192.168.100.0/24", tagged, untagged)
	if tagged == 0 || untagged != 0 {
		t.Errorf("A's VLAN NIC: %d frames tagged 100, %d untagged in 192.168.100.0/24; want some and none", tagged, untagged)
	}

	// Bond failover: cut the active member's link; the API answers through
	// the other NIC's forward.
	viaN1 := A.apiClient("http://127.0.0.1:"+strconv.Itoa(A.Ports["n1"]), tokA)
	short, cancelShort := context.WithTimeout(ctx, 4*time.Second)
	before := viaN1.Healthz(short)
	cancelShort()
	// The backup member drops what it receives: no answer before the cut.
	if before == nil {
		t.Errorf("before the cut the API answered through n1, the backup member: the bond is not active-backup on eth0")
	}
	t.Logf("before the cut, through n1 (backup member): %v", before)
	if out, err := A.HMP("set_link n0 off"); err != nil {
		t.Fatalf("set_link n0 off: %v %s", err, out)
	}
	t0 := time.Now()
	var last error
	for time.Since(t0) < 60*time.Second {
		c, cc := context.WithTimeout(ctx, 4*time.Second)
		last = viaN1.Healthz(c)
		cc()
		if last == nil {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if last != nil {
		t.Fatalf("after set_link n0 off: API through n1: %v", last)
	}
	t.Logf("after set_link n0 off: API answers through n1 after %.1fs", time.Since(t0).Seconds())
	if _, err := viaN1.Inventory(ctx); err != nil {
		t.Errorf("after the cut: GET /v1/inventory through n1: %v", err)
	}
	A.BaseURL, A.Client = viaN1.URL, viaN1 // for the poweroff in Stop
}

// TestVMNetIPv6Only boots a node whose only network is QEMU user
// networking with IPv4 off, configured from the kernel command line
// (ifname=, ip=<if>:auto6, a static ip=[...] and nameserver=[...]), and
// checks that its agent reports to a controller listening on the host's
// [::1] (the guest's [fec0::2]) with its SLAAC and static addresses and no
// IPv4 address.
func TestVMNetIPv6Only(t *testing.T) {
	const m0, tok = "52:54:00:06:00:01", "ipv6-node-token-3d1a"
	l, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		t.Fatalf("listen on [::1]: %v", err)
	}
	disc := newDiscoveries()
	srv := &http.Server{Handler: disc, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	port := l.Addr().(*net.TCPAddr).Port
	vm := StartNet(t, NetOptions{
		NICs: []NIC{{ID: "n0", MAC: m0, Netdev: "user,ipv4=off,ipv6=on"}},
		Cmdline: []string{"imprint.token=" + tok, "ifname=prov:" + m0, "ip=prov:auto6", "ip=[fec0::15]:::64::prov:none",
			"nameserver=[fec0::3]", fmt.Sprintf("imprint.controller=http://[fec0::2]:%d", port)},
		Token: tok, NoAgentCheck: true,
	})
	d, err := disc.wait(tok, 3*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("discovery over IPv6: node %s, addresses %v", d.NodeID, d.Addresses)
	slaac := false
	for _, a := range d.Addresses {
		ip := net.ParseIP(a)
		if ip.To4() != nil {
			t.Errorf("IPv4 address %s on an IPv6-only node", a)
		}
		if strings.HasPrefix(a, "fec0::") && a != "fec0::15" {
			slaac = true
		}
	}
	if !contains(d.Addresses, "fec0::15") || !slaac {
		t.Errorf("addresses %v: want the static fec0::15 and a SLAAC fec0::/64 address", d.Addresses)
	}
	for _, want := range []string{"slaac address", "dns fec0::3"} {
		if !strings.Contains(vm.Console(), want) {
			t.Errorf("console lacks %q", want)
		}
	}
}

// TestVMNetArchiveCA: a node whose per-node archive carries its token and a
// CA bundle (no network document: DHCP on every NIC, as without one)
// reports to a controller served over HTTPS with a certificate of that CA:
// the agent trusts exactly the archive's bundle.
func TestVMNetArchiveCA(t *testing.T) {
	im := Require(t)
	const m0, tok = "52:54:00:0c:00:01", "ca-node-token-0b1d"
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "imprint test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	leafKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leafTmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: GuestHost},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IPAddresses: []net.IP{net.ParseIP(GuestHost)},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, caCert, &leafKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	disc := newDiscoveries()
	srv := &http.Server{Handler: disc, ReadHeaderTimeout: 10 * time.Second,
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{leafDER}, PrivateKey: leafKey}}}}
	go srv.ServeTLS(l, "", "")
	t.Cleanup(func() { srv.Close() })
	port := l.Addr().(*net.TCPAddr).Port

	host := NewHostServer(t)
	host.Handle("/boot/initramfs/", controller.InitrdHandler(im.Initrd, controller.NodeArchiveFunc(
		func(mac net.HardwareAddr) (nodearchive.Contents, bool, error) {
			return nodearchive.Contents{Token: tok, CABundle: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})}, mac.String() == m0, nil
		}), slog.New(slog.NewTextHandler(os.Stderr, nil))))
	initrd, _ := fetch(t, host.URL("/boot/initramfs/"+m0), t.TempDir(), "initrd")
	vm := StartNet(t, NetOptions{
		NICs:    []NIC{{ID: "n0", MAC: m0, Netdev: "user", ForwardAgent: true}},
		Cmdline: []string{fmt.Sprintf("imprint.controller=https://%s:%d", GuestHost, port)},
		Initrd:  initrd, Token: tok,
	})
	d, err := disc.wait(tok, 2*time.Minute)
	if err != nil {
		t.Fatalf("%v\n%s", err, vm.Tail(30))
	}
	t.Logf("discovery over HTTPS (certificate of the archive's CA): addresses %v", d.Addresses)
	for _, want := range []string{"agent trusts the per-node CA bundle", `msg="dhcp lease"`} {
		if !strings.Contains(vm.Console(), want) {
			t.Errorf("console lacks %q", want)
		}
	}
}
