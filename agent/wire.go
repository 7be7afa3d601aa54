package agent

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/imprint-dev/imprint/bootloader"
	"github.com/imprint-dev/imprint/configdrive"
	"github.com/imprint-dev/imprint/imagewriter"
	"github.com/imprint-dev/imprint/internal/devguard"
	"github.com/imprint-dev/imprint/movefiles"
	"github.com/imprint-dev/imprint/partition"
	"github.com/imprint-dev/imprint/prepare"
)

// The real steps: thin adapters from the job's interfaces to the packages
// that do the work.

// PartitionDisks is the real Disks step: partition.Apply, guarded by the
// job's device set.
type PartitionDisks struct{ Deps partition.ApplyDeps }

var _ Disks = PartitionDisks{}

// Apply implements Disks.
func (d PartitionDisks) Apply(ctx context.Context, job *prepare.Job) error {
	deps := d.Deps
	deps.Guard = job.Devices
	return partition.Apply(ctx, job.Plan, deps)
}

// ImageWriter is the real Images step: imagewriter.Write with the
// document's digest and Fuel's image metadata looked up beside the image,
// the filesystem grown afterwards; the target and every command guarded by
// the job's device set.
type ImageWriter struct {
	Logger *slog.Logger
	// ChunkLogger receives fuel-agent's "Next chunk: N" lines (at Debug
	// level); nil sends them to Logger.
	ChunkLogger *slog.Logger
	Runner      imagewriter.Runner // grows the filesystem; nil: not grown
	// Options are the base imagewriter options (timeouts, retries).
	Options imagewriter.Options
	// Metrics, when set, count the bytes read and written and the retries.
	Metrics *Metrics
}

var _ Images = ImageWriter{}

// Write implements Images.
func (w ImageWriter) Write(ctx context.Context, job *prepare.Job, img prepare.Image, progress ProgressFunc) (ImageResult, error) {
	req := imagewriter.Request{
		URL:          img.URI,
		Device:       img.Device,
		Container:    imagewriter.Container(img.Container),
		Format:       img.Format,
		SHA256:       img.SHA256,
		SHA512:       img.SHA512,
		Mirrors:      img.Mirrors,
		FuelMetadata: true,
	}
	if err := req.Validate(); err != nil {
		return ImageResult{}, fmt.Errorf("image_data[%q]: %w", img.Mount, err)
	}
	opts := w.Options
	opts.Logger = w.Logger
	opts.ChunkLogger = w.ChunkLogger
	opts.Guard = job.Devices
	if w.Runner != nil {
		opts.Runner = devguard.GuardedRunner{Set: job.Devices, Runner: w.Runner}
	}
	counter := w.Metrics.ImageCounter()
	opts.Progress = func(p imagewriter.Progress) {
		counter.Progress(p)
		if progress != nil {
			progress(p.BytesWritten, p.TotalWritten)
		}
	}
	res, err := imagewriter.Write(ctx, req, opts)
	if err != nil {
		return ImageResult{}, err
	}
	counter.Done(res)
	if progress != nil {
		progress(res.BytesWritten, res.BytesWritten)
	}
	return ImageResult{VerifiedBy: res.Verified}, nil
}

// ConfigdriveWriter is the real Configdrive step: the prepared content
// written onto the plan's configdrive partition in the prepared format.
type ConfigdriveWriter struct {
	Logger *slog.Logger
}

var _ Configdrive = ConfigdriveWriter{}

// Write implements Configdrive.
func (c ConfigdriveWriter) Write(ctx context.Context, job *prepare.Job) error {
	cd := job.Configdrive
	b, err := configdrive.WriteDevice(ctx, cd.Content, cd.Format, cd.Device, 0, configdrive.ImageOptions{Guard: job.Devices})
	if err != nil {
		return err
	}
	if c.Logger != nil {
		c.Logger.Info("configdrive written", "device", cd.Device, "format", b.Format, "fstype", b.FSType, "size", b.Size)
	}
	return nil
}

// MoveFiles is the real Files step: movefiles.Apply on the job's moves,
// mounting only devices of the job's set.
type MoveFiles struct {
	Mounter movefiles.Mounter
	Logger  *slog.Logger
}

var _ Files = MoveFiles{}

// Move implements Files.
func (m MoveFiles) Move(ctx context.Context, job *prepare.Job) error {
	return movefiles.Apply(ctx, job.Moves, movefiles.Deps{Mounter: m.Mounter, Guard: job.Devices, Logger: m.Logger})
}

// GrubBootloader is the real Bootloader step.
type GrubBootloader struct {
	Installer *bootloader.Installer
	Target    string // default /tmp/target
}

var _ Bootloader = GrubBootloader{}

// Install implements Bootloader.
func (g GrubBootloader) Install(ctx context.Context, job *prepare.Job) error {
	req := job.Bootloader
	req.Guard = job.Devices
	if g.Target != "" {
		req.Target = g.Target
	}
	return g.Installer.Install(ctx, req)
}
