package nodearchive

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/imprint-dev/imprint/internal/testenv"
	"github.com/imprint-dev/imprint/netdata"
	"github.com/u-root/u-root/pkg/cpio"
)

func testCA(t *testing.T) []byte {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func testDoc(mac string) *netdata.Document {
	return &netdata.Document{
		Links:    []netdata.Link{{ID: "nic", Type: "phy", MAC: mac}},
		Networks: []netdata.Network{{ID: "n", Type: "ipv4", Link: "nic", IPAddress: "10.0.2.15/24", Gateway: "10.0.2.2"}},
	}
}

func TestBuildReadBack(t *testing.T) {
	ca := testCA(t)
	c := Contents{Token: "tok-node1", Network: testDoc("52:54:00:00:00:01"), CABundle: ca}
	b, err := Build(c)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := Build(c)
	if !bytes.Equal(b, again) {
		t.Errorf("Build is not deterministic")
	}
	files, err := Read(b)
	if err != nil {
		t.Fatal(err)
	}
	if f := files[TokenFile]; string(f.Content) != "tok-node1\n" || f.Mode != cpio.S_IFREG|0o600 {
		t.Errorf("%s = %q mode %o", TokenFile, f.Content, f.Mode)
	}
	if f := files[Dir]; f.Mode != cpio.S_IFDIR|0o755 {
		t.Errorf("%s mode %o", Dir, f.Mode)
	}
	d, err := netdata.Parse(files[NetworkFile].Content)
	if err != nil || d.Links[0].MAC != "52:54:00:00:00:01" {
		t.Errorf("%s: %v %+v", NetworkFile, err, d)
	}
	if !bytes.Equal(files[CABundleFile].Content, ca) {
		t.Errorf("%s differs", CABundleFile)
	}

	// Another node's archive differs; one without network or CA has neither file.
	other, err := Build(Contents{Token: "tok-node2"})
	if err != nil {
		t.Fatal(err)
	}
	of, _ := Read(other)
	if _, ok := of[NetworkFile]; ok || string(of[TokenFile].Content) != "tok-node2\n" || len(of) != 3 {
		t.Errorf("node2 archive: %v", of)
	}
}

// TestRealCpio extracts the archive with GNU cpio (as the kernel's
// initramfs unpacker would, newc after gzip).
func TestRealCpio(t *testing.T) {
	testenv.RequireTool(t, "cpio")
	b, err := Build(Contents{Token: "secret", Network: testDoc("52:54:00:00:00:09")})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cmd := exec.Command("sh", "-c", "gzip -dc | cpio -idm --no-absolute-filenames --quiet")
	cmd.Dir, cmd.Stdin = dir, bytes.NewReader(b)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("gzip -dc | cpio -i: %v\n%s", err, out)
	}
	fi, err := os.Stat(filepath.Join(dir, TokenFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("token: %v %v", fi, err)
	}
	got, _ := os.ReadFile(filepath.Join(dir, TokenFile))
	nd, _ := os.ReadFile(filepath.Join(dir, NetworkFile))
	if string(got) != "secret\n" || !strings.Contains(string(nd), "52:54:00:00:00:09") {
		t.Errorf("extracted token %q, network %s", got, nd)
	}
}

func TestValidate(t *testing.T) {
	bad := &netdata.Document{Links: []netdata.Link{{ID: "v", Type: "vlan", VLANLink: "x", VLANID: 5000}}}
	for _, tt := range []struct {
		c    Contents
		want []string
	}{
		{Contents{}, []string{"token: required"}},
		{Contents{Token: "a b"}, []string{"token: must not contain whitespace"}},
		{Contents{Token: strings.Repeat("x", MaxTokenLen+1)}, []string{"more than 4096"}},
		{Contents{Token: "t", Network: bad}, []string{"network: network_data.json: invalid", "vlan_id: 5000 out of range"}},
		{Contents{Token: "t", CABundle: []byte("junk")}, []string{"ca bundle: no PEM certificate"}},
		{Contents{Token: "t", CABundle: pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1}})}, []string{`"PRIVATE KEY", want CERTIFICATE`}},
	} {
		_, err := Build(tt.c)
		for _, w := range tt.want {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("Build(%+v) = %v, want %q", tt.c.Token, err, w)
			}
		}
	}
}
