package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestConfigdriveCommand(t *testing.T) {
	fixture := filepath.Join("..", "..", "configdrive", "testdata", "provision_fuel90_ubuntu_1disk.json")
	dir := t.TempDir()
	run := func(argv ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := dispatch(context.Background(), &cmdEnv{stdout: &out, stderr: &errb}, argv)
		return code, out.String(), errb.String()
	}
	for _, f := range []string{"nocloud-vfat", "nocloud-iso", "config2-vfat", "config2-iso"} {
		img := filepath.Join(dir, f+".img")
		code, out, errs := run("imprint", "configdrive", fixture, "-o", img, "--format", f, "--size", "8")
		if code != 0 || !strings.Contains(out, "wrote "+f+" configdrive") {
			t.Fatalf("configdrive --format %s: %d\n%s%s", f, code, out, errs)
		}
		if st, err := os.Stat(img); err != nil || st.Size() != 8<<20 {
			t.Errorf("%s: %v, size %v", img, err, st)
		}
		if !strings.Contains(errs, "warning: ks_meta.authorized_keys[0]: passed on") {
			t.Errorf("warnings not printed: %s", errs)
		}
	}
	// fuel-agent's console script name, --dump.
	code, _, errs := run("/usr/bin/fa_configdrive", fixture, "-o", filepath.Join(dir, "x.img"), "--dump", filepath.Join(dir, "dump"))
	if code != 0 {
		t.Fatalf("fa_configdrive: %d %s", code, errs)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "dump", "openstack", "latest", "meta_data.json")); err != nil || !bytes.Contains(b, []byte("node-4.domain.tld")) {
		t.Errorf("--dump: %v %s", err, b)
	}
	// --dump into a path below a regular file: the write error is reported
	// and the command fails (it used to be dropped and exit 0).
	blocker := filepath.Join(dir, "blocker")
	if err := os.WriteFile(blocker, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{fixture, "-o", filepath.Join(dir, "d.img"), "--dump", blocker}, 1, "configdrive: --dump: mkdir " + blocker},
		{[]string{fixture}, 2, "want FILE and -o OUTPUT"},
		{[]string{fixture, "-o", filepath.Join(dir, "y"), "--format", "ext2"}, 2, `format "ext2": unknown`},
		{[]string{fixture, "-o", filepath.Join(dir, "y"), "--size", "0"}, 2, "--size 0: must be > 0"},
		{[]string{"missing.json", "-o", filepath.Join(dir, "y")}, 2, "missing.json"},
	} {
		code, _, errs := run(append([]string{"imprint", "configdrive"}, tt.args...)...)
		if code != tt.code || !strings.Contains(errs, tt.want) {
			t.Errorf("configdrive %v = %d %q; want %d and %q", tt.args, code, errs, tt.code, tt.want)
		}
	}
	// A document whose admin MAC matches no interface.
	data, _ := os.ReadFile(fixture)
	bad := filepath.Join(dir, "bad.json")
	os.WriteFile(bad, bytes.Replace(data, []byte(`"netcfg/choose_interface": "52:54:00:16:ea:68"`), []byte(`"netcfg/choose_interface": "52:54:00:00:00:99"`), 1), 0o644)
	code, _, errs = run("imprint", "configdrive", bad, "-o", filepath.Join(dir, "z.img"))
	if code != 2 || !strings.Contains(errs, `kernel_options["netcfg/choose_interface"]: no interface has MAC address "52:54:00:00:00:99"`) {
		t.Errorf("bad admin MAC: %d %s", code, errs)
	}
}
