package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"

	"github.com/imprint-dev/imprint/agent"
)

const agentUsage = `usage: imprint agent [flags]

Runs the provisioning agent: the HTTP API (GET /healthz; /v1 behind a bearer
token) that controllers and operators drive, and the provisioning job it
starts. It logs "imprint agent ready" with its address once serving.

Every setting comes from, in order of precedence: the flag, the environment
variable, the kernel command line (--kernel-cmdline, default /proc/cmdline),
the default. On a machine that is not a bootstrap node it changes no network,
module or mount setting, and touches no disk until a provision request names
it.
`

// configFlags registers one flag per agent.Settings entry plus
// --kernel-cmdline, and returns a function resolving the configuration after
// fs.Parse.
func configFlags(fs *flag.FlagSet) func() (agent.Config, map[string]agent.Source, error) {
	for _, s := range agent.Settings() {
		usage := fmt.Sprintf("%s (env %s, kernel %s=)", s.Usage, s.Env, s.Cmdline)
		if s.Bool {
			def, _ := strconv.ParseBool(s.Default)
			fs.Bool(s.Name, def, usage)
		} else {
			fs.String(s.Name, s.Default, usage)
		}
	}
	cmdlinePath := fs.String("kernel-cmdline", "/proc/cmdline", "file holding the kernel command line to read imprint.* parameters from; \"\" for none (env IMPRINT_KERNEL_CMDLINE)")
	return func() (agent.Config, map[string]agent.Source, error) {
		flags := agent.Values{}
		explicitCmdline := false
		fs.Visit(func(f *flag.Flag) {
			if f.Name == "kernel-cmdline" {
				explicitCmdline = true
				return
			}
			flags[f.Name] = f.Value.String()
		})
		path := *cmdlinePath
		if !explicitCmdline {
			if e := os.Getenv("IMPRINT_KERNEL_CMDLINE"); e != "" {
				path, explicitCmdline = e, true
			}
		}
		var cmdline string
		if path != "" {
			b, err := os.ReadFile(path)
			switch {
			case err == nil:
				cmdline = string(b)
			case errors.Is(err, os.ErrNotExist) && !explicitCmdline:
			default:
				return agent.Config{}, nil, fmt.Errorf("kernel-cmdline: %w", err)
			}
		}
		return agent.Resolve(flags, os.Getenv, cmdline)
	}
}

// newLogger builds the slog logger of the agent commands: JSON or text on
// w, and a copy into buf (for GET /v1/logs) when buf is not nil.
func newLogger(cfg agent.Config, w io.Writer, buf io.Writer) *slog.Logger {
	var level slog.Level
	level.UnmarshalText([]byte(cfg.LogLevel))
	if buf != nil {
		w = io.MultiWriter(w, buf)
	}
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

// runAgent is `imprint agent`.
func runAgent(ctx context.Context, env *cmdEnv, args []string) int {
	fs := newFlagSet(env, "agent", agentUsage)
	resolve := configFlags(fs)
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(env.stderr, "agent: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	cfg, src, err := resolve()
	if err != nil {
		fmt.Fprintf(env.stderr, "agent: invalid configuration:\n%v\n", err)
		return 2
	}
	logs := &agent.LogBuffer{}
	log := newLogger(cfg, env.stderr, logs).With("cmd", "agent")
	var from []string
	for _, s := range agent.Settings() {
		if src[s.Name] != agent.FromDefault {
			from = append(from, s.Name+"="+string(src[s.Name]))
		}
	}
	log.Info("configuration", "listen", cfg.Listen, "controller", cfg.Controller, "tls", cfg.TLS,
		"insecure", cfg.Insecure, "token_set", cfg.Token != "", "token_file", cfg.TokenFile,
		"power", cfg.PowerOff, "sources", strings.Join(from, ","))

	deps, err := agentDeps(ctx, cfg, log, logs)
	if err != nil {
		log.Error("agent setup failed", "err", err)
		return 1
	}
	if err := agent.New(cfg, deps).Run(ctx); err != nil {
		log.Error("agent failed", "err", err)
		return 1
	}
	return 0
}
