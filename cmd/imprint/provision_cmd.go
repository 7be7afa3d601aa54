package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"strings"

	"github.com/imprint-dev/imprint/agent"
	"github.com/imprint-dev/imprint/api"
	"github.com/imprint-dev/imprint/provision"
)

const provisionUsage = `usage: imprint provision [--input FILE] [--force] [flags]
       (also as provision, fuel-agent's console script: Astute runs
        "flock -n /var/lock/provision.lock provision")

Runs the whole provisioning job in the foreground on the provision document
(default /tmp/provision.json, where Astute uploads it): validate, plan,
disks, configdrive, images, bootloader, and the report when a controller is
configured. Logs fuel-agent's step lines ("--- Partitioning disks
(do_partitioning) ---", per-MiB "Next chunk: N", ...) for Astute's log
parser. Exits 0 on success; 1 naming the failing step (and device) on
failure; 2 on an invalid document, listing every problem with its path.
SIGTERM stops the running step and its child processes.

The settings (flags, IMPRINT_* environment, imprint.* kernel parameters)
are those of imprint agent; --listen and the token are not used.
`

// runProvision is `imprint provision`.
func runProvision(ctx context.Context, env *cmdEnv, args []string) int {
	return provisionCommand(ctx, env, args, realSteps)
}

// provisionCommand is runProvision with the steps injected (tests use fakes).
func provisionCommand(ctx context.Context, env *cmdEnv, args []string, steps func(cfg agent.Config, log, chunkLog *slog.Logger) agent.Steps) int {
	fs := flag.NewFlagSet("provision", flag.ContinueOnError)
	fs.SetOutput(env.stderr)
	resolve := configFlags(fs)
	force := fs.Bool("force", false, "provision even if this node was provisioned already (lock file in --state-dir)")
	// fuel-agent's own option names, as Astute or operators may pass them.
	legacyInput := fs.String("input_data_file", "", "fuel-agent's name for --input")
	fs.String("data_driver", "nailgun", "fuel-agent's driver option: only nailgun (and nailgun_simple, detected from the document) exist")
	fs.Usage = func() {
		fmt.Fprint(env.stderr, provisionUsage)
		fmt.Fprintln(env.stderr, "\nflags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(env.stderr, "provision: unexpected argument %q (the document is --input)\n", fs.Arg(0))
		return 2
	}
	if d := fs.Lookup("data_driver").Value.String(); d != "nailgun" && d != "nailgun_simple" {
		fmt.Fprintf(env.stderr, "provision: --data_driver %q is not supported (nailgun, nailgun_simple)\n", d)
		return 2
	}
	cfg, _, err := resolve()
	if err != nil {
		fmt.Fprintf(env.stderr, "provision: invalid configuration:\n%v\n", err)
		return 2
	}
	if *legacyInput != "" {
		cfg.Input = *legacyInput
	}
	log := newLogger(cfg, env.stderr, nil).With("cmd", "provision")
	// Astute counts "Next chunk" lines: always emit them, whatever the level.
	chunkLog := slog.New(newLogger(agent.Config{LogFormat: cfg.LogFormat, LogLevel: "debug"}, env.stderr, nil).Handler()).With("cmd", "provision")

	data, err := provision.ReadDocumentFile(cfg.Input)
	if err != nil {
		fmt.Fprintf(env.stderr, "provision: step %s: read the document: %v\n", agent.StepValidate, err)
		return 2
	}
	jobs, err := agent.NewJobs(ctx, steps(cfg, log, chunkLog), agent.JobsOptions{
		Logger:           log,
		StateDir:         cfg.StateDir,
		AllowDestructive: true, // the operator (or Astute) runs it on the node itself
		Reporter:         realReporter(cfg, log),
		Heartbeat:        cfg.Heartbeat,
	})
	if err != nil {
		fmt.Fprintf(env.stderr, "provision: %v\n", err)
		return 1
	}
	return provisionExit(ctx, env, cfg.Input, jobs, data, *force)
}

// provisionExit runs the job and turns its outcome into the exit status
// and a one-line verdict on stderr.
func provisionExit(ctx context.Context, env *cmdEnv, input string, jobs *agent.Jobs, data []byte, force bool) int {
	st, err := jobs.Run(ctx, data, force)
	if err == nil {
		fmt.Fprintf(env.stderr, "provision: succeeded (job %s, %s)\n", st.ID, stepSummary(st))
		return 0
	}
	var ve *api.ValidationError
	var se *agent.StepError
	switch {
	case errors.As(err, &ve):
		step := agent.StepValidate
		if errors.As(err, &se) {
			step = se.Step
		}
		fmt.Fprintf(env.stderr, "provision: failed at step %s: %s is invalid:\n", step, input)
		for _, p := range ve.Problems {
			fmt.Fprintf(env.stderr, "  %s: %s\n", p.Path, p.Msg)
		}
		return 2
	case errors.Is(err, api.ErrLocked):
		fmt.Fprintf(env.stderr, "provision: %v (use --force)\n", err)
		return 1
	case errors.As(err, &se):
		dev := ""
		if se.Device != "" {
			dev = fmt.Sprintf(" on %q", se.Device)
		}
		fmt.Fprintf(env.stderr, "provision: failed at step %s%s: %v\n", se.Step, dev, se.Err)
		return 1
	default:
		fmt.Fprintf(env.stderr, "provision: failed: %v\n", err)
		return 1
	}
}

func stepSummary(st api.Status) string {
	var parts []string
	for _, s := range st.Steps {
		if s.State == "succeeded" {
			parts = append(parts, fmt.Sprintf("%s %.1fs", s.Name, s.DurationSeconds))
		} else {
			parts = append(parts, s.Name+" "+s.State)
		}
	}
	return strings.Join(parts, ", ")
}
