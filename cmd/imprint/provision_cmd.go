package main

import (
	"context"
	"errors"
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
parser. SIGTERM stops the running step and its child processes.

Exit status (imprint provision):
  0   succeeded
  2   the document is invalid: every problem is listed with its path, and
      nothing was touched
  3   refused before anything was touched: the node is locked (provisioned
      before; use --force), or this is not the bootstrap ramdisk (see the
      destructive setting)
  10  a device outside the plan would have been touched (reason not_planned)
  11  a planned disk is in use: mounted, swap or held (device_in_use)
  12  a planned device is missing (device_missing)
  20  an image or its metadata could not be fetched (image_unreachable)
  21  an image failed verification: digest, md5 or size (verify_failed)
  30  the configdrive does not fit its partition (configdrive_too_small)
  40  a program failed (command_failed: mkfs, mdadm, lvm, grub)
  41  a device read or write failed (io_error)
  50  cancelled (SIGTERM)
  1   any other failure
Each failure names the step, the reason and the device on stderr. Started as
provision (fuel-agent's console script name), it exits as fuel-agent does:
0 on success, 255 on any failure.

The settings (flags, IMPRINT_* environment, imprint.* kernel parameters)
are those of imprint agent; --listen and the token are not used.
`

// runProvision is `imprint provision`.
func runProvision(ctx context.Context, env *cmdEnv, args []string) int {
	return provisionCommand(ctx, env, args, func(cfg agent.Config, log, chunkLog *slog.Logger) agent.Steps {
		return realSteps(cfg, log, chunkLog, nil) // one run, nobody scrapes it
	})
}

// provisionCommand is runProvision with the steps injected (tests use fakes).
func provisionCommand(ctx context.Context, env *cmdEnv, args []string, steps func(cfg agent.Config, log, chunkLog *slog.Logger) agent.Steps) int {
	fs := newFlagSet(env, "provision", provisionUsage)
	resolve := configFlags(fs)
	force := fs.Bool("force", false, "provision even if this node was provisioned already (lock file in --state-dir)")
	// fuel-agent's own option names, as Astute or operators may pass them.
	legacyInput := fs.String("input_data_file", "", "fuel-agent's name for --input")
	fs.String("data_driver", "nailgun", "fuel-agent's driver option: only nailgun (and nailgun_simple, detected from the document) exist")
	if code, ok := parseFlags(fs, args); !ok {
		return code
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
		fmt.Fprintf(env.stderr, "provision: step %s: read the document: %v\n", agent.StepPrepare, err)
		return 2
	}
	jobs, err := agent.NewJobs(ctx, steps(cfg, log, chunkLog), agent.JobsOptions{
		Logger:           log,
		StateDir:         cfg.StateDir,
		AllowDestructive: true, // the operator (or Astute) runs it on the node itself
		Refuse:           refuseUnlessDestructive(cfg),
		Reporter:         realReporter(cfg, log, nil),
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
	code := provisionOutcome(ctx, env, input, jobs, data, force)
	if env.alias == "provision" {
		return fuelAgentExit(code)
	}
	return code
}

// fuelAgentExit is the exit status of a fuel-agent console script for
// imprint's code: 0, or -1 (255) on any failure.
func fuelAgentExit(code int) int {
	if code != 0 {
		return fuelAgentFailure
	}
	return code
}

// fuelAgentFailure is what fuel-agent's provision exits with on any error.
const fuelAgentFailure = 255

// reasonExit are the exit codes of `imprint provision` per failure reason.
var reasonExit = map[string]int{
	api.ReasonNotPlanned:          10,
	api.ReasonDeviceInUse:         11,
	api.ReasonDeviceMissing:       12,
	api.ReasonImageUnreachable:    20,
	api.ReasonVerifyFailed:        21,
	api.ReasonConfigdriveTooSmall: 30,
	api.ReasonCommandFailed:       40,
	api.ReasonIO:                  41,
	api.ReasonCancelled:           50,
}

func provisionOutcome(ctx context.Context, env *cmdEnv, input string, jobs *agent.Jobs, data []byte, force bool) int {
	st, err := jobs.Run(ctx, data, force)
	if err == nil {
		fmt.Fprintf(env.stderr, "provision: succeeded (job %s, %s)\n", st.ID, stepSummary(st))
		for _, w := range st.Warnings {
			fmt.Fprintf(env.stderr, "provision: warning: %s: %s\n", w.Path, w.Msg)
		}
		return 0
	}
	var ve *api.ValidationError
	var se *agent.StepError
	switch {
	case errors.As(err, &ve):
		fmt.Fprintf(env.stderr, "provision: failed at step %s: %s is invalid:\n", agent.StepPrepare, input)
		for _, p := range ve.Problems {
			fmt.Fprintf(env.stderr, "  %s: %s\n", p.Path, p.Msg)
		}
		return 2
	case errors.Is(err, api.ErrLocked), errors.Is(err, api.ErrRefused):
		hint := ""
		if errors.Is(err, api.ErrLocked) {
			hint = " (use --force)"
		}
		fmt.Fprintf(env.stderr, "provision: %v%s\n", err, hint)
		return 3
	case errors.As(err, &se):
		dev := ""
		if se.Device != "" {
			dev = fmt.Sprintf(" on %q", se.Device)
		}
		fmt.Fprintf(env.stderr, "provision: failed at step %s%s (reason %s): %v\n", se.Step, dev, se.Reason, se.Err)
		if c, ok := reasonExit[se.Reason]; ok {
			return c
		}
		return 1
	default:
		fmt.Fprintf(env.stderr, "provision: failed: %v\n", err)
		return 1
	}
}

func stepSummary(st api.Status) string {
	var parts []string
	for _, s := range st.Steps {
		if s.State == api.StepSucceeded {
			parts = append(parts, fmt.Sprintf("%s %.1fs", s.Name, s.DurationSeconds))
		} else {
			parts = append(parts, s.Name+" "+string(s.State))
		}
	}
	return strings.Join(parts, ", ")
}
