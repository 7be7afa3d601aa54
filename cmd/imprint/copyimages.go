package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/imprint-dev/imprint/agent"
	"github.com/imprint-dev/imprint/imagewriter"
	"github.com/imprint-dev/imprint/internal/sys"
	"github.com/imprint-dev/imprint/inventory"
	"github.com/imprint-dev/imprint/prepare"
	"github.com/imprint-dev/imprint/provision"
)

// copyDocumentImages is fa_copyimage as fuel-agent runs it: the images of
// the document at path written onto their planned devices (the disks were
// partitioned before, by fa_partition), the configdrive last as fuel-agent
// appends it to its images, then the plan's file moves. The
// job's device set bounds every write; the exit status is 0, 1 (a step
// failed), 2 (the document) or 3 (not a bootstrap node).
func copyDocumentImages(ctx context.Context, env *cmdEnv, path string, log, chunkLog *slog.Logger, opts imagewriter.Options) int {
	log.Info(agent.FuelAgentLine(agent.StepImages), "input", path)
	data, err := provision.ReadDocumentFile(path)
	if err != nil {
		fmt.Fprintf(env.stderr, "fa_copyimage: %v\n", err)
		return 2
	}
	if err := agent.DestructiveAllowed(os.Getenv, kernelCmdline()); err != nil {
		fmt.Fprintf(env.stderr, "fa_copyimage: %v\n", err)
		return 3
	}
	inv, err := inventory.Collect(ctx, inventory.Options{Log: log})
	if err != nil {
		fmt.Fprintf(env.stderr, "fa_copyimage: inventory: %v\n", err)
		return 1
	}
	job, err := prepare.Prepare(ctx, data, inv, prepare.Options{})
	if err != nil {
		fmt.Fprintf(env.stderr, "fa_copyimage: %s is invalid:\n%s", path, problemList(err))
		return 2
	}
	runner := &sys.Exec{Logger: log}
	w := agent.ImageWriter{Logger: log, ChunkLogger: chunkLog, Runner: runner, Options: opts}
	for _, img := range job.Images {
		if _, err := w.Write(ctx, job, img, func(int64, int64) {}); err != nil {
			fmt.Fprintf(env.stderr, "fa_copyimage: image %s onto %s: %v\n", img.URI, img.Device, err)
			return 1
		}
	}
	if job.Configdrive != nil {
		// fuel-agent's do_copyimage writes the configdrive image last
		if err := (agent.ConfigdriveWriter{Logger: log}).Write(ctx, job); err != nil {
			fmt.Fprintf(env.stderr, "fa_copyimage: configdrive onto %s: %v\n", job.Configdrive.Device, err)
			return 1
		}
	}
	if err := (agent.MoveFiles{Mounter: sys.Mounter{}, Logger: log}).Move(ctx, job); err != nil {
		fmt.Fprintf(env.stderr, "fa_copyimage: %v\n", err)
		return 1
	}
	return 0
}
