//go:build vm

package vmtest

import (
	"context"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/imprint-dev/imprint/bootstrap/nodearchive"
	"github.com/imprint-dev/imprint/controller"
	"github.com/imprint-dev/imprint/internal/logtest"
	"github.com/imprint-dev/imprint/netdata"
)

// netOSDoc is FuelDoc for one 3 GiB disk whose admin NIC is eth0 (MAC
// mac, 10.0.2.15/24): the provision document knows nothing of the second
// NIC or of IPv6.
func netOSDoc(t *testing.T, mac, rootURI, bootURI, authKey, phoneHome string) []byte {
	t.Helper()
	return MarshalDoc(t, FuelDoc(t, FuelNode{Host: "net-os.domain.tld", MAC: mac, RootURI: rootURI, BootURI: bootURI,
		AuthKey: authKey, PhoneHome: phoneHome}))
}

// TestVMNetInstalledOS: the node's network document (from its per-node
// archive) puts 10.0.2.15/24 and fec0::15/64 on its first NIC and
// 10.0.3.15/24 on its second; the provision document only knows eth0 with
// 10.0.2.15. After provisioning through the agent, the disk boots on its
// own and, over ssh through each NIC's port forward, the OS shows the
// ramdisk's addressing on the NICs with those MACs.
func TestVMNetInstalledOS(t *testing.T) {
	if os.Getenv("IMPRINT_VM_SLOW") == "" {
		t.Skip("set IMPRINT_VM_SLOW=1 to provision a real image with the ramdisk's network and boot it (about 4 min, plus the target image build when not cached)")
	}
	const (
		m0, m1 = "52:54:00:05:00:01", "52:54:00:05:00:02"
		tok    = "net-os-token-55aa"
	)
	log := logtest.New(t)
	im := Require(t)
	ti := RequireTargetImage(t, log)
	srv := NewHostServer(t)
	srv.File("/images/root.img.gz", ti.Root)
	srv.File("/images/boot.img.gz", ti.Boot)
	srv.File("/images/imprint-target.yaml", ti.Metadata)
	ph := srv.PhoneHome("/phone-home")
	key, pub, err := NewSSHKey(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	nd := &netdata.Document{
		Links: []netdata.Link{{ID: "admin", Type: "phy", MAC: m0}, {ID: "second", Type: "phy", MAC: m1}},
		Networks: []netdata.Network{
			{ID: "v4", Type: "ipv4", Link: "admin", IPAddress: "10.0.2.15/24", Gateway: "10.0.2.2"},
			{ID: "v6", Type: "ipv6", Link: "admin", IPAddress: "fec0::15/64"},
			{ID: "v4b", Type: "ipv4", Link: "second", IPAddress: "10.0.3.15/24"},
		},
		Services: []netdata.Service{{Type: "dns", Address: "10.0.2.3"}},
	}
	srv.Handle("/boot/initramfs/", controller.InitrdHandler(im.Initrd, controller.NodeArchiveFunc(
		func(mac net.HardwareAddr) (nodearchive.Contents, bool, error) {
			return nodearchive.Contents{Token: tok, Network: nd}, mac.String() == m0, nil
		}), log))
	initrd, _ := fetch(t, srv.URL("/boot/initramfs/"+m0), t.TempDir(), "initrd")
	doc := netOSDoc(t, m0, srv.GuestURL("/images/root.img.gz"), srv.GuestURL("/images/boot.img.gz"), pub, srv.GuestURL("/phone-home"))

	nics := []NIC{
		{ID: "n0", MAC: m0, Netdev: "user", ForwardAgent: true, ForwardSSH: "10.0.2.15"},
		{ID: "n1", MAC: m1, Netdev: "user,net=10.0.3.0/24", ForwardSSH: "10.0.3.15"},
	}
	boot := StartNet(t, NetOptions{NICs: nics, Initrd: initrd, Token: tok, Disks: []Disk{{Size: 3 << 30, Serial: "IMPRINT-VDA"}}})
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Minute)
	defer cancel()
	boot.ProvisionAndReboot(ctx, t, doc, 15*time.Minute)

	t2 := time.Now()
	osvm := LaunchNet(t, NetOptions{NICs: nics, DiskBoot: true, Disks: []Disk{{Path: boot.Disks[0]}}, BootTimeout: 240 * time.Second})
	osvm.Wait(t)
	if _, err := osvm.WaitPhoneHome(ph, 12*time.Minute); err != nil {
		t.Fatal(err)
	}
	t.Logf("disk boot to phone-home: %s", time.Since(t2).Round(time.Second))
	for _, id := range []string{"n0", "n1"} {
		addr := "127.0.0.1:" + strconv.Itoa(osvm.SSHPorts[id])
		var out string
		for deadline := time.Now().Add(2 * time.Minute); ; {
			sctx, scancel := context.WithTimeout(ctx, 60*time.Second)
			out, err = SSH(sctx, addr, key, "ip -o link show; ip -o addr show")
			scancel()
			if err == nil || time.Now().After(deadline) {
				break
			}
			time.Sleep(5 * time.Second)
		}
		if err != nil {
			t.Fatalf("ssh through %s's forward: %v", id, err)
		}
		t.Logf("the OS over ssh through %s:\n%s", id, out)
		// The NIC names in the OS, by MAC.
		names := map[string]string{}
		for _, l := range strings.Split(out, "\n") {
			f := strings.Fields(l)
			for i := 0; i+1 < len(f); i++ {
				if f[i] == "link/ether" && len(f) > 1 {
					names[f[i+1]] = strings.TrimSuffix(f[1], ":")
				}
			}
		}
		for _, want := range []struct{ mac, addr string }{{m0, "10.0.2.15/24"}, {m0, "fec0::15/64"}, {m1, "10.0.3.15/24"}} {
			name := names[want.mac]
			found := false
			for _, l := range strings.Split(out, "\n") {
				f := strings.Fields(l)
				if len(f) > 3 && f[1] == name && (f[2] == "inet" || f[2] == "inet6") && f[3] == want.addr {
					found = true
				}
			}
			if name == "" || !found {
				t.Errorf("the OS has no %s on the NIC with MAC %s (%q)", want.addr, want.mac, name)
			}
		}
	}
}
