package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/imprint-dev/imprint/bootstrap/nodearchive"
	"github.com/imprint-dev/imprint/netdata"
)

const nodeArchiveUsage = `usage: imprint node-archive --token-file F [--network F] [--ca F] -o OUT

Writes one node's initramfs archive (gzip-compressed newc cpio) to OUT:
/etc/imprint/token, and /etc/imprint/network_data.json and /etc/imprint/ca.pem
when given. Appended to the shared bootstrap initramfs it gives the node its
credentials and network without the kernel command line:

  cat build/bootstrap/amd64/initramfs.cpio.gz node1.cpio.gz > node1-initrd

(or list both on iPXE's initrd lines). The network document is validated
first: every problem is reported with its field.
`

func runNodeArchive(_ context.Context, env *cmdEnv, args []string) int {
	fs := flag.NewFlagSet("node-archive", flag.ContinueOnError)
	fs.SetOutput(env.stderr)
	fs.Usage = func() { fmt.Fprint(env.stderr, nodeArchiveUsage); fs.PrintDefaults() }
	tokenFile := fs.String("token-file", "", "file holding the node's agent token (required)")
	network := fs.String("network", "", "the node's network_data.json")
	ca := fs.String("ca", "", "PEM CA bundle the agent trusts for HTTPS")
	out := fs.String("o", "", "output file (required)")
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 2
	}
	if *tokenFile == "" || *out == "" || fs.NArg() > 0 {
		fs.Usage()
		return 2
	}
	fail := func(format string, a ...any) int {
		fmt.Fprintf(env.stderr, "imprint node-archive: "+format+"\n", a...)
		return 1
	}
	tok, err := os.ReadFile(*tokenFile)
	if err != nil {
		return fail("%v", err)
	}
	c := nodearchive.Contents{Token: strings.TrimSpace(string(tok))}
	if *network != "" {
		b, err := os.ReadFile(*network)
		if err != nil {
			return fail("%v", err)
		}
		if c.Network, err = netdata.Parse(b); err != nil {
			return fail("%s: %v", *network, err)
		}
	}
	if *ca != "" {
		if c.CABundle, err = os.ReadFile(*ca); err != nil {
			return fail("%v", err)
		}
	}
	b, err := nodearchive.Build(c)
	if err != nil {
		return fail("%v", err)
	}
	if err := os.WriteFile(*out, b, 0o600); err != nil { // it holds the token
		return fail("%v", err)
	}
	fmt.Fprintf(env.stdout, "%s: %d bytes (token, network %v, CA bundle %v)\n", *out, len(b), c.Network != nil, c.CABundle != nil)
	return 0
}
