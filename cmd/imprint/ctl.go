//go:build !imprint_ramdisk

package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/imprint-dev/imprint/api"
	"github.com/imprint-dev/imprint/controller"
	"github.com/imprint-dev/imprint/provision"
)

const ctlUsage = `usage: imprint ctl [--agent URL] [--token T | --token-file F] [--fingerprint FP | --insecure] COMMAND [ARGS]

Drives an imprint agent over its API.

commands:
  inventory            print the node's hardware (JSON)
  plan FILE            validate a provision document and print its storage plan (JSON)
  provision FILE       start provisioning (--force for a node already provisioned);
                       with --watch, follow it like watch
  status               print the job's status (JSON)
  watch                follow the job with a live progress bar until it ends
                       (exit 0 if it succeeded, 1 if it failed)
  reboot | poweroff    ask the node to reboot / power off
  logs                 print the agent's recent log lines

FILE "-" is standard input. The token may also come from IMPRINT_TOKEN, the
agent URL from IMPRINT_AGENT. For an agent started with --tls (an https://
URL), --fingerprint pins its certificate (the SHA-256 fingerprint it logs and
sends in discovery; imprint nodes show NODE prints it); without a pin ctl
refuses to talk to it unless told --insecure.
`

// runCtl is `imprint ctl`.
func runCtl(ctx context.Context, env *cmdEnv, args []string) int {
	fs := newFlagSet(env, "ctl", ctlUsage)
	agentURL := fs.String("agent", envOr("IMPRINT_AGENT", "http://127.0.0.1:9999"), "agent base URL (env IMPRINT_AGENT)")
	token := fs.String("token", "", "bearer token (env IMPRINT_TOKEN)")
	tokenFile := fs.String("token-file", "", "file holding the bearer token")
	fingerprint := fs.String("fingerprint", "", "SHA-256 fingerprint of the agent's TLS certificate to pin")
	insecure := fs.Bool("insecure", false, "talk to an https agent without a pinned certificate (anyone on the path can then read the token)")
	timeout := fs.Duration("timeout", 30*time.Second, "timeout of each request (not of watch)")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return 2
	}
	tok := *token
	if tok == "" && *tokenFile != "" {
		b, err := os.ReadFile(*tokenFile)
		if err != nil {
			fmt.Fprintf(env.stderr, "ctl: --token-file: %v\n", err)
			return 2
		}
		tok = strings.TrimSpace(string(b))
	}
	if tok == "" {
		tok = os.Getenv("IMPRINT_TOKEN")
	}
	hc, err := ctlHTTPClient(*agentURL, *fingerprint, *insecure)
	if err != nil {
		fmt.Fprintf(env.stderr, "ctl: %v\n", err)
		return 2
	}
	c := &api.Client{URL: *agentURL, Token: tok, HTTP: hc}
	cmd, rest := fs.Arg(0), fs.Args()[1:]

	// sub-flags of provision
	sub := flag.NewFlagSet("ctl "+cmd, flag.ContinueOnError)
	sub.SetOutput(env.stderr)
	force := sub.Bool("force", false, "provision a node that is locked (already provisioned)")
	watch := sub.Bool("watch", false, "follow the job after starting it")
	rest, code, ok := parseInterspersed(sub, rest) // flags may follow FILE
	if !ok {
		return code
	}

	reqCtx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	switch cmd {
	case "inventory":
		var inv any
		inv, err = c.Inventory(reqCtx)
		if err == nil {
			printJSON(env.stdout, inv)
		}
	case "plan", "provision":
		if len(rest) != 1 {
			fmt.Fprintf(env.stderr, "ctl %s: want one provision document (or -)\n", cmd)
			return 2
		}
		var doc []byte
		if doc, err = readDoc(env, rest[0]); err != nil {
			fmt.Fprintf(env.stderr, "ctl %s: %v\n", cmd, err)
			return 2
		}
		if cmd == "plan" {
			var p any
			if p, err = c.Plan(reqCtx, doc); err == nil {
				printJSON(env.stdout, p)
			}
			break
		}
		var r *api.StartResponse
		if r, err = c.Provision(reqCtx, doc, *force); err == nil {
			fmt.Fprintf(env.stdout, "provisioning started: job %s\n", r.ID)
			if *watch {
				return ctlWatch(ctx, env, c)
			}
		}
	case "status":
		var st *api.Status
		if st, err = c.Status(reqCtx); err == nil {
			printJSON(env.stdout, st)
		}
	case "watch":
		return ctlWatch(ctx, env, c)
	case "reboot":
		if err = c.Reboot(reqCtx); err == nil {
			fmt.Fprintln(env.stdout, "reboot requested")
		}
	case "poweroff":
		if err = c.PowerOff(reqCtx); err == nil {
			fmt.Fprintln(env.stdout, "poweroff requested")
		}
	case "logs":
		var b []byte
		if b, err = c.Logs(reqCtx); err == nil {
			env.stdout.Write(b)
		}
	default:
		fmt.Fprintf(env.stderr, "ctl: unknown command %q\n\n", cmd)
		fs.Usage()
		return 2
	}
	if err != nil {
		fmt.Fprintf(env.stderr, "ctl %s: %v\n", cmd, err)
		var re *api.ResponseError
		if errors.As(err, &re) && re.StatusCode == http.StatusUnprocessableEntity {
			return 2
		}
		return 1
	}
	return 0
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func readDoc(env *cmdEnv, name string) ([]byte, error) {
	if name == "-" {
		return provision.ReadDocument(env.stdin, "stdin")
	}
	return provision.ReadDocumentFile(name)
}

func printJSON(w io.Writer, v any) {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// ctlHTTPClient pins an https agent's certificate to the fingerprint; with
// neither a fingerprint nor insecure it refuses.
func ctlHTTPClient(url, fingerprint string, insecure bool) (*http.Client, error) {
	if !strings.HasPrefix(url, "https://") {
		return &http.Client{}, nil
	}
	want := strings.ToUpper(strings.TrimSpace(fingerprint))
	if want == "" && !insecure {
		return nil, fmt.Errorf("%s: the agent's certificate is self-signed: pin it with --fingerprint (its SHA-256 fingerprint, from the agent's log or imprint nodes show), or pass --insecure", url)
	}
	cfg := &tls.Config{
		// The agent's certificate is self-signed at boot: it is verified
		// by its fingerprint (below), not by a CA.
		InsecureSkipVerify: true,
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			if want == "" {
				return nil
			}
			if len(raw) == 0 || api.Fingerprint(raw[0]) != want {
				got := ""
				if len(raw) > 0 {
					got = api.Fingerprint(raw[0])
				}
				return fmt.Errorf("agent certificate fingerprint %s does not match the pinned %s", got, want)
			}
			return nil
		},
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}}, nil
}

// ctlWatch follows the event stream and draws a progress line until the
// job ends.
func ctlWatch(ctx context.Context, env *cmdEnv, c *api.Client) int {
	st, err := c.Status(ctx)
	if err != nil {
		fmt.Fprintf(env.stderr, "ctl watch: %v\n", err)
		return 1
	}
	if st.State == api.StateIdle {
		fmt.Fprintln(env.stderr, "ctl watch: no job yet")
		return 1
	}
	bar := &progressBar{w: env.stdout, job: st.ID, step: st.Step, done: st.BytesDone, total: st.BytesTotal}
	if st.State == api.StateSucceeded || st.State == api.StateFailed {
		bar.final(st.State, st.Error)
		return exitFor(st.State)
	}
	var final string
	err = c.Events(ctx, 0, func(ev api.Event) error {
		if ev.Job != st.ID {
			return nil
		}
		switch ev.Type {
		case api.EventStepStart:
			bar.step = ev.Step
			bar.draw()
		case api.EventStepEnd:
			bar.line(fmt.Sprintf("%s %s in %.1fs", ev.Step, ev.State, ev.DurationSeconds))
		case api.EventProgress:
			bar.done, bar.total = ev.BytesDone, ev.BytesTotal
			bar.draw()
		case api.EventWarning:
			bar.line("warning: " + ev.Message)
		case api.EventState:
			if ev.State == api.StateSucceeded || ev.State == api.StateFailed {
				final = ev.State
				bar.final(ev.State, ev.Error)
				return api.ErrStopEvents
			}
		}
		return nil
	})
	if err != nil {
		fmt.Fprintf(env.stderr, "\nctl watch: %v\n", err)
		return 1
	}
	return exitFor(final)
}

func exitFor(state string) int {
	if state == api.StateSucceeded {
		return 0
	}
	return 1
}

// progressBar draws "[#####.....]  45%  images  1.2/2.6 GiB" on one line.
type progressBar struct {
	w           io.Writer
	job, step   string
	done, total int64
	drawn       bool
}

func (b *progressBar) render() string {
	const width = 30
	frac := 0.0
	if b.total > 0 {
		frac = float64(b.done) / float64(b.total)
	}
	n := int(frac * width)
	if n > width {
		n = width
	}
	size := gib(b.done)
	if b.total > 0 {
		size = fmt.Sprintf("%s/%s", gib(b.done), gib(b.total))
	}
	return fmt.Sprintf("[%s%s] %3.0f%%  %-11s %s", strings.Repeat("#", n), strings.Repeat(".", width-n), frac*100, b.step, size)
}

func gib(n int64) string { return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30)) }

func (b *progressBar) draw() {
	fmt.Fprintf(b.w, "\r%s\x1b[K", b.render())
	b.drawn = true
}

// line prints a message above the bar.
func (b *progressBar) line(msg string) {
	if b.drawn {
		fmt.Fprint(b.w, "\r\x1b[K")
	}
	fmt.Fprintln(b.w, msg)
	b.draw()
}

func (b *progressBar) final(state string, e *api.JobError) {
	if b.drawn {
		fmt.Fprint(b.w, "\r\x1b[K")
	}
	if state == api.StateSucceeded {
		fmt.Fprintf(b.w, "job %s succeeded\n", b.job)
		return
	}
	if e != nil {
		dev := ""
		if e.Device != "" {
			dev = fmt.Sprintf(" on %q", e.Device)
		}
		fmt.Fprintf(b.w, "job %s failed at step %s%s: %s\n", b.job, e.Step, dev, controller.Printable(e.Message))
		return
	}
	fmt.Fprintf(b.w, "job %s failed\n", b.job)
}
