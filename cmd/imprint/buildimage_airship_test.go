//go:build !imprint_ramdisk

package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestBuildImageAirshipDryRun(t *testing.T) {
	doc := "../../imagebuild/testdata/airship/image-configuration.yaml"
	out := t.TempDir()
	code, stdout, errs := runCmd(t, "", "imprint", "build-image", "--dry-run", "--mirror", "http://mirror.invalid/debian", "--variant", "minbase",
		"--output", out, "--image_build_dir", "/work-dir", doc)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	for _, w := range []string{
		"# build-iso airship-live: " + filepath.Join(out, "airship-live.iso") + " (metadata " + filepath.Join(out, "output-metadata.yaml") + ")",
		"live-boot less path=",
		"file /var/lib/cloud/seed/nocloud/user-data (files[2]): write path=",
		`file /etc/hostname (files[0]): write path=/work-dir/DRYRUN.fuel-agent-image/etc/hostname mode=644 data="airship-node\n"`,
		"rootfs tarball: tar path=/work-dir/imprint-airship-airship-live/root.tar",
		"iso: grub-mkrescue: run grub-mkrescue -o " + filepath.Join(out, "airship-live.iso.part"),
	} {
		if !strings.Contains(stdout, w) {
			t.Errorf("dry run lacks %q:\n%s", w, stdout)
		}
	}
	// the AirshipImage CR, build-qcow: the disk image and its partition sizes
	code, stdout, errs = runCmd(t, "", "imprint", "build-image", "--dry-run", "--mirror", "http://mirror.invalid/debian",
		"--output", out, "../../imagebuild/testdata/airship/airship-image.yaml")
	if code != 0 {
		t.Fatalf("AirshipImage: exit %d: %s", code, errs)
	}
	if w := "disk image: disk-image path=" + filepath.Join(out, "base.qcow2"); !strings.Contains(stdout, w) || !strings.Contains(stdout, "size=3221225472") {
		t.Errorf("AirshipImage dry run lacks %q size=3221225472:\n%s", w, stdout)
	}
}

func TestBuildImageAirshipFlagConflict(t *testing.T) {
	code, _, errs := runCmd(t, "kind: AirshipImage/v1\nname: x\nspec: {action: build-iso}\n", "imprint", "build-image", "--dry-run", "--disk", "/tmp/x.qcow2", "-")
	if want := "--disk: an Airship document says what it builds"; code != 2 || !strings.Contains(errs, want) {
		t.Errorf("exit %d, stderr %q; want 2 and %q", code, errs, want)
	}
}

func TestBuildImageAirshipErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	noUD := write("no-ud.yaml", "kind: AirshipImage/v1\nname: x\nspec:\n  action: build-iso\n  builder: {userDataFileName: missing-user-data}\n")
	write("bad-ud", "users: []\n")
	badUD := write("bad-ud.yaml", "kind: AirshipImage/v1\nname: x\nspec:\n  action: build-iso\n  builder: {userDataFileName: bad-ud}\n")
	for _, tt := range []struct {
		name, in, doc, want string
	}{
		{"unknown field", "apiVersion: airshipit.org/v1alpha1\nkind: ImageConfiguration\nmetadata: {name: x}\nspec:\n  acton: build-iso\n", "-", "field acton not found in type imagebuild.AirshipSpec"},
		{"invalid", "kind: AirshipImage/v1\nname: x\nspec:\n  action: build-usb\n", "-", "invalid airship document:\nspec.action: \"build-usb\" is not one of build-root, build-iso, build-qcow"},
		{"missing user-data", "", noUD, "builder.userDataFileName: open " + filepath.Join(dir, "missing-user-data") + ": no such file or directory"},
		{"bad user-data", "", badUD, `spec.builder.userDataFileName "bad-ud": first line "users: []": want #cloud-config`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, _, errs := runCmd(t, tt.in, "imprint", "build-image", "--dry-run", "--mirror", "http://mirror.invalid/debian", tt.doc)
			if code != 2 || !strings.Contains(errs, tt.want) {
				t.Errorf("exit %d, stderr %q; want 2 and %q", code, errs, tt.want)
			}
		})
	}
}
