package pxe

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/pxe")

func golden(t *testing.T, name, got string) {
	t.Helper()
	p := filepath.Join("testdata", "pxe", name)
	if *update {
		if err := os.WriteFile(p, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%v (run go test ./bootstrap -run TestPXE -update)", err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("%s (-want +got):\n%s", name, diff)
	}
}

func TestPXEGolden(t *testing.T) {
	p := PXE{
		KernelURL:  "http://10.0.2.2:8080/bootstrap/vmlinuz",
		InitrdURL:  "http://10.0.2.2:8080/bootstrap/initramfs.cpio.gz",
		KernelPath: "imprint/vmlinuz",
		InitrdPath: "imprint/initramfs.cpio.gz",
		Controller: "https://10.0.2.2:8443",
		Token:      "s3cr3t-t0ken",
		OnExit:     "reboot",
		Extra:      []string{"imprint.ip=10.0.2.15/24:::::eth0", "loglevel=4"},
	}
	ipxe, err := p.IPXEBoot()
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "bootstrap.ipxe", ipxe)
	lpx, err := p.PXELinuxBoot()
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "pxelinux-bootstrap.cfg", lpx)
	for _, m := range []LocalBoot{LocalExit, LocalSanboot} {
		s, err := IPXELocal(m)
		if err != nil {
			t.Fatal(err)
		}
		golden(t, "local-"+string(m)+".ipxe", s)
	}
	golden(t, "pxelinux-local.cfg", PXELinuxLocal())

	// Minimal: default consoles, pxelinux over http (lpxelinux).
	min := PXE{KernelURL: "http://h:1/k", InitrdURL: "http://h:1/i"}
	lpx, err = min.PXELinuxBoot()
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "pxelinux-minimal.cfg", lpx)
}

func TestPXEValidate(t *testing.T) {
	p := PXE{KernelURL: "tftp://x/k", Controller: "not a url", Token: `a"b`, Consoles: []string{"tty S0"},
		Extra: []string{"ok", "bad\nline"}, OnExit: "explode"}
	err := p.Validate()
	if err == nil {
		t.Fatal("Validate accepted a broken config")
	}
	for _, s := range []string{"kernel-url:", "initrd-url: required", "controller:", "token:", "console[0]:", "append[1]:", "on-exit:"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("Validate error lacks %q:\n%v", s, err)
		}
	}
	if _, err := IPXELocal("pxe"); err == nil {
		t.Error(`IPXELocal("pxe") accepted`)
	}
}

func TestPXELinuxName(t *testing.T) {
	for in, want := range map[string]string{"52:54:00:12:34:56": "01-52-54-00-12-34-56", "AA-BB-CC-DD-EE-FF": "01-aa-bb-cc-dd-ee-ff"} {
		if got, err := PXELinuxName(in); err != nil || got != want {
			t.Errorf("PXELinuxName(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"52:54:00:12:34", "zz:54:00:12:34:56", "525400123456"} {
		if _, err := PXELinuxName(bad); err == nil {
			t.Errorf("PXELinuxName(%q) accepted", bad)
		}
	}
}
