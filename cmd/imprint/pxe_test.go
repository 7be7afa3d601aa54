//go:build !imprint_ramdisk

package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/imprint-dev/imprint/pxe"
)

func TestPXECommandWritesScripts(t *testing.T) {
	dir := t.TempDir()
	tok := filepath.Join(dir, "token")
	os.WriteFile(tok, []byte("t0k\n"), 0o600)
	out := filepath.Join(dir, "pxe")
	var stdout, stderr bytes.Buffer
	env := &cmdEnv{stdout: &stdout, stderr: &stderr}
	rc := runPXE(context.Background(), env, []string{"--out", out, "--kernel-url", "http://10.0.2.2:8080/vmlinuz",
		"--initrd-url", "http://10.0.2.2:8080/initramfs.cpio.gz", "--controller", "http://10.0.2.2:8080",
		"--token-file", tok, "--mac", "52:54:00:12:34:56", "--console", "tty0,ttyS1,115200n8"})
	if rc != 0 {
		t.Fatalf("rc = %d, stderr: %s", rc, stderr.String())
	}
	names := []string{"bootstrap.ipxe", "local-exit.ipxe", "local-sanboot.ipxe", "pxelinux.cfg/01-52-54-00-12-34-56", "pxelinux.cfg/default", "pxelinux.cfg/local"}
	var want []string
	for _, n := range names {
		want = append(want, filepath.Join(out, n))
	}
	if diff := cmp.Diff(want, strings.Fields(stdout.String())); diff != "" {
		t.Errorf("files written (-want +got):\n%s", diff)
	}
	p := pxe.PXE{KernelURL: "http://10.0.2.2:8080/vmlinuz", InitrdURL: "http://10.0.2.2:8080/initramfs.cpio.gz",
		Controller: "http://10.0.2.2:8080", Token: "t0k", Consoles: []string{"tty0", "ttyS1,115200n8"}}
	wantBoot, _ := p.IPXEBoot()
	got, _ := os.ReadFile(filepath.Join(out, "bootstrap.ipxe"))
	if diff := cmp.Diff(wantBoot, string(got)); diff != "" {
		t.Errorf("bootstrap.ipxe (-want +got):\n%s", diff)
	}
	byMAC, _ := os.ReadFile(filepath.Join(out, "pxelinux.cfg/01-52-54-00-12-34-56"))
	def, _ := os.ReadFile(filepath.Join(out, "pxelinux.cfg/default"))
	if !bytes.Equal(byMAC, def) || !bytes.Contains(def, []byte("imprint.token=t0k")) {
		t.Errorf("pxelinux per-MAC entry differs from default or lacks the token:\n%s", byMAC)
	}
}

func TestPXECommandErrors(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--initrd-url", "http://h/i"}, "kernel-url: required"},
		{[]string{"--kernel-url", "http://h/k", "--initrd-url", "http://h/i", "--token", "a", "--token-file", "f"}, "exclusive"},
		{[]string{"--kernel-url", "http://h/k", "--initrd-url", "http://h/i", "--out", "x", "--mac", "nope"}, `mac "nope"`},
		{[]string{"extra"}, "unexpected argument"},
	}
	for _, tt := range tests {
		var stderr bytes.Buffer
		rc := runPXE(context.Background(), &cmdEnv{stdout: &bytes.Buffer{}, stderr: &stderr}, tt.args)
		if rc != 2 || !strings.Contains(stderr.String(), tt.want) {
			t.Errorf("runPXE(%v) = %d, stderr %q; want 2 and %q", tt.args, rc, stderr.String(), tt.want)
		}
	}
}

func TestSplitConsoles(t *testing.T) {
	for in, want := range map[string][]string{
		"tty0,ttyS0,115200n8": {"tty0", "ttyS0,115200n8"},
		"ttyS1,9600;tty0":     {"ttyS1,9600", "tty0"},
		"hvc0":                {"hvc0"},
	} {
		if diff := cmp.Diff(want, splitConsoles(in)); diff != "" {
			t.Errorf("splitConsoles(%q) (-want +got):\n%s", in, diff)
		}
	}
}

// On a normal machine ramdisk-init refuses before touching anything.
func TestRamdiskInitRefuses(t *testing.T) {
	for _, args := range [][]string{nil, {"--i-am-the-ramdisk"}} {
		var stderr bytes.Buffer
		rc := runRamdiskInit(context.Background(), &cmdEnv{stdout: &bytes.Buffer{}, stderr: &stderr}, args)
		if rc != 2 || !strings.Contains(stderr.String(), "refusing: not the imprint bootstrap ramdisk") {
			t.Errorf("ramdisk-init %v = %d, stderr %q; want a refusal", args, rc, stderr.String())
		}
	}
}
