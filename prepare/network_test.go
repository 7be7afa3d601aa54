package prepare

import (
	"context"
	"strings"
	"testing"

	"github.com/imprint-dev/imprint/netdata"
)

// TestConfigdriveNetwork: Options.Network (the document the ramdisk
// applied) is the installed OS's network unless ks_meta.os_network is
// "document"; an unusable one is refused with the document.
func TestConfigdriveNetwork(t *testing.T) {
	nd := &netdata.Document{
		Links:    []netdata.Link{{ID: "a", Type: "phy", MAC: "52:54:00:05:00:01"}},
		Networks: []netdata.Network{{ID: "v6", Type: "ipv6", Link: "a", IPAddress: "fec0::15/64"}},
	}
	job, err := Prepare(context.Background(), edit(t, nil), twoDisks, Options{FS: noFS{}, Network: nd})
	if err != nil {
		t.Fatal(err)
	}
	c := job.Configdrive.Content
	if !strings.Contains(string(c.NetworkDataJSON), `"fec0::15/64"`) || !strings.Contains(string(c.NetworkConfig), "static6") {
		t.Errorf("network_data.json:\n%s\nnetwork-config:\n%s", c.NetworkDataJSON, c.NetworkConfig)
	}
	// ks_meta.os_network "document" opts out: the applied network is not
	// passed on (not even checked), the configdrive carries the document's
	// admin NIC as without a ramdisk network.
	plain, err := Prepare(context.Background(), edit(t, nil), twoDisks, Options{FS: noFS{}})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []*netdata.Document{nd, {Links: []netdata.Link{{ID: "a", Type: "phy", Device: "eth0"}}}} {
		optOut, err := Prepare(context.Background(), edit(t, func(m map[string]any) { ksMeta(m)["os_network"] = "document" }), twoDisks,
			Options{FS: noFS{}, Network: n})
		if err != nil {
			t.Fatalf("os_network document: %v", err)
		}
		oc, pc := optOut.Configdrive.Content, plain.Configdrive.Content
		if strings.Contains(string(oc.NetworkDataJSON), "fec0::15") || string(oc.NetworkDataJSON) != string(pc.NetworkDataJSON) ||
			string(oc.NetworkConfig) != string(pc.NetworkConfig) || len(oc.NetworkDataJSON) == 0 {
			t.Errorf("os_network document: network_data.json:\n%s\nnetwork-config:\n%s\nwant the document's admin NIC:\n%s",
				oc.NetworkDataJSON, oc.NetworkConfig, pc.NetworkDataJSON)
		}
	}
	explicit, err := Prepare(context.Background(), edit(t, func(m map[string]any) { ksMeta(m)["os_network"] = "ramdisk" }), twoDisks,
		Options{FS: noFS{}, Network: nd})
	if err != nil || !strings.Contains(string(explicit.Configdrive.Content.NetworkDataJSON), `"fec0::15/64"`) {
		t.Errorf("os_network ramdisk: %v", err)
	}
	bad := &netdata.Document{Links: []netdata.Link{{ID: "a", Type: "phy", Device: "eth0"}}}
	if _, err := Prepare(context.Background(), edit(t, nil), twoDisks, Options{FS: noFS{}, Network: bad}); err == nil ||
		!strings.Contains(err.Error(), "the installed OS needs its MAC") {
		t.Errorf("a network naming a NIC by kernel name: %v", err)
	}
}
