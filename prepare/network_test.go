package prepare

import (
	"context"
	"strings"
	"testing"

	"github.com/imprint-dev/imprint/netdata"
)

// TestConfigdriveNetwork: Options.Network (the document the ramdisk
// applied) is the installed OS's network; an unusable one is refused with
// the document.
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
	bad := &netdata.Document{Links: []netdata.Link{{ID: "a", Type: "phy", Device: "eth0"}}}
	if _, err := Prepare(context.Background(), edit(t, nil), twoDisks, Options{FS: noFS{}, Network: bad}); err == nil ||
		!strings.Contains(err.Error(), "the installed OS needs its MAC") {
		t.Errorf("a network naming a NIC by kernel name: %v", err)
	}
}
