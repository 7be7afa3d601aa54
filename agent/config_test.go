package agent

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestParseCmdline(t *testing.T) {
	got := ParseCmdline(`BOOT_IMAGE=/vmlinuz console=ttyS0 imprint.token=abc imprint.insecure imprint.x="a b c" quiet` + "\n")
	want := map[string]string{
		"BOOT_IMAGE": "/vmlinuz", "console": "ttyS0", "imprint.token": "abc",
		"imprint.insecure": "", "imprint.x": "a b c", "quiet": "",
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("ParseCmdline (-want +got):\n%s", d)
	}
}

func TestResolvePrecedence(t *testing.T) {
	env := map[string]string{"IMPRINT_LISTEN": "127.0.0.1:8000", "IMPRINT_CONTROLLER": "http://env:1/cb"}
	cmdline := "imprint.listen=0.0.0.0:7000 imprint.controller=http://kernel:2/ imprint.token=fromkernel imprint.insecure imprint.heartbeat=3s imprint.state-dir=/run/x"
	cfg, src, err := Resolve(Values{"listen": "127.0.0.1:9000"}, func(k string) string { return env[k] }, cmdline)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listen != "127.0.0.1:9000" || src["listen"] != FromFlag {
		t.Errorf("listen = %q from %s, want the flag", cfg.Listen, src["listen"])
	}
	if cfg.Controller != "http://env:1/cb" || src["controller"] != FromEnv {
		t.Errorf("controller = %q from %s, want the environment", cfg.Controller, src["controller"])
	}
	if cfg.Token != "fromkernel" || !cfg.Insecure || cfg.Heartbeat != 3*time.Second || src["token"] != FromCmdline {
		t.Errorf("kernel command line not applied: %+v", cfg)
	}
	if cfg.StateDir != "/run/x" {
		t.Errorf("imprint.state-dir (dash spelling) not applied: %q", cfg.StateDir)
	}
	if cfg.LogFormat != "json" || src["log-format"] != FromDefault {
		t.Errorf("log-format = %q from %s, want the default json", cfg.LogFormat, src["log-format"])
	}
	if !cfg.ZeroOffload || src["zero-offload"] != FromDefault {
		t.Errorf("zero-offload = %v from %s, want the default true", cfg.ZeroOffload, src["zero-offload"])
	}
	if cfg, _, err := Resolve(nil, nil, "imprint.zero_offload=false"); err != nil || cfg.ZeroOffload {
		t.Errorf("imprint.zero_offload=false: %v, %v", cfg.ZeroOffload, err)
	}
}

func TestResolveTokenFile(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "token")
	os.WriteFile(f, []byte("s3cret\n"), 0o600)
	cfg, _, err := Resolve(Values{"token-file": f}, nil, "")
	if err != nil || cfg.Token != "s3cret" || cfg.TokenFile != f {
		t.Errorf("token file: cfg %+v, err %v", cfg, err)
	}
	// an explicit token wins over the file
	cfg, _, _ = Resolve(Values{"token-file": f, "token": "direct"}, nil, "")
	if cfg.Token != "direct" {
		t.Errorf("token = %q, want direct", cfg.Token)
	}
	// the default file missing is fine; an explicit missing file is not
	if _, _, err := Resolve(Values{}, nil, "imprint.token_file=/nonexistent/x"); err == nil || !strings.Contains(err.Error(), "token-file (from cmdline)") {
		t.Errorf("missing explicit token file: err %v", err)
	}
}

func TestResolveReportsEveryProblem(t *testing.T) {
	_, _, err := Resolve(Values{"listen": "nope", "controller": "ftp://x", "log-format": "xml", "heartbeat": "-1s", "insecure": "maybe", "power": "always"}, nil, "")
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"listen (from flag)", "controller (from flag)", "log-format", "heartbeat", "insecure", "power"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if _, _, err := Resolve(Values{"controller": "http://u:p@host/"}, nil, ""); err == nil || !strings.Contains(err.Error(), "credentials") {
		t.Errorf("credentials in controller URL accepted: %v", err)
	}
}

func TestRootIsRAM(t *testing.T) {
	for _, tt := range []struct {
		mounts string
		want   bool
	}{
		{"rootfs / rootfs rw 0 0\nproc /proc proc rw 0 0\n", true},
		{"none / tmpfs rw 0 0\n", true},
		{"/dev/vda1 / ext4 rw,relatime 0 0\n", false},
		{"rootfs / rootfs rw 0 0\n/dev/sda1 / ext4 rw 0 0\n", false}, // switched root
	} {
		if got := rootIsRAM(tt.mounts); got != tt.want {
			t.Errorf("rootIsRAM(%q) = %v, want %v", tt.mounts, got, tt.want)
		}
	}
}
