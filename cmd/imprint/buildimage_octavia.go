//go:build !imprint_ramdisk

package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/imprint-dev/imprint/imagebuild"
)

const octaviaUsage = `
Without CONFIG.json, build-image is Octavia's diskimage-create.sh and builds
the amphora image; no argument at all builds the supported default:

  imprint build-image [-a amd64] [-b haproxy] [-c CACHE] [-h] [-i debian|ubuntu]
                      [-o amphora-x64-haproxy] [-r ROOT-PASSWORD] [-s 5]
                      [-t qcow2|raw|tar[,...]] [-w WORKDIR]

  -a, --arch            architecture (default amd64; others cannot be built here)
  -b, --backend         load balancer backend element (default haproxy)
  -c, --cache           debootstrap cache (default ~/.cache/image-create)
  -i, --base-os         debian (this host's mirror, bookworm) or ubuntu (jammy;
                        needs DIB_DISTRIBUTION_MIRROR)
  -o, --output-name     output file name without extension (amphora-x64-haproxy)
  -r, --root-password   enable root with this password (default: root locked)
  -s, --size            disk image size in GB (default 5)
  -t, --image-type      qcow2 (default), raw, tar (docker import), comma separated
  -w, --workdir         working directory for the build (default .)

Environment: DIB_DISTRIBUTION_MIRROR (the base OS mirror), DIB_ELEMENTS
(elements instead of the backend's), DIB_LOCAL_ELEMENTS with
DIB_LOCAL_ELEMENTS_PATH (elements added), ELEMENTS_PATH, DIB_RELEASE.
Elements may use element-deps, environment.d, root.d, extra-data.d,
pre-install.d, install.d, post-install.d, block-device.d, finalise.d,
cleanup.d and first-boot.d. Besides the images, <output>.root.img.zst and
<output>.yaml are the root filesystem and metadata for imprint's agent.
`

// octaviaArgs are diskimage-create.sh's flags.
type octaviaArgs struct {
	arch, backend, os, output, rootPassword, types, workDir, size string
}

// register adds the flags, short and long, to fs. -c and --cache are the
// Fuel mode's --cache (the same directory: the debootstrap cache).
func (a *octaviaArgs) register(fs *flag.FlagSet, cache *string) {
	for _, f := range []struct {
		p            *string
		short, long  string
		def, summary string
	}{
		{&a.arch, "a", "arch", "amd64", "Octavia: architecture"},
		{&a.backend, "b", "backend", "haproxy", "Octavia: backend element"},
		{&a.os, "i", "base-os", "debian", "Octavia: base OS (debian, ubuntu)"},
		{&a.output, "o", "output-name", imagebuild.OctaviaOutput, "Octavia: output file name without extension"},
		{&a.rootPassword, "r", "root-password", "", "Octavia: enable root with this password"},
		{&a.size, "s", "size", strconv.Itoa(imagebuild.OctaviaSizeGB), "Octavia: image size in GB"},
		{&a.types, "t", "image-type", "qcow2", "Octavia: qcow2, raw, tar (comma separated)"},
		{&a.workDir, "w", "workdir", ".", "Octavia: working directory"},
	} {
		fs.StringVar(f.p, f.short, f.def, f.summary)
		fs.StringVar(f.p, f.long, f.def, f.summary)
	}
	fs.StringVar(cache, "c", "", "Octavia: cache directory (the same as --cache; default ~/.cache/image-create)")
}

// octavia turns the flags, the environment and the host into a build.
func (a *octaviaArgs) octavia(cache string) (imagebuild.Octavia, error) {
	o := imagebuild.DefaultOctavia(cache)
	size, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSuffix(a.size, "G"), "GB"))
	if err != nil {
		return o, fmt.Errorf("-s %q: want a size in GB such as 5", a.size)
	}
	o.Arch, o.Backend, o.OS, o.RootPassword, o.SizeGB = a.arch, a.backend, a.os, a.rootPassword, size
	o.Types = strings.Split(a.types, ",")
	if o.Output, err = filepath.Abs(a.output); err != nil {
		return o, fmt.Errorf("-o %q: %w", a.output, err)
	}
	if o.WorkDir, err = filepath.Abs(a.workDir); err != nil {
		return o, fmt.Errorf("-w %q: %w", a.workDir, err)
	}
	if o.Cache == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return o, fmt.Errorf("-c: no default cache without a home directory (%v); give -c", err)
		}
		o.Cache = filepath.Join(home, ".cache", "image-create")
	} else if o.Cache, err = filepath.Abs(o.Cache); err != nil {
		return o, fmt.Errorf("-c %q: %w", cache, err)
	}
	return o, nil
}

// runOctavia builds the amphora image of a; bo carries the common flags
// (dry run, force, mirror).
func runOctavia(ctx context.Context, env *cmdEnv, a *octaviaArgs, bo imagebuild.BuildOptions, h slog.Handler) int {
	o, err := a.octavia(bo.Options.Cache)
	if err != nil {
		fmt.Fprintf(env.stderr, "build-image: %v\n", err)
		return 2
	}
	oenv := imagebuild.OctaviaEnvFrom(os.Getenv)
	if oenv.Mirror == "" {
		oenv.Mirror = bo.Mirror
	}
	if err := os.MkdirAll(o.WorkDir, 0o755); err != nil {
		fmt.Fprintf(env.stderr, "build-image: -w: %v\n", err)
		return 2
	}
	builtin, err := os.MkdirTemp(o.WorkDir, "imprint-elements-")
	if err != nil {
		fmt.Fprintf(env.stderr, "build-image: -w: %v\n", err)
		return 2
	}
	defer os.RemoveAll(builtin)
	if err := imagebuild.WriteBuiltinElements(builtin); err != nil {
		fmt.Fprintf(env.stderr, "build-image: builtin elements: %v\n", err)
		return 1
	}
	ob, err := imagebuild.PrepareOctavia(o, oenv, os.DirFS("/"), builtin)
	if err != nil {
		fmt.Fprintf(env.stderr, "build-image: %v\n", err)
		return 2
	}
	ob.Options.DryRun, ob.Options.Force = bo.DryRun, bo.Force
	if bo.Options.NoEatmydata {
		ob.Options.Options.NoEatmydata = true
	}
	log := slog.New(h).With("cmd", "build-image", "mode", "octavia")
	log.Info("building the amphora image", "os", o.OS, "codename", ob.Config.Codename, "arch", o.Arch, "backend", o.Backend,
		"size_gb", o.SizeGB, "types", o.Types, "outputs", ob.Outputs, "elements", ob.Options.Elements, "root_password", o.RootPassword != "")
	return buildAndReport(ctx, env, ob.Config, ob.Options, log)
}
