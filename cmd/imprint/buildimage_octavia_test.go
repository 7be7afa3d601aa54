//go:build !imprint_ramdisk

package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// octaviaEnv gives the Octavia mode a home (its default cache) and a clean
// DIB_* environment, and runs it in a temporary directory.
func octaviaEnv(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	t.Chdir(dir)
	t.Setenv("HOME", filepath.Join(dir, "home"))
	for _, v := range []string{"DIB_DISTRIBUTION_MIRROR", "DIB_ELEMENTS", "DIB_LOCAL_ELEMENTS", "DIB_LOCAL_ELEMENTS_PATH", "ELEMENTS_PATH", "DIB_RELEASE"} {
		t.Setenv(v, "")
	}
	t.Setenv("DIB_DISTRIBUTION_MIRROR", "http://mirror.invalid/debian")
	return dir
}

// No argument: Octavia's default amphora image (Debian bookworm from the
// mirror, amd64, 5 GB qcow2, haproxy, root locked), shown as a dry run.
func TestBuildImageOctaviaDefaultsDryRun(t *testing.T) {
	dir := octaviaEnv(t)
	code, out, errs := runCmd(t, "", "imprint", "build-image", "--dry-run")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	home := filepath.Join(dir, "home")
	for _, w := range []string{
		"debootstrap --verbose --arch=amd64 --variant=minbase --include=ca-certificates,eatmydata --unpack-tarball=" + home + "/.cache/image-create/debootstrap-bookworm-amd64-minbase.tgz bookworm",
		" http://mirror.invalid/debian\n",
		"install initramfs-tools linux-image-cloud-amd64 grub-pc",
		" keepalived ipvsadm conntrack iptables iputils-ping ethtool netcat-openbsd socat rsyslog logrotate haproxy path=",
		"hook install.d/75-haproxy-config (element haproxy)",
		"disk image: disk-image path=" + dir + "/amphora-x64-haproxy.qcow2 source=",
		"size=5368709120",
		"compress /: compress path=" + dir + "/amphora-x64-haproxy.root.img.zst",
		"metadata: metadata path=" + dir + "/amphora-x64-haproxy.yaml",
	} {
		if !strings.Contains(out, w) {
			t.Errorf("dry run lacks %q:\n%s", w, out)
		}
	}
	for _, no := range []string{"root password", "rootfs tarball"} {
		if strings.Contains(out, no+":") {
			t.Errorf("default plan has %q", no)
		}
	}
	if !strings.Contains(errs, "mode=octavia") || !strings.Contains(errs, "root_password=false") {
		t.Errorf("log: %s", errs)
	}
	if m, _ := filepath.Glob(filepath.Join(dir, "imprint-*")); len(m) > 0 {
		t.Errorf("left in the working directory: %v", m)
	}
}

// Octavia's flags, long names and the DIB_* variables.
func TestBuildImageOctaviaFlags(t *testing.T) {
	dir := octaviaEnv(t)
	local := filepath.Join(dir, "local")
	for _, el := range []string{"mine", "dep"} {
		if err := os.MkdirAll(filepath.Join(local, el, "install.d"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(local, el, "install.d", "50-"+el), []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(local, "mine", "element-deps"), []byte("dep\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("DIB_LOCAL_ELEMENTS", "mine")
	t.Setenv("DIB_LOCAL_ELEMENTS_PATH", local)
	code, out, errs := runCmd(t, "", "imprint", "build-image", "--dry-run", "-r", "s3cret", "-s", "3", "-t", "qcow2,tar",
		"--output-name", "out/lb.qcow2", "-c", "cache", "-w", "work", "-a", "x86_64")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	for _, w := range []string{
		"root password: chroot chpasswd path=", "stdin=<secret>",
		"rootfs tarball: tar path=" + dir + "/out/lb.tar source=" + dir + "/work/DRYRUN.fuel-agent-image",
		"disk-image path=" + dir + "/out/lb.qcow2", "size=3221225472",
		"--unpack-tarball=" + dir + "/cache/debootstrap-bookworm-amd64-minbase.tgz",
		"hook install.d/50-dep (element dep)", "hook install.d/50-mine (element mine)", "hook install.d/75-haproxy-config (element haproxy)",
		"IMAGE_ELEMENT=haproxy dep mine",
	} {
		if !strings.Contains(out, w) {
			t.Errorf("dry run lacks %q:\n%s", w, out)
		}
	}
	if strings.Contains(out, "s3cret") || strings.Contains(errs, "s3cret") {
		t.Errorf("the root password is shown")
	}
	// DIB_ELEMENTS replaces the backend element
	t.Setenv("DIB_ELEMENTS", "mine")
	t.Setenv("DIB_LOCAL_ELEMENTS", "")
	code, out, errs = runCmd(t, "", "imprint", "build-image", "--dry-run", "-t", "tar")
	if code != 0 || strings.Contains(out, "haproxy-config") || !strings.Contains(out, "(element mine)") || strings.Contains(out, "disk-image") {
		t.Errorf("DIB_ELEMENTS=mine -t tar: exit %d %s\n%s", code, errs, out)
	}
}

func TestBuildImageOctaviaRefusals(t *testing.T) {
	octaviaEnv(t)
	for _, tt := range []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"armhf", []string{"-a", "armhf"}, nil, "-a armhf: cannot be built here: only amd64"},
		{"i386", []string{"--arch", "i386"}, nil, "-a i386: cannot be built here"},
		{"fedora", []string{"-i", "fedora"}, nil, "-i fedora: cannot be built here: imprint builds Debian-family images"},
		{"ubuntu without mirror", []string{"-i", "ubuntu"}, map[string]string{"DIB_DISTRIBUTION_MIRROR": ""}, "-i ubuntu: needs DIB_DISTRIBUTION_MIRROR"},
		{"backend", []string{"-b", "nginx"}, nil, `-b "nginx": not a backend (haproxy is the only one)`},
		{"type", []string{"-t", "vhd"}, nil, `-t "vhd": not an image type (qcow2, raw, tar)`},
		{"size", []string{"-s", "big"}, nil, `-s "big": want a size in GB`},
		{"zero size", []string{"-s", "0"}, nil, "-s 0: the image size in GB must be 1 to 2048"},
		{"local elements without path", nil, map[string]string{"DIB_LOCAL_ELEMENTS": "x"}, "DIB_LOCAL_ELEMENTS is set but DIB_LOCAL_ELEMENTS_PATH is not"},
		{"missing element", nil, map[string]string{"DIB_ELEMENTS": "nosuch"}, `element "nosuch": not found in ELEMENTS_PATH`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			code, _, errs := runCmd(t, "", append([]string{"imprint", "build-image", "--dry-run"}, tt.args...)...)
			if code != 2 || !strings.Contains(errs, tt.want) {
				t.Errorf("exit %d, stderr %q; want 2 and %q", code, errs, tt.want)
			}
		})
	}
}

// -i ubuntu with a mirror: Ubuntu's codename, components and package names.
func TestBuildImageOctaviaUbuntu(t *testing.T) {
	octaviaEnv(t)
	t.Setenv("DIB_DISTRIBUTION_MIRROR", "http://mirror.invalid/ubuntu")
	code, out, errs := runCmd(t, "", "imprint", "build-image", "--dry-run", "-i", "ubuntu")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	for _, w := range []string{"debootstrap-jammy-amd64-minbase.tgz jammy", `data="deb http://mirror.invalid/ubuntu jammy main universe\n"`,
		" linux-image-virtual ", " netplan.io ", "DISTRO_NAME=ubuntu"} {
		if !strings.Contains(out, w) {
			t.Errorf("ubuntu dry run lacks %q", w)
		}
	}
	for _, no := range []string{"linux-image-cloud-amd64", " ifupdown "} {
		if strings.Contains(out, no) {
			t.Errorf("ubuntu dry run has Debian's %q", no)
		}
	}
}
