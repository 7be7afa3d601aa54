//go:build !imprint_ramdisk

package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/imprint-dev/imprint/api"
	"github.com/imprint-dev/imprint/controller"
)

const nodesUsage = `usage: imprint nodes --controller URL --token T COMMAND [ARGS]

Shows what a controller (imprint controller) knows about its nodes, over its
operator API (/v1/nodes).

commands:
  list [-o json]         every node: round, phase, boot, last job state
  show NODE [-o json]    one node (MAC or host name): its timeline and the last
                         result with its error's step, device and reason
  reprovision NODE --reason TEXT
                         flip the node back to the bootstrap and power-cycle it
                         through its BMC (through its agent when it has no BMC
                         and the agent runs); the reason goes into its timeline
  enroll NODE --bmc URL --bmc-user USER --bmc-password-file FILE [--bmc-insecure]
                         record the node's BMC once it answered with these
                         credentials: ipmi://HOST[:PORT][?cipher=N] or
                         redfish://HOST[:PORT][/SYSTEM-ID] (the password may
                         also come from IMPRINT_BMC_PASSWORD; never from a flag)
  power on|off|cycle NODE [--reason TEXT]
                         power action through the node's BMC
  power status NODE      the node's power state as its BMC reports it
  events NODE [-f]       the node's timeline; -f follows it as it grows

The controller URL may also come from IMPRINT_CONTROLLER, the operator token
from IMPRINT_CONTROLLER_TOKEN. Whatever the nodes reported is printed with
control characters escaped.
`

func runNodes(ctx context.Context, env *cmdEnv, args []string) int {
	fs := newFlagSet(env, "nodes", nodesUsage)
	ctlURL := fs.String("controller", envOr("IMPRINT_CONTROLLER", "http://127.0.0.1:8080"), "controller base URL (env IMPRINT_CONTROLLER)")
	token := fs.String("token", "", "the controller's operator token (env IMPRINT_CONTROLLER_TOKEN)")
	timeout := fs.Duration("timeout", 3*time.Minute, "timeout of the request (a power cycle waits for the BMC)")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return 2
	}
	tok := *token
	if tok == "" {
		tok = os.Getenv("IMPRINT_CONTROLLER_TOKEN")
	}
	cmd := fs.Arg(0)
	sub := flag.NewFlagSet("nodes "+cmd, flag.ContinueOnError)
	sub.SetOutput(env.stderr)
	output := sub.String("o", "table", "output: table or json")
	var nf nodeFlags
	nf.register(sub)
	pos, code, ok := parseInterspersed(sub, fs.Args()[1:]) // flags may follow NODE
	if !ok {
		return code
	}
	if *output != "table" && *output != "json" {
		fmt.Fprintf(env.stderr, "nodes: -o %q: want table or json\n", *output)
		return 2
	}
	want := map[string]int{"list": 0, "show": 1, "reprovision": 1, "enroll": 1, "power": 2, "events": 1}
	n, ok := want[cmd]
	if !ok {
		fmt.Fprintf(env.stderr, "nodes: unknown command %q\n\n", cmd)
		fs.Usage()
		return 2
	}
	if len(pos) != n {
		fmt.Fprintf(env.stderr, "nodes %s: want %d argument(s), got %q\n", cmd, n, pos)
		return 2
	}
	if msg := nf.check(cmd, pos); msg != "" {
		fmt.Fprintf(env.stderr, "nodes %s: %s\n", cmd, msg)
		return 2
	}
	cl := &api.ControllerClient{URL: *ctlURL, Token: tok}
	if cmd == "events" {
		// A stream: no request timeout when following.
		return nodeEvents(ctx, env, cl, pos[0], nf.follow, *timeout)
	}
	rctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	var err error
	switch cmd {
	case "list":
		var ns []api.NodeSummary
		if ns, err = cl.Nodes(rctx); err == nil {
			if *output == "json" {
				printJSON(env.stdout, ns)
			} else {
				printNodeTable(env.stdout, ns)
			}
		}
	case "show":
		var d *api.NodeDetail
		if d, err = cl.Node(rctx, pos[0]); err == nil {
			if *output == "json" {
				printJSON(env.stdout, d)
			} else {
				printNode(env.stdout, d)
			}
		}
	case "reprovision":
		if err = cl.ReprovisionFor(rctx, pos[0], nf.reason); err == nil {
			fmt.Fprintf(env.stdout, "node %s flipped to the bootstrap and restarted (imprint nodes events %s -f follows it)\n", pos[0], pos[0])
		}
	case "enroll":
		err = nodeEnroll(rctx, env, cl, pos[0], nf)
	case "power":
		err = nodePower(rctx, env, cl, pos[0], pos[1], nf.reason, *output)
	}
	if err != nil {
		fmt.Fprintf(env.stderr, "nodes %s: %s\n", cmd, controller.Printable(err.Error()))
		return 1
	}
	return 0
}

// p escapes what a node may have reported.
func p(s string) string { return controller.Printable(s) }

func jobState(st *api.Status) string {
	if st == nil {
		return "-"
	}
	if st.Error != nil {
		return p(st.State + " at " + st.Error.Step)
	}
	return p(st.State)
}

func printNodeTable(w io.Writer, ns []api.NodeSummary) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "MAC\tHOSTNAME\tROUND\tPHASE\tBOOT\tJOB\tSINCE")
	for _, n := range ns {
		boot := "bootstrap"
		if n.LocalBoot {
			boot = "local"
		}
		since := "-"
		if !n.PhaseTime.IsZero() {
			since = n.PhaseTime.UTC().Format(time.RFC3339)
		}
		phase := n.Phase
		if phase == "" {
			phase = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%s\n", n.MAC, n.Hostname, n.Round, phase, boot, jobState(n.LastStatus), since)
	}
	tw.Flush()
}

func printNode(w io.Writer, d *api.NodeDetail) {
	boot := "bootstrap (provisioned next time it network-boots)"
	if d.LocalBoot {
		boot = "local disk (provisioned; reprovision to change)"
	}
	fmt.Fprintf(w, "node %s (%s), round %d, phase %s\n", d.MAC, d.Hostname, d.Round, orDash(d.Phase))
	fmt.Fprintf(w, "  iPXE answers:   %s\n", boot)
	if d.ReportedID != "" {
		fmt.Fprintf(w, "  reported id:    %s (what its agent calls itself; not its identity)\n", p(d.ReportedID))
	}
	if d.AgentURL != "" {
		fmt.Fprintf(w, "  agent:          %s\n", p(d.AgentURL))
	}
	if d.TLSFingerprint != "" {
		fmt.Fprintf(w, "  agent cert:     %s (imprint ctl --fingerprint)\n", p(d.TLSFingerprint))
	}
	if b := d.BMC; b != nil {
		fmt.Fprintf(w, "  bmc:            %s %s (user %s; imprint nodes power status)\n", b.Driver, p(b.Address), p(b.Username))
	}
	if d.LeaseOwner != "" {
		fmt.Fprintf(w, "  driven by:      controller %s until %s\n", d.LeaseOwner, d.LeaseExpires.UTC().Format(time.RFC3339))
	}
	if st := d.LastStatus; st != nil {
		fmt.Fprintf(w, "  last result:    job %s %s", p(st.ID), p(st.State))
		if st.Step != "" {
			fmt.Fprintf(w, ", step %s", p(st.Step))
		}
		fmt.Fprintln(w)
		if e := st.Error; e != nil {
			fmt.Fprintf(w, "    error:        step %s", p(e.Step))
			if e.Device != "" {
				fmt.Fprintf(w, ", device %s", p(e.Device))
			}
			fmt.Fprintf(w, ": %s\n", p(e.Message))
			if e.Reason != "" {
				fmt.Fprintf(w, "    reason:       %s\n", p(e.Reason))
			}
		}
	}
	if ph := d.PhoneHome; ph != nil {
		fmt.Fprintf(w, "  phoned home:    %s, hostname %s, fqdn %s, %d host keys\n", ph.Time.UTC().Format(time.RFC3339), p(ph.Hostname), p(ph.FQDN), len(ph.PubKeys))
	}
	fmt.Fprintln(w, "timeline:")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, ev := range d.Events {
		fmt.Fprintf(tw, "  %s\tround %d\t%s\t%s\n", ev.Time.UTC().Format(time.RFC3339), ev.Round, ev.Phase, p(ev.Detail))
	}
	tw.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return strings.TrimSpace(s)
}
