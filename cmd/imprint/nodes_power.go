//go:build !imprint_ramdisk

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/imprint-dev/imprint/api"
	"github.com/imprint-dev/imprint/controller"
)

// nodeFlags are the options of imprint nodes' reprovision, enroll, power
// and events.
type nodeFlags struct {
	reason       string
	bmc          string
	bmcUser      string
	passwordFile string
	insecure     bool
	follow       bool
}

func (f *nodeFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.reason, "reason", "", "why (reprovision, power): recorded in the node's timeline")
	fs.StringVar(&f.bmc, "bmc", "", "enroll: the BMC, ipmi://HOST[:PORT][?cipher=N] or redfish://HOST[:PORT][/SYSTEM-ID]")
	fs.StringVar(&f.bmcUser, "bmc-user", "", "enroll: the BMC user")
	fs.StringVar(&f.passwordFile, "bmc-password-file", "", "enroll: file holding the BMC password (else env IMPRINT_BMC_PASSWORD)")
	fs.BoolVar(&f.insecure, "bmc-insecure", false, "enroll: do not verify the Redfish BMC's TLS certificate")
	fs.BoolVar(&f.follow, "f", false, "events: follow the timeline as it grows")
}

// check reports a usage problem of cmd with these flags ("" when none).
func (f *nodeFlags) check(cmd string, pos []string) string {
	switch cmd {
	case "reprovision":
		if strings.TrimSpace(f.reason) == "" {
			return "--reason TEXT is required (it goes into the node's timeline)"
		}
	case "enroll":
		if f.bmc == "" || f.bmcUser == "" {
			return "--bmc URL and --bmc-user USER are required"
		}
	case "power":
		switch pos[0] {
		case "on", "off", "cycle", "status":
		default:
			return fmt.Sprintf("%q: want power on|off|cycle|status NODE", pos[0])
		}
	}
	return ""
}

func nodeEnroll(ctx context.Context, env *cmdEnv, cl *api.ControllerClient, node string, f nodeFlags) error {
	pw := os.Getenv("IMPRINT_BMC_PASSWORD")
	if f.passwordFile != "" {
		b, err := os.ReadFile(f.passwordFile)
		if err != nil {
			return fmt.Errorf("--bmc-password-file: %w", err)
		}
		pw = strings.TrimRight(string(b), "\r\n")
	}
	if pw == "" {
		return errors.New("no BMC password: --bmc-password-file FILE or IMPRINT_BMC_PASSWORD")
	}
	st, err := cl.EnrollBMC(ctx, node, api.EnrollBMCRequest{URL: f.bmc, Username: f.bmcUser, Password: pw, Insecure: f.insecure})
	if err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "node %s: %s BMC %s (user %s) enrolled; power is %s\n", st.MAC, st.BMC.Driver, p(st.BMC.Address), p(st.BMC.Username), st.State)
	return nil
}

func nodePower(ctx context.Context, env *cmdEnv, cl *api.ControllerClient, action, node, reason, output string) error {
	var st *api.PowerStatus
	var err error
	if action == "status" {
		st, err = cl.PowerState(ctx, node)
	} else {
		st, err = cl.Power(ctx, node, action, reason)
	}
	if err != nil {
		return err
	}
	if output == "json" {
		printJSON(env.stdout, st)
		return nil
	}
	fmt.Fprintf(env.stdout, "node %s: power %s (%s BMC %s)\n", st.MAC, st.State, st.BMC.Driver, p(st.BMC.Address))
	return nil
}

// nodeEvents prints the node's timeline, following it with -f until
// interrupted.
func nodeEvents(ctx context.Context, env *cmdEnv, cl *api.ControllerClient, node string, follow bool, timeout time.Duration) int {
	if !follow {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	err := cl.NodeEvents(ctx, node, 0, follow, func(_ int64, ev api.NodeEvent) error {
		fmt.Fprintf(env.stdout, "%s  round %d  %-13s %s\n", ev.Time.UTC().Format(time.RFC3339), ev.Round, ev.Phase, controller.Printable(ev.Detail))
		return nil
	})
	if err != nil && !(follow && ctx.Err() != nil) {
		fmt.Fprintf(env.stderr, "nodes events: %s\n", controller.Printable(err.Error()))
		return 1
	}
	return 0
}
