package main

import (
	"fmt"
	"os"
	"strings"

	"context"

	"github.com/imprint-dev/imprint/agent"
	"github.com/imprint-dev/imprint/configdrive"
	"github.com/imprint-dev/imprint/prepare"
	"github.com/imprint-dev/imprint/provision"
)

const configdriveUsage = `usage: imprint configdrive [flags] FILE -o OUTPUT
       (also as fa_configdrive)

Renders the cloud-init configdrive for the provision document FILE
(provision.json, JSON or YAML) and writes it to OUTPUT: a regular file
(created, exactly --size MiB) or, with --device, a block device such as the
configdrive partition (--size 0: the whole device).

Formats: nocloud-vfat, nocloud-iso (label cidata; meta-data, user-data,
network-config) and config2-vfat, config2-iso (label config-2;
openstack/latest/...). ISO9660 is refused on 4K-sector devices.

Flags may come before or after FILE.
`

// runConfigdrive is `imprint configdrive FILE -o OUTPUT`.
func runConfigdrive(ctx context.Context, env *cmdEnv, args []string) int {
	fs := newFlagSet(env, "configdrive", configdriveUsage)
	var (
		out, format, phoneHome, instanceID, dump string
		sizeMiB                                  int64
		sector                                   int
		device                                   bool
	)
	fs.StringVar(&out, "o", "", "output image file (or device with --device); required")
	fs.StringVar(&format, "format", string(configdrive.DefaultFormat), "nocloud-vfat|nocloud-iso|config2-vfat|config2-iso")
	fs.Int64Var(&sizeMiB, "size", 20, "image size in MiB (fuel-agent's configdrive partition is 20); 0 with --device: the device size")
	fs.IntVar(&sector, "sector-size", 0, "logical sector size of the target disk: 512 or 4096 (default: the device's, 512 for files)")
	fs.BoolVar(&device, "device", false, "OUTPUT is a block device (opened exclusively)")
	fs.StringVar(&phoneHome, "phone-home", "", "URL cloud-init POSTs instance id, hostname and host keys to once per instance")
	fs.StringVar(&instanceID, "instance-id", "", "instance id (default: derived from uid, hostname and admin MAC)")
	fs.StringVar(&dump, "dump", "", "also write the rendered files into this directory")
	pos, code, ok := parseInterspersed(fs, args)
	if !ok {
		return code
	}
	if env.alias == "fa_configdrive" && len(pos) == 0 && out == "" {
		// fuel-agent's fa_configdrive: the document Astute uploaded, the
		// image at its config_drive_path
		pos, out = []string{"/tmp/provision.json"}, "/tmp/config-drive.img"
	}
	fmt.Fprintln(env.stderr, agent.FuelAgentLine(agent.StepConfigdrive))
	if len(pos) != 1 || out == "" {
		fmt.Fprintf(env.stderr, "configdrive: want FILE and -o OUTPUT\n\n")
		fs.Usage()
		return 2
	}
	f, err := configdrive.ParseFormat(format)
	if err != nil {
		fmt.Fprintf(env.stderr, "configdrive: --format: %v\n", err)
		return 2
	}
	if sizeMiB < 0 || (sizeMiB == 0 && !device) {
		fmt.Fprintf(env.stderr, "configdrive: --size %d: must be > 0 for a file\n", sizeMiB)
		return 2
	}
	data, err := provision.ReadDocumentFile(pos[0])
	if err != nil {
		fmt.Fprintf(env.stderr, "configdrive: %v\n", err)
		return 2
	}
	// The same prepare stage as a provision (the document validated and
	// planned on its declared disks, the content rendered and fitted to the
	// planned partition), so a document this accepts is one the agent takes.
	job, err := prepare.Prepare(ctx, data, nil, prepare.Options{
		Configdrive:       configdrive.Options{PhoneHomeURL: phoneHome, InstanceID: instanceID},
		ConfigdriveFormat: f,
	})
	if err != nil {
		fmt.Fprintf(env.stderr, "configdrive: %s is invalid:\n%s", pos[0], problemList(err))
		return 2
	}
	for _, w := range job.Warnings {
		fmt.Fprintf(env.stderr, "configdrive: warning: %s\n", w)
	}
	if job.Configdrive == nil {
		fmt.Fprintf(env.stderr, "configdrive: %s: the document's layout has no configdrive partition\n", pos[0])
		return 2
	}
	c := job.Configdrive.Content
	if device {
		if err := agent.DestructiveAllowed(os.Getenv, kernelCmdline()); err != nil {
			fmt.Fprintf(env.stderr, "configdrive: %v\n", err)
			return 3
		}
	}
	if dump != "" {
		for _, fl := range c.Files(f) {
			p := dump + "/" + fl.Path
			err := os.MkdirAll(p[:strings.LastIndex(p, "/")], 0o755)
			if err == nil {
				err = os.WriteFile(p, fl.Data, 0o600)
			}
			if err != nil {
				fmt.Fprintf(env.stderr, "configdrive: --dump: %v\n", err)
				return 1
			}
		}
	}
	opts := configdrive.ImageOptions{SectorSize: sector}
	var b *configdrive.Built
	if device {
		b, err = configdrive.WriteDevice(ctx, c, f, out, sizeMiB<<20, opts)
	} else {
		b, err = configdrive.WriteFile(ctx, c, f, out, sizeMiB<<20, opts)
	}
	if err != nil {
		fmt.Fprintf(env.stderr, "configdrive: %v\n", err)
		return 1
	}
	fmt.Fprintf(env.stdout, "wrote %s configdrive (%s, label %s, %d bytes) for %s, instance-id %s, to %s\n",
		b.Format, b.FSType, b.Format.Label(), b.Size, c.Hostname, c.InstanceID, out)
	return 0
}
