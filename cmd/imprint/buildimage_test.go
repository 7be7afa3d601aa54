//go:build !imprint_ramdisk

package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func runCmd(t *testing.T, stdin string, argv ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	env := &cmdEnv{stdin: strings.NewReader(stdin), stdout: &out, stderr: &errb}
	code := dispatch(context.Background(), env, argv)
	return code, out.String(), errb.String()
}

const buildCfg = `{"image_data": {"/": {"container": "gzip", "format": "ext4", "uri": "http://10.0.2.2:8080/t/deb.img.gz"}},
 "output": "/srv/images", "codename": "bookworm",
 "repos": [{"name": "debian", "type": "deb", "uri": "http://mirror.invalid/debian", "suite": "bookworm", "section": "main", "priority": null}]}`

func TestBuildImageDryRun(t *testing.T) {
	code, out, errs := runCmd(t, buildCfg, "imprint", "build-image", "--dry-run", "--variant", "minbase", "--compress", "zstd", "-")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	for _, w := range []string{
		"debootstrap: run debootstrap --verbose --arch=amd64 --variant=minbase --include=ca-certificates,eatmydata bookworm",
		"linux-image-cloud-amd64 grub-pc grub-efi-amd64-bin grub-efi-amd64-signed shim-signed efibootmgr mokutil lvm2 mdadm cloud-init",
		`compress /: compress path=/srv/images/deb.img.gz`,
		`data="zstd"`,
		"metadata: metadata path=/srv/images/deb.yaml",
	} {
		if !strings.Contains(out, w) {
			t.Errorf("dry run lacks %q:\n%s", w, out)
		}
	}
	// fuel-agent's invocation, through the alias
	code, out, errs = runCmd(t, "", "fa_build_image", "--data_driver", "nailgun_build_image", "--dry-run", "--kernel", "generic", "--input_data", buildCfg)
	if code != 0 || !strings.Contains(out, " linux-image-amd64 ") {
		t.Errorf("fa_build_image --input_data: exit %d, %s\n%s", code, errs, out)
	}
}

func TestBuildImageUsageErrors(t *testing.T) {
	for _, tt := range []struct {
		name string
		argv []string
		in   string
		want string
	}{
		{"two configs", []string{"imprint", "build-image", "a.json", "b.json"}, "", "want CONFIG.json or --input_data, got 2 argument(s)"},
		{"bad driver", []string{"imprint", "build-image", "--data_driver", "nailgun", "-"}, buildCfg, `--data_driver "nailgun": only nailgun_build_image`},
		{"bad size", []string{"imprint", "build-image", "--image-size", "big", "-"}, buildCfg, `--image-size: "big" is not a size`},
		{"invalid config", []string{"imprint", "build-image", "-"}, `{"image_data": {"/": {"container": "lz4", "format": "ext4", "uri": "x.img"}}, "output": "rel", "repos": [{"name": "d", "type": "deb", "uri": "http://m.invalid/d", "suite": "bookworm", "section": "main"}]}`,
			"invalid config:\nimage_data[\"/\"].container: \"lz4\" is not one of gzip, zstd, raw\noutput: \"rel\" must be an absolute path"},
		{"missing file", []string{"imprint", "build-image", "/nonexistent/cfg.json"}, "", "no such file or directory"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, _, errs := runCmd(t, tt.in, tt.argv...)
			if code != 2 || !strings.Contains(errs, tt.want) {
				t.Errorf("exit %d, stderr %q; want 2 and %q", code, errs, tt.want)
			}
		})
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"8G": 8 << 30, "512M": 512 << 20, "1048576": 1 << 20} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v", in, got, err)
		}
	}
	for _, in := range []string{"", "0", "-1G", "1T"} {
		if _, err := parseSize(in); err == nil {
			t.Errorf("parseSize(%q) accepted", in)
		}
	}
}
