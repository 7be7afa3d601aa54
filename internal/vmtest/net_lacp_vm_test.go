//go:build vm

package vmtest

import (
	"bytes"
	"encoding/binary"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/imprint-dev/imprint/bootstrap/nodearchive"
	"github.com/imprint-dev/imprint/netdata"
)

// lacpdu is one LACP frame's actor and partner information.
type lacpdu struct {
	actor, partner           net.HardwareAddr // system IDs
	actorState, partnerState byte
	actorKey, partnerKey     uint16
}

// LACP actor/partner state bits (IEEE 802.1AX).
const (
	lacpSync         = 0x08
	lacpCollecting   = 0x10
	lacpDistributing = 0x20
)

// lacpdus reads the LACPDUs (slow protocols, subtype 1) of a pcap file.
func lacpdus(t *testing.T, pcap string) []lacpdu {
	t.Helper()
	b, err := os.ReadFile(pcap)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < 24 || binary.LittleEndian.Uint32(b) != 0xa1b2c3d4 {
		t.Fatalf("%s: not a little-endian pcap (%d bytes)", pcap, len(b))
	}
	var out []lacpdu
	for off := 24; off+16 <= len(b); {
		n := int(binary.LittleEndian.Uint32(b[off+8:]))
		off += 16
		if off+n > len(b) {
			break
		}
		f := b[off : off+n]
		off += n
		if len(f) < 14+39 || binary.BigEndian.Uint16(f[12:]) != 0x8809 {
			continue
		}
		p := f[14:]
		if p[0] != 1 || p[2] != 1 || p[3] != 20 || p[22] != 2 || p[23] != 20 {
			continue
		}
		out = append(out, lacpdu{
			actor: net.HardwareAddr(bytes.Clone(p[6:12])), actorKey: binary.BigEndian.Uint16(p[12:]), actorState: p[18],
			partner: net.HardwareAddr(bytes.Clone(p[26:32])), partnerKey: binary.BigEndian.Uint16(p[32:]), partnerState: p[38],
		})
	}
	return out
}

// TestVMNetLACP: two nodes wired NIC to NIC by two QEMU socket links (the
// host kernel has no bonding), each bonding its two NICs in 802.3ad mode
// from its per-node network document (lacp_rate fast, layer3+4 hashing).
// The bonds negotiate LACP with each other for real: on both links the
// last LACPDU node A sent names node B's system as its partner and says
// in sync, collecting and distributing; and node B's agent reaches node
// A's agent across the aggregate (A answers B's discovery POST: 404).
func TestVMNetLACP(t *testing.T) {
	im := Require(t)
	const (
		a0, a1, a2 = "52:54:00:3a:00:01", "52:54:00:3a:00:02", "52:54:00:3a:00:03"
		b0, b1     = "52:54:00:3b:00:01", "52:54:00:3b:00:02"
		tokA, tokB = "lacp-a-token-5c1e", "lacp-b-token-e2a7"
	)
	bond := func(m0, m1, addr string) *netdata.Document {
		return &netdata.Document{
			Links: []netdata.Link{{ID: "p0", Type: "phy", MAC: m0}, {ID: "p1", Type: "phy", MAC: m1},
				{ID: "bond0", Type: "bond", BondLinks: []string{"p0", "p1"}, BondMode: "802.3ad", BondMiimon: 100,
					BondLACPRate: "fast", BondXmitHashPolicy: "layer3+4"}},
			Networks: []netdata.Network{{ID: "lag", Type: "ipv4", Link: "bond0", IPAddress: addr}},
		}
	}
	docA := bond(a0, a1, "192.168.50.1/24")
	docA.Links = append(docA.Links, netdata.Link{ID: "adm", Type: "phy", MAC: a2})
	docA.Networks = append(docA.Networks, netdata.Network{ID: "admin", Type: "ipv4_dhcp", Link: "adm"})
	docB := bond(b0, b1, "192.168.50.2/24")
	dir := t.TempDir()
	initrdA := nodeInitrd(t, im, dir, "a", tokA, docA)
	initrdB := nodeInitrd(t, im, dir, "b", tokB, docB)

	s0, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	s1, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	// 802.3ad aggregates ports of one speed and full duplex: virtio-net
	// reports them only when QEMU is told.
	const speed = "speed=1000,duplex=full"
	pcap0, pcap1 := filepath.Join(dir, "a-p0.pcap"), filepath.Join(dir, "a-p1.pcap")
	A := LaunchNet(t, NetOptions{
		NICs: []NIC{
			{ID: "n0", MAC: a0, Netdev: "socket,listen=127.0.0.1:" + strconv.Itoa(s0), Dump: pcap0, Device: speed},
			{ID: "n1", MAC: a1, Netdev: "socket,listen=127.0.0.1:" + strconv.Itoa(s1), Dump: pcap1, Device: speed},
			{ID: "n2", MAC: a2, Netdev: "user", ForwardAgent: true},
		},
		Initrd: initrdA, Token: tokA,
	})
	time.Sleep(time.Second) // A's QEMU listens on the sockets before B connects
	B := LaunchNet(t, NetOptions{
		NICs: []NIC{
			{ID: "n0", MAC: b0, Netdev: "socket,connect=127.0.0.1:" + strconv.Itoa(s0), Device: speed},
			{ID: "n1", MAC: b1, Netdev: "socket,connect=127.0.0.1:" + strconv.Itoa(s1), Device: speed},
		},
		Cmdline: []string{"imprint.controller=http://192.168.50.1:9999"},
		Initrd:  initrdB, Token: tokB, CPUs: 1, NoAgentCheck: true,
	})
	A.Wait(t)
	B.Wait(t)
	line, err := B.WaitConsole("192.168.50.1:9999/discovery: 404", 3*time.Minute)
	if err != nil {
		t.Fatalf("node B did not reach node A across the aggregate: %v", err)
	}
	t.Logf("node B -> node A across the 802.3ad bonds: %s", strings.TrimSpace(line))
	for _, want := range []string{"create-bond bond0 mode 802.3ad miimon 100 xmit_hash_policy layer3+4 lacp_rate fast"} {
		if !strings.Contains(A.Console(), want) || !strings.Contains(B.Console(), want) {
			t.Errorf("a node's console lacks %q", want)
		}
	}
	// Fast LACP: a LACPDU a second; give the last ones time to reach the dumps.
	time.Sleep(3 * time.Second)
	bMAC := map[string]bool{b0: true, b1: true}
	for i, pcap := range []string{pcap0, pcap1} {
		var fromA, fromB int
		var last *lacpdu
		for _, d := range lacpdus(t, pcap) {
			switch {
			case d.actor.String() == a0 || d.actor.String() == a1:
				fromA++
				last = &d
			case bMAC[d.actor.String()]:
				fromB++
			}
		}
		if last == nil || fromB == 0 {
			t.Errorf("link %d: %d LACPDUs from A, %d from B; want both", i, fromA, fromB)
			continue
		}
		want := byte(lacpSync | lacpCollecting | lacpDistributing)
		t.Logf("link %d: %d LACPDUs from A, %d from B; A's last: actor %s key %d state %#02x, partner %s state %#02x",
			i, fromA, fromB, last.actor, last.actorKey, last.actorState, last.partner, last.partnerState)
		if !bMAC[last.partner.String()] {
			t.Errorf("link %d: A's partner is %s, want node B's system (%s or %s)", i, last.partner, b0, b1)
		}
		if last.actorState&want != want || last.partnerState&want != want {
			t.Errorf("link %d: actor state %#02x, partner state %#02x: want sync, collecting and distributing (%#02x) on both", i, last.actorState, last.partnerState, want)
		}
	}
}

// nodeInitrd writes the image's initramfs with a per-node archive (token,
// network document) appended, as controller.InitrdHandler serves it.
func nodeInitrd(t *testing.T, im Image, dir, name, token string, doc *netdata.Document) string {
	t.Helper()
	archive, err := nodearchive.Build(nodearchive.Contents{Token: token, Network: doc})
	if err != nil {
		t.Fatal(err)
	}
	base, err := os.ReadFile(im.Initrd)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "initrd-"+name)
	if err := os.WriteFile(p, append(base, archive...), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}
