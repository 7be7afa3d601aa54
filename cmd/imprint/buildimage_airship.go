//go:build !imprint_ramdisk

package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/imprint-dev/imprint/imagebuild"
)

// airshipRun is build-image for an Airship ImageConfiguration or
// AirshipImage document (imagebuild.ParseAirship): the builder files are
// read from the config directory (the host side of container.volume, else
// the document's directory), the outputs written there (or to --output).
type airshipRun struct {
	data    []byte
	docPath string // "-" for stdin
	output  string
	bo      imagebuild.BuildOptions
	log     func() (*slog.Logger, func(), error)
}

func (a airshipRun) run(ctx context.Context, env *cmdEnv) int {
	fail := func(code int, format string, args ...any) int {
		fmt.Fprintf(env.stderr, "build-image: "+format+"\n", args...)
		return code
	}
	for flag, v := range map[string]string{"--disk": a.bo.Options.DiskImage, "--tarball": a.bo.Options.Tarball, "--compress/--container": a.bo.Options.Container} {
		if v != "" {
			return fail(2, "%s: an Airship document says what it builds (action, image.outputFileName); drop the flag", flag)
		}
	}
	doc, err := imagebuild.ParseAirship(a.data)
	if err != nil {
		return fail(2, "%v", err)
	}
	if err := doc.Validate(); err != nil {
		return fail(2, "invalid airship document:\n%v", err)
	}
	docDir, err := os.Getwd()
	if err != nil {
		return fail(2, "%v", err)
	}
	if a.docPath != "-" && a.docPath != "" {
		if docDir, err = filepath.Abs(filepath.Dir(a.docPath)); err != nil {
			return fail(2, "%v", err)
		}
	}
	in := imagebuild.AirshipInput{ConfigDir: doc.ConfigDir(docDir)}
	if a.output != "" {
		if in.OutputDir, err = filepath.Abs(a.output); err != nil {
			return fail(2, "--output: %v", err)
		}
	}
	if b := doc.BuilderFiles(); b.UserDataFileName != "" {
		if in.UserData, err = os.ReadFile(filepath.Join(in.ConfigDir, b.UserDataFileName)); err != nil {
			return fail(2, "builder.userDataFileName: %v", err)
		}
	}
	if b := doc.BuilderFiles(); b.NetworkConfigFileName != "" {
		if in.NetworkConfig, err = os.ReadFile(filepath.Join(in.ConfigDir, b.NetworkConfigFileName)); err != nil {
			return fail(2, "builder.networkConfigFileName: %v", err)
		}
	}
	work := a.bo.WorkDir
	if work == "" {
		work = os.TempDir()
	}
	if work, err = filepath.Abs(work); err != nil {
		return fail(2, "--image_build_dir: %v", err)
	}
	in.WorkDir = filepath.Join(work, "imprint-airship-"+doc.DocName())
	if !a.bo.DryRun {
		// one scratch directory per run: two builds of a document never share one
		if err := os.MkdirAll(work, 0o755); err != nil {
			return fail(2, "--image_build_dir: %v", err)
		}
		if in.WorkDir, err = os.MkdirTemp(work, "imprint-airship-"+doc.DocName()+"-"); err != nil {
			return fail(2, "--image_build_dir: %v", err)
		}
		defer os.Remove(in.WorkDir)
	}
	ab, err := doc.Resolve(in)
	if err != nil {
		return fail(2, "invalid airship document:\n%v", err)
	}
	if _, err := imagebuild.Prepare(ab.Config, a.bo); err != nil {
		return fail(2, "invalid airship document:\n%v", err)
	}
	if a.bo.DryRun {
		fmt.Fprintf(env.stdout, "# %s %s: %s (metadata %s)\n", ab.Action, ab.Name, ab.Output, ab.Metadata)
		bo := a.bo
		bo.Kernel, bo.Options.Tarball = ab.Kernel, ab.Tarball
		if ab.Action == imagebuild.ActionQcow {
			bo.Options.DiskImage, bo.Options.DiskFormat, bo.Options.DiskSize = ab.Output, "qcow2", ab.DiskSize
		}
		res, err := imagebuild.Build(ctx, ab.Config, bo, imagebuild.Deps{})
		if err != nil {
			return fail(2, "%v", err)
		}
		fmt.Fprint(env.stdout, res.Plan.String())
		if ab.Action == imagebuild.ActionISO {
			p, err := imagebuild.ISOPlan(imagebuild.ISOInput{Tarball: ab.Tarball, KernelVersion: "{kver}", WorkDir: ab.WorkDir,
				Output: ab.Output, Label: "DRYRUN", Title: ab.Name})
			if err != nil {
				return fail(2, "%v", err)
			}
			fmt.Fprint(env.stdout, p.String())
		}
		return 0
	}
	log, closeLog, err := a.log()
	if err != nil {
		return fail(2, "%v", err)
	}
	defer closeLog()
	res, err := imagebuild.BuildAirship(ctx, ab, a.bo, imagebuild.SystemDeps(log))
	if err != nil {
		return fail(1, "%v", err)
	}
	if res.Skipped {
		fmt.Fprintln(env.stdout, "all outputs exist; nothing built")
		return 0
	}
	for _, o := range res.Outputs {
		fmt.Fprintln(env.stdout, o)
	}
	return 0
}
