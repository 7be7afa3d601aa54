package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"

	"github.com/imprint-dev/imprint/bootloader"
	"github.com/imprint-dev/imprint/configdrive"
	"github.com/imprint-dev/imprint/imagewriter"
	"github.com/imprint-dev/imprint/netdata"
	"github.com/imprint-dev/imprint/partition"
	"github.com/imprint-dev/imprint/provision"
)

// The real steps: thin adapters from the job's interfaces to the packages
// that do the work.

// PartitionDisks is the real Disks step: partition.Apply.
type PartitionDisks struct{ Deps partition.ApplyDeps }

var _ Disks = PartitionDisks{}

// Apply implements Disks.
func (d PartitionDisks) Apply(ctx context.Context, plan *partition.Plan) error {
	return partition.Apply(ctx, plan, d.Deps)
}

// ImageWriter is the real Images step: imagewriter.Write with Fuel's image
// metadata looked up beside the image, the filesystem grown afterwards.
type ImageWriter struct {
	Logger *slog.Logger
	// ChunkLogger receives fuel-agent's "Next chunk: N" lines (at Debug
	// level); nil sends them to Logger.
	ChunkLogger *slog.Logger
	Runner      imagewriter.Runner // grows the filesystem; nil: not grown
	// Options are the base imagewriter options (timeouts, retries).
	Options imagewriter.Options
}

var _ Images = ImageWriter{}

// Write implements Images.
func (w ImageWriter) Write(ctx context.Context, img partition.Image, progress ProgressFunc) error {
	req := imagewriter.Request{
		URL:          img.URI,
		Device:       img.Device,
		Container:    imagewriter.Container(img.Container),
		Format:       img.Format,
		FuelMetadata: true,
	}
	if err := req.Validate(); err != nil {
		return fmt.Errorf("image_data[%q]: %w", img.Mount, err)
	}
	opts := w.Options
	opts.Logger = w.Logger
	opts.ChunkLogger = w.ChunkLogger
	opts.Runner = w.Runner
	opts.Progress = func(p imagewriter.Progress) {
		if progress != nil {
			progress(p.BytesWritten, p.TotalWritten)
		}
	}
	res, err := imagewriter.Write(ctx, req, opts)
	if err != nil {
		return err
	}
	if progress != nil {
		progress(res.BytesWritten, res.BytesWritten)
	}
	return nil
}

// ConfigdriveWriter is the real Configdrive step: configdrive.Build from the
// document, written onto the plan's configdrive partition.
type ConfigdriveWriter struct {
	Logger  *slog.Logger
	Format  configdrive.Format // "" is configdrive.DefaultFormat
	Options configdrive.Options
	// NetworkFile is the network document the ramdisk applied
	// (bootstrap.DefaultAppliedNetwork). When it exists the installed OS
	// gets that network (configdrive.WithNetwork) instead of the provision
	// document's admin NIC alone.
	NetworkFile string
}

var _ Configdrive = ConfigdriveWriter{}

// Write implements Configdrive.
func (c ConfigdriveWriter) Write(ctx context.Context, doc *provision.Document, device string) error {
	content, err := configdrive.Build(doc, c.options(doc))
	if err != nil {
		return fmt.Errorf("configdrive content: %w", err)
	}
	if c.NetworkFile != "" {
		b, err := os.ReadFile(c.NetworkFile)
		switch {
		case err == nil:
			nd, err := netdata.Parse(b)
			if err != nil {
				return fmt.Errorf("configdrive network from %s: %w", c.NetworkFile, err)
			}
			if err := configdrive.WithNetwork(content, nd); err != nil {
				return fmt.Errorf("configdrive network from %s: %w", c.NetworkFile, err)
			}
			if c.Logger != nil {
				c.Logger.Info("configdrive: the installed OS gets the ramdisk's network", "file", c.NetworkFile,
					"links", len(nd.Links), "networks", len(nd.Networks))
			}
		case !errors.Is(err, os.ErrNotExist):
			return fmt.Errorf("configdrive network: %w", err)
		}
	}
	f := c.Format
	if f == "" {
		f = configdrive.DefaultFormat
	}
	b, err := configdrive.WriteDevice(ctx, content, f, device, 0, configdrive.ImageOptions{})
	if err != nil {
		return err
	}
	if c.Logger != nil {
		c.Logger.Info("configdrive written", "device", device, "format", b.Format, "fstype", b.FSType, "size", b.Size)
	}
	return nil
}

// options are c.Options with what the document asks for: its
// ks_meta.phone_home_url (imprint's extension) wins over Options.PhoneHomeURL.
func (c ConfigdriveWriter) options(doc *provision.Document) configdrive.Options {
	o := c.Options
	if u := doc.KsMeta.PhoneHomeURL; u != "" {
		o.PhoneHomeURL = u
	}
	return o
}

// GrubBootloader is the real Bootloader step.
type GrubBootloader struct {
	Installer *bootloader.Installer
	Target    string // default /tmp/target
}

var _ Bootloader = GrubBootloader{}

// Install implements Bootloader.
func (g GrubBootloader) Install(ctx context.Context, doc *provision.Document, plan *partition.Plan) error {
	return g.Installer.Install(ctx, bootloader.Request{
		Plan:         plan,
		KernelParams: doc.KsMeta.PmData.KernelParams,
		UdevRules:    doc.KernelOptions.UdevRules,
		Target:       g.Target,
	})
}
