//go:build !imprint_ramdisk

package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imprint-dev/imprint/bootstrap/nodearchive"
)

func TestNodeArchiveCmd(t *testing.T) {
	dir := t.TempDir()
	tok := filepath.Join(dir, "token")
	os.WriteFile(tok, []byte("node-token\n"), 0o600)
	nd := filepath.Join(dir, "net.json")
	os.WriteFile(nd, []byte(`{"links":[{"id":"a","type":"phy","ethernet_mac_address":"52:54:00:00:00:01"}],
		"networks":[{"type":"ipv4","link":"a","ip_address":"10.0.0.5/24"}]}`), 0o644)
	out := filepath.Join(dir, "node.cpio.gz")
	code, stdout, stderr := runCmd(t, "", "imprint", "node-archive", "--token-file", tok, "--network", nd, "-o", out)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(stdout, "network true") {
		t.Errorf("stdout %q", stdout)
	}
	b, _ := os.ReadFile(out)
	files, err := nodearchive.Read(b)
	if err != nil || string(files[nodearchive.TokenFile].Content) != "node-token\n" || files[nodearchive.NetworkFile].Content == nil {
		t.Errorf("archive: %v %v", files, err)
	}
	if fi, _ := os.Stat(out); fi.Mode().Perm() != 0o600 {
		t.Errorf("archive mode %v, want 0600 (it holds the token)", fi.Mode())
	}

	os.WriteFile(nd, []byte(`{"links":[{"id":"v","type":"vlan","vlan_link":"a","vlan_id":0}]}`), 0o644)
	code, _, stderr = runCmd(t, "", "imprint", "node-archive", "--token-file", tok, "--network", nd, "-o", out)
	if code != 1 || !strings.Contains(stderr, "links[0] (v).vlan_id: 0 out of range 1-4094") {
		t.Errorf("bad network: exit %d, %s", code, stderr)
	}
}
