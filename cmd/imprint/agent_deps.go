package main

import (
	"context"
	"log/slog"
	"os"
	"time"

	"github.com/imprint-dev/imprint/agent"
	"github.com/imprint-dev/imprint/api"
	"github.com/imprint-dev/imprint/bootloader"
	"github.com/imprint-dev/imprint/bootstrap"
	"github.com/imprint-dev/imprint/imagewriter"
	"github.com/imprint-dev/imprint/internal/sys"
	"github.com/imprint-dev/imprint/inventory"
	"github.com/imprint-dev/imprint/netdata"
	"github.com/imprint-dev/imprint/partition"
	"github.com/imprint-dev/imprint/prepare"
)

// realInventory is inventory.Collect on the live system (read-only).
func realInventory(log *slog.Logger) api.InventorySource {
	return api.InventoryFunc(func(ctx context.Context) (*inventory.Inventory, error) {
		return inventory.Collect(ctx, inventory.Options{Log: log.With("component", "inventory")})
	})
}

// realSteps wires the provisioning steps to the packages doing the work.
// chunkLog receives fuel-agent's per-MiB "Next chunk" lines.
func realSteps(cfg agent.Config, log, chunkLog *slog.Logger, metrics *agent.Metrics) agent.Steps {
	runner := &sys.Exec{Logger: log.With("component", "exec")}
	return agent.Steps{
		Prepare:   prepareOptions(cfg),
		Inventory: realInventory(log),
		Disks: agent.PartitionDisks{Deps: partition.ApplyDeps{
			Logger:  log.With("step", agent.StepDisks),
			Runner:  runner,
			Devices: &sys.Devices{},
		}},
		Configdrive: agent.ConfigdriveWriter{Logger: log.With("step", agent.StepConfigdrive)},
		Images: agent.ImageWriter{
			Logger:      log.With("step", agent.StepImages),
			ChunkLogger: chunkLog,
			Runner:      runner,
			Options:     imagewriter.Options{NoZeroOffload: !cfg.ZeroOffload},
			Metrics:     metrics,
		},
		Files: agent.MoveFiles{Mounter: sys.Mounter{}, Logger: log.With("step", agent.StepImages)},
		Bootloader: agent.GrubBootloader{Installer: &bootloader.Installer{
			Runner:  runner,
			Mounter: sys.Mounter{},
			Logger:  log.With("step", agent.StepBootloader),
		}},
	}
}

// prepareOptions are the agent settings every document is prepared with:
// the image source and digest policy; the state directory and the token
// file are never an image source.
//
// In the ramdisk, the network document ramdisk-init applied
// (bootstrap.DefaultAppliedNetwork) is the network the installed OS gets.
func prepareOptions(cfg agent.Config) prepare.Options {
	o := prepare.Options{Images: prepare.ImagePolicy{
		AllowFile:     cfg.FileImages,
		Forbidden:     []string{cfg.StateDir, cfg.TokenFile, "/etc/imprint"},
		RequireDigest: cfg.RequireDigest,
	}, ConfigdriveFormat: cfg.ConfigdriveFormat}
	if b, err := os.ReadFile(bootstrap.DefaultAppliedNetwork); err == nil {
		// ramdisk-init wrote it from a validated plan; a document that no
		// longer parses leaves the provision document's network in place.
		if d, err := netdata.Parse(b); err == nil {
			o.Network = d
		}
	}
	return o
}

// refuseUnlessDestructive is agent.ErrNotDestructive unless the destructive
// setting allows provisioning this machine.
func refuseUnlessDestructive(cfg agent.Config) error {
	if cfg.Destructive {
		return nil
	}
	return agent.ErrNotDestructive
}

// realReporter is the agent's callback client (discovery, heartbeats, result
// to the controller), or nil without a controller.
func realReporter(cfg agent.Config, log *slog.Logger, metrics *agent.Metrics) agent.Reporter {
	if cfg.Controller == "" {
		return nil
	}
	return &agent.CallbackClient{
		URL:     cfg.Controller,
		Token:   cfg.Token,
		NodeID:  cfg.NodeID,
		Logger:  log.With("component", "callbacks"),
		Metrics: metrics,
	}
}

// agentDeps wires the real implementations of the agent's collaborators.
// Nothing here touches a disk, the network configuration, modules or
// mounts: only a provision request does, through the steps.
func agentDeps(ctx context.Context, cfg agent.Config, log *slog.Logger, logs *agent.LogBuffer) (agent.Deps, error) {
	metrics := agent.NewMetrics(nil)
	reporter := realReporter(cfg, log, metrics)
	jobs, err := agent.NewJobs(ctx, realSteps(cfg, log, log, metrics), agent.JobsOptions{
		Metrics:          metrics,
		Logger:           log,
		StateDir:         cfg.StateDir,
		AllowDestructive: cfg.Token != "" || cfg.Insecure,
		Refuse:           refuseUnlessDestructive(cfg),
		Reporter:         reporter,
		Heartbeat:        cfg.Heartbeat,
	})
	if err != nil {
		return agent.Deps{}, err
	}
	power := &agent.Power{
		Enabled: cfg.PowerOff,
		Busy:    func() bool { s := jobs.Status().State; return s == api.StateRunning || s == api.StatePending },
		Logger:  log,
		Delay:   time.Second,
	}
	return agent.Deps{
		Logger:    log,
		Inventory: realInventory(log),
		Logs:      logs,
		Power:     power,
		Jobs:      jobs,
		Reporter:  reporter,
		Metrics:   metrics,
		Version:   version,
	}, nil
}
