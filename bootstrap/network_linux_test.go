package bootstrap

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestNetworkDocumentSource: the per-node archive's document wins over the
// kernel command line's; a broken one is an error naming the file and
// field; with neither there is no document (DHCP on every NIC).
func TestNetworkDocumentSource(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "network_data.json")
	cmd, err := NetFromCmdline(ParseCmdline("ip=10.0.0.5::10.0.0.1:255.255.255.0::eth0:none"))
	if err != nil {
		t.Fatal(err)
	}
	s := &NetworkStep{Cmdline: cmd, DocFile: file, Log: slog.New(slog.DiscardHandler)}

	d, src, err := s.document()
	if err != nil || src != "kernel command line ip" || d.Links[0].Device != "eth0" {
		t.Errorf("no file: %+v from %q, %v; want the command line's", d, src, err)
	}
	os.WriteFile(file, []byte(`{"links":[{"id":"a","type":"phy","ethernet_mac_address":"52:54:00:00:00:01"}],"networks":[{"type":"ipv4_dhcp","link":"a"}]}`), 0o644)
	d, src, err = s.document()
	if err != nil || src != file || d.Links[0].MAC != "52:54:00:00:00:01" {
		t.Errorf("file: %+v from %q, %v; want the file's", d, src, err)
	}
	os.WriteFile(file, []byte(`{"links":[{"id":"a","type":"phy"}]}`), 0o644)
	if _, _, err = s.document(); err == nil || !strings.Contains(err.Error(), file) || !strings.Contains(err.Error(), "links[0] (a).ethernet_mac_address: required") {
		t.Errorf("broken file: %v", err)
	}
	none := &NetworkStep{DocFile: filepath.Join(dir, "absent"), Log: slog.New(slog.DiscardHandler)}
	if d, _, err := none.document(); d != nil || err != nil {
		t.Errorf("nothing: %+v, %v; want no document", d, err)
	}
}
