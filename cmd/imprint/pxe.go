//go:build !imprint_ramdisk

package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/imprint-dev/imprint/pxe"
)

const pxeUsage = `usage: imprint pxe --kernel-url URL --initrd-url URL [flags]

Writes the network-boot scripts of the bootstrap ramdisk into --out:

  bootstrap.ipxe         iPXE: kernel + initrd over http(s), command line with
                         imprint.controller= and imprint.token=
  local-exit.ipxe        iPXE: "exit" (the firmware boots the next device, the disk)
  local-sanboot.ipxe     iPXE: "sanboot --drive 0x80" (the first BIOS disk)
  pxelinux.cfg/default   pxelinux: the bootstrap (and pxelinux.cfg/01-<mac> with --mac)
  pxelinux.cfg/local     pxelinux: LOCALBOOT 0

A controller answers a node with bootstrap.ipxe until it is provisioned, then
flips it to a local-*.ipxe. Without --out, bootstrap.ipxe goes to stdout.
`

func runPXE(_ context.Context, env *cmdEnv, args []string) int {
	fs := flag.NewFlagSet("pxe", flag.ContinueOnError)
	fs.SetOutput(env.stderr)
	fs.Usage = func() { fmt.Fprint(env.stderr, pxeUsage); fs.PrintDefaults() }
	var p pxe.PXE
	fs.StringVar(&p.KernelURL, "kernel-url", "", "http(s) URL of the bootstrap kernel (build/bootstrap/<flavour>/vmlinuz)")
	fs.StringVar(&p.InitrdURL, "initrd-url", "", "http(s) URL of the initramfs (initramfs.cpio.gz)")
	fs.StringVar(&p.KernelPath, "kernel-path", "", "TFTP path of the kernel for pxelinux (default: --kernel-url, for lpxelinux)")
	fs.StringVar(&p.InitrdPath, "initrd-path", "", "TFTP path of the initramfs for pxelinux (default: --initrd-url)")
	fs.StringVar(&p.Controller, "controller", "", "controller URL the agent reports to (imprint.controller=)")
	fs.StringVar(&p.Token, "token", "", "agent bearer token (imprint.token=); prefer --token-file")
	tokenFile := fs.String("token-file", "", "file holding the agent bearer token")
	consoles := fs.String("console", "tty0,ttyS0,115200n8", "console= values separated by ';' or a comma list of devices (the last is /dev/console)")
	fs.StringVar(&p.OnExit, "on-exit", "", "imprint.on_exit=: shell, poweroff, reboot or restart")
	extra := fs.String("append", "", "further kernel parameters, space separated")
	mac := fs.String("mac", "", "also write pxelinux.cfg/01-<mac> for this node")
	out := fs.String("out", "", "directory to write the scripts into (default: bootstrap.ipxe to stdout)")
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(env.stderr, "imprint pxe: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if *tokenFile != "" {
		if p.Token != "" {
			fmt.Fprintln(env.stderr, "imprint pxe: --token and --token-file are exclusive")
			return 2
		}
		b, err := os.ReadFile(*tokenFile)
		if err != nil {
			fmt.Fprintf(env.stderr, "imprint pxe: token-file: %v\n", err)
			return 2
		}
		p.Token = strings.TrimSpace(string(b))
	}
	p.Consoles = splitConsoles(*consoles)
	p.Extra = strings.Fields(*extra)

	boot, err := p.IPXEBoot()
	if err != nil {
		fmt.Fprintf(env.stderr, "imprint pxe: %v\n", err)
		return 2
	}
	if *out == "" {
		fmt.Fprint(env.stdout, boot)
		return 0
	}
	lpx, _ := p.PXELinuxBoot()
	exit, _ := pxe.IPXELocal(pxe.LocalExit)
	san, _ := pxe.IPXELocal(pxe.LocalSanboot)
	files := map[string]string{
		"bootstrap.ipxe":       boot,
		"local-exit.ipxe":      exit,
		"local-sanboot.ipxe":   san,
		"pxelinux.cfg/default": lpx,
		"pxelinux.cfg/local":   pxe.PXELinuxLocal(),
	}
	if *mac != "" {
		name, err := pxe.PXELinuxName(*mac)
		if err != nil {
			fmt.Fprintf(env.stderr, "imprint pxe: %v\n", err)
			return 2
		}
		files["pxelinux.cfg/"+name] = lpx
	}
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		content := files[name]
		p := filepath.Join(*out, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			fmt.Fprintf(env.stderr, "imprint pxe: %v\n", err)
			return 1
		}
		// The scripts carry the token: readable by the TFTP/HTTP server's owner only.
		if err := os.WriteFile(p, []byte(content), 0o640); err != nil {
			fmt.Fprintf(env.stderr, "imprint pxe: write %s: %v\n", p, err)
			return 1
		}
		fmt.Fprintln(env.stdout, p)
	}
	return 0
}

// splitConsoles accepts "tty0;ttyS0,115200n8" or the shorthand
// "tty0,ttyS0,115200n8" (a comma before a device name starts a new one).
func splitConsoles(s string) []string {
	if s == "" {
		return nil
	}
	if strings.Contains(s, ";") {
		return strings.Split(s, ";")
	}
	var out []string
	for _, f := range strings.Split(s, ",") {
		if len(out) > 0 && !strings.HasPrefix(f, "tty") && !strings.HasPrefix(f, "hvc") && !strings.HasPrefix(f, "lp") {
			out[len(out)-1] += "," + f // an option of the previous device: ttyS0,115200n8
			continue
		}
		out = append(out, f)
	}
	return out
}
