package controller

import (
	"bytes"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imprint-dev/imprint/bootstrap/nodearchive"
	"github.com/imprint-dev/imprint/netdata"
)

func TestInitrdHandler(t *testing.T) {
	base := filepath.Join(t.TempDir(), "initramfs.cpio.gz")
	baseBytes := []byte("shared-base-initramfs")
	os.WriteFile(base, baseBytes, 0o644)
	nodes := NodeArchiveFunc(func(mac net.HardwareAddr) (nodearchive.Contents, bool, error) {
		switch mac.String() {
		case "52:54:00:00:00:01":
			return nodearchive.Contents{Token: "tok1", Network: &netdata.Document{
				Links: []netdata.Link{{ID: "n", Type: "phy", MAC: "52:54:00:00:00:01"}}}}, true, nil
		case "52:54:00:00:00:02":
			return nodearchive.Contents{Token: "tok2"}, true, nil
		case "52:54:00:00:00:03":
			return nodearchive.Contents{Token: "bad token"}, true, nil
		}
		return nodearchive.Contents{}, false, nil
	})
	srv := httptest.NewServer(http.StripPrefix("/boot/initramfs", InitrdHandler(base, nodes, slog.New(slog.DiscardHandler))))
	defer srv.Close()
	get := func(path string) (int, []byte, http.Header) {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b, resp.Header
	}
	code, b1, h := get("/boot/initramfs/52:54:00:00:00:01")
	if code != 200 || !bytes.HasPrefix(b1, baseBytes) || h.Get("Cache-Control") != "no-store" {
		t.Fatalf("node 1: %d %q %v", code, b1, h)
	}
	files, err := nodearchive.Read(b1[len(baseBytes):])
	if err != nil || string(files[nodearchive.TokenFile].Content) != "tok1\n" || files[nodearchive.NetworkFile].Content == nil {
		t.Errorf("node 1 archive: %v %v", files, err)
	}
	code, b2, _ := get("/boot/initramfs/52-54-00-00-00-02")
	if code != 200 || bytes.Equal(b1, b2) {
		t.Errorf("node 2: %d, same bytes as node 1: %v", code, bytes.Equal(b1, b2))
	}
	files, _ = nodearchive.Read(b2[len(baseBytes):])
	if string(files[nodearchive.TokenFile].Content) != "tok2\n" {
		t.Errorf("node 2 archive: %v", files)
	}
	for path, want := range map[string]struct {
		code int
		msg  string
	}{
		"/boot/initramfs/52:54:00:00:00:09": {404, "no node with MAC 52:54:00:00:00:09"},
		"/boot/initramfs/not-a-mac":         {400, "is not a MAC address"},
		"/boot/initramfs/52:54:00:00:00:03": {500, "token: must not contain whitespace"},
	} {
		code, b, _ := get(path)
		if code != want.code || !strings.Contains(string(b), want.msg) {
			t.Errorf("GET %s = %d %s, want %d %q", path, code, b, want.code, want.msg)
		}
	}
}

// TestIPXEEFI: Config.IPXEEFI is served at /boot/ipxe.efi (UEFI HTTP
// boot's boot file); without it the path is 404; a missing file is refused
// by New, naming the field.
func TestIPXEEFI(t *testing.T) {
	efi := filepath.Join(t.TempDir(), "snponly.efi")
	os.WriteFile(efi, []byte("MZ-ipxe-efi"), 0o644)
	h := newHarness(t, func(c *Config) { c.IPXEEFI = efi })
	resp, err := http.Get(h.srv.URL + "/boot/ipxe.efi")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "MZ-ipxe-efi" || resp.Header.Get("Content-Type") != "application/efi" {
		t.Errorf("GET /boot/ipxe.efi = %d %q, Content-Type %q", resp.StatusCode, body, resp.Header.Get("Content-Type"))
	}
	head, err := http.Head(h.srv.URL + "/boot/ipxe.efi")
	if err != nil {
		t.Fatal(err)
	}
	head.Body.Close()
	if head.StatusCode != 200 || head.ContentLength != int64(len("MZ-ipxe-efi")) || head.Header.Get("Content-Type") != "application/efi" {
		t.Errorf("HEAD /boot/ipxe.efi (UEFI HTTP boot asks it first) = %d, length %d, Content-Type %q", head.StatusCode, head.ContentLength, head.Header.Get("Content-Type"))
	}
	if code, _ := newHarness(t, nil).get("/boot/ipxe.efi"); code != 404 {
		t.Errorf("without IPXEEFI: GET /boot/ipxe.efi = %d, want 404", code)
	}
	cfg := newHarness(t, nil).cfg
	cfg.IPXEEFI = filepath.Join(t.TempDir(), "missing.efi")
	cfg.Store = testStore(t)
	if _, err := New(cfg); err == nil || !strings.Contains(err.Error(), "ipxe-efi") {
		t.Errorf("New with a missing ipxe-efi: %v", err)
	}
}
