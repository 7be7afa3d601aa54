//go:build !imprint_ramdisk

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/imprint-dev/imprint/imagebuild"
)

const buildImageUsage = `usage: imprint build-image [flags] CONFIG.json
       imprint build-image [flags] --input_data JSON
       (also as fa_build_image, with fuel-agent's --input_data,
       --image_build_dir, --data_driver and --log-file)

Builds the target OS images of a Fuel image build config (image_data per
mount point, output, repos, codename, packages, root password, proxies):
one filesystem image per mount point on its own loop device, debootstrap
and apt in a chroot, element hooks (diskimage-builder's extra-data.d,
pre-install.d, install.d, post-install.d, block-device.d, finalise.d,
cleanup.d), each filesystem shrunk to its minimum and compressed into
<output>/<basename of uri>, and <output>/<stem>.yaml with the sizes and
md5s. Nothing is rebuilt when every output exists. CONFIG.json may be "-"
for stdin. Without repos the host's apt mirror is used.

An Airship document (kind ImageConfiguration, apiVersion
airshipit.org/v1alpha1, or kind AirshipImage/v1) is taken instead of the
Fuel config: its action build-root writes a root tarball, build-qcow a
whole-disk qcow2 (params.storage: diskSize, partitions), build-iso a live
ISO booting BIOS and UEFI; params.software adds packages and repos,
params.networking sets the host name and /etc/hosts. The builder's
userDataFileName and networkConfigFileName (read from the host side of
container.volume, else the document's directory) are baked in as
cloud-init's NoCloud seed; outputMetadataFileName gets the files, sizes,
sha256s, kernel and installed packages. Unknown fields are errors.

Flags may come before or after CONFIG.json.
` + octaviaUsage

// runBuildImage is `imprint build-image CONFIG.json`.
func runBuildImage(ctx context.Context, env *cmdEnv, args []string) int {
	fs := newFlagSet(env, "build-image", buildImageUsage)
	var (
		bo                    imagebuild.BuildOptions
		elements              stringList
		inputData, dataDriver string
		logFile, imageSize    string
		output, diskSize      string
		verbose, jsonLog      bool
	)
	fs.StringVar(&inputData, "input_data", "", "the config as a JSON string (fuel-agent)")
	fs.StringVar(&dataDriver, "data_driver", "nailgun_build_image", "fuel-agent's data driver: only nailgun_build_image")
	fs.StringVar(&bo.WorkDir, "image_build_dir", "", "directory for the chroot and the raw images (default $TMPDIR)")
	fs.StringVar(&logFile, "log-file", "", "also append the log to this file (JSON lines)")
	fs.StringVar(&output, "output", "", "write the outputs to this directory instead of the config's output")
	fs.Var(&elements, "element", "element directory with *.d hook dirs (repeatable, applied in order)")
	fs.StringVar(&bo.Kernel, "kernel", imagebuild.KernelCloud, "kernel of the default package set: cloud (linux-image-cloud-amd64) or generic (linux-image-amd64)")
	fs.StringVar(&bo.Mirror, "mirror", "", "Debian mirror when the config has no repos (default: the host's apt source)")
	fs.StringVar(&bo.Options.Variant, "variant", "", "debootstrap variant (minbase, buildd; default: required+important)")
	fs.StringVar(&bo.Options.Cache, "cache", "", "directory caching the debootstrap tarball between builds")
	fs.StringVar(&bo.Options.Container, "compress", "", "compress every image with gzip, zstd or raw instead of its container")
	fs.StringVar(&bo.Options.Container, "container", "", "the same as --compress; zstd writes multi-frame images with a manifest beside each")
	fs.StringVar(&bo.Options.DiskImage, "disk", "", "also write a whole-disk image (MBR, grub boot code, the filesystems) to this file")
	fs.StringVar(&bo.Options.DiskFormat, "disk-format", "qcow2", "format of --disk: raw or qcow2")
	fs.StringVar(&diskSize, "disk-size", "", "size of --disk (default: what the filesystems need plus 1 GiB for /)")
	fs.StringVar(&bo.Options.Tarball, "tarball", "", "also write the root tree as a tar for docker import to this file")
	fs.StringVar(&imageSize, "image-size", "8G", "size of each sparse filesystem image while building (growth limit of ext4: 1024x)")
	fs.BoolVar(&bo.Options.AllowUnsigned, "allow-unsigned", false, "do not check repository signatures (debootstrap --no-check-gpg, apt AllowUnauthenticated)")
	fs.BoolVar(&bo.Options.NoEatmydata, "no-eatmydata", false, "run apt without eatmydata")
	fs.BoolVar(&bo.Force, "force", false, "rebuild even when every output exists")
	fs.BoolVar(&bo.DryRun, "dry-run", false, "print the steps and do nothing")
	fs.BoolVar(&verbose, "v", false, "debug logs, including the output of every command")
	fs.BoolVar(&jsonLog, "json", false, "log as JSON")
	var oa octaviaArgs
	oa.register(fs, &bo.Options.Cache)
	pos, code, ok := parseInterspersed(fs, args)
	if !ok {
		return code
	}
	if inputData == "" && len(pos) == 0 {
		return runOctavia(ctx, env, &oa, bo, logHandler(env.stderr, verbose, jsonLog))
	}
	if dataDriver != "nailgun_build_image" {
		fmt.Fprintf(env.stderr, "build-image: --data_driver %q: only nailgun_build_image is supported\n", dataDriver)
		return 2
	}
	var data []byte
	switch {
	case inputData != "" && len(pos) == 0:
		data = []byte(inputData)
	case inputData == "" && len(pos) == 1:
		var err error
		if pos[0] == "-" {
			data, err = io.ReadAll(env.stdin)
		} else {
			data, err = os.ReadFile(pos[0])
		}
		if err != nil {
			fmt.Fprintf(env.stderr, "build-image: %v\n", err)
			return 2
		}
	default:
		fmt.Fprintf(env.stderr, "build-image: want CONFIG.json or --input_data, got %d argument(s)\n\n", len(pos))
		fs.Usage()
		return 2
	}
	size, err := parseSize(imageSize)
	if err != nil {
		fmt.Fprintf(env.stderr, "build-image: --image-size: %v\n", err)
		return 2
	}
	bo.Options.ImageSize = size
	if diskSize != "" {
		if bo.Options.DiskSize, err = parseSize(diskSize); err != nil {
			fmt.Fprintf(env.stderr, "build-image: --disk-size: %v\n", err)
			return 2
		}
	}
	bo.Elements = elements
	if bo.Options.DiskImage == "" {
		bo.Options.DiskFormat = ""
	}
	if imagebuild.IsAirship(data) {
		doc := "-"
		if len(pos) == 1 {
			doc = pos[0]
		}
		return airshipRun{data: data, docPath: doc, output: output, bo: bo,
			log: func() (*slog.Logger, func(), error) { return buildImageLog(env, logFile, verbose, jsonLog) }}.run(ctx, env)
	}
	cfg, err := imagebuild.Parse(data)
	if err != nil {
		fmt.Fprintf(env.stderr, "build-image: %v\n", err)
		return 2
	}
	if output != "" {
		if cfg.Output, err = filepath.Abs(output); err != nil {
			fmt.Fprintf(env.stderr, "build-image: --output: %v\n", err)
			return 2
		}
	}
	if _, err := imagebuild.Prepare(cfg, bo); err != nil {
		fmt.Fprintf(env.stderr, "build-image: invalid config:\n%v\n", err)
		return 2
	}

	log, closeLog, err := buildImageLog(env, logFile, verbose, jsonLog)
	if err != nil {
		fmt.Fprintf(env.stderr, "build-image: %v\n", err)
		return 2
	}
	defer closeLog()
	return buildAndReport(ctx, env, cfg, bo, log)
}

// buildAndReport runs the build (or prints its plan with --dry-run) and
// prints its outputs; its exit code: 2 for a plan that cannot be made, 1
// for a failed build.
func buildAndReport(ctx context.Context, env *cmdEnv, cfg imagebuild.Config, bo imagebuild.BuildOptions, log *slog.Logger) int {
	res, err := imagebuild.Build(ctx, cfg, bo, imagebuild.SystemDeps(log))
	if bo.DryRun {
		if err != nil {
			fmt.Fprintf(env.stderr, "build-image: %v\n", err)
			return 2
		}
		fmt.Fprint(env.stdout, res.Plan.String())
		return 0
	}
	if err != nil {
		fmt.Fprintf(env.stderr, "build-image: %v\n", err)
		return 1
	}
	if res.Skipped {
		fmt.Fprintln(env.stdout, "all outputs exist; nothing built (--force rebuilds)")
		return 0
	}
	for _, o := range res.Plan.Outputs {
		fmt.Fprintln(env.stdout, o)
	}
	return 0
}

// buildImageLog is build-image's logger: stderr, and --log-file as JSON lines.
func buildImageLog(env *cmdEnv, logFile string, verbose, jsonLog bool) (*slog.Logger, func(), error) {
	h := logHandler(env.stderr, verbose, jsonLog)
	closeLog := func() {}
	if logFile != "" {
		f, err := os.OpenFile(logFile, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			return nil, nil, fmt.Errorf("--log-file: %w", err)
		}
		closeLog = func() { f.Close() }
		h = multiHandler{h, slog.NewJSONHandler(f, &slog.HandlerOptions{Level: slog.LevelDebug})}
	}
	return slog.New(h).With("cmd", "build-image"), closeLog, nil
}

// parseSize reads 8G, 512M, 1048576.
func parseSize(s string) (int64, error) {
	mult := int64(1)
	switch {
	case strings.HasSuffix(s, "G"):
		mult, s = 1<<30, strings.TrimSuffix(s, "G")
	case strings.HasSuffix(s, "M"):
		mult, s = 1<<20, strings.TrimSuffix(s, "M")
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("%q is not a size such as 8G, 512M or bytes", s)
	}
	return n * mult, nil
}

// multiHandler sends records to every handler that is enabled for them.
type multiHandler []slog.Handler

func (m multiHandler) Enabled(ctx context.Context, l slog.Level) bool {
	for _, h := range m {
		if h.Enabled(ctx, l) {
			return true
		}
	}
	return false
}

func (m multiHandler) Handle(ctx context.Context, r slog.Record) error {
	var errs []error
	for _, h := range m {
		if h.Enabled(ctx, r.Level) {
			errs = append(errs, h.Handle(ctx, r.Clone()))
		}
	}
	return errors.Join(errs...)
}

func (m multiHandler) WithAttrs(a []slog.Attr) slog.Handler {
	out := make(multiHandler, len(m))
	for i, h := range m {
		out[i] = h.WithAttrs(a)
	}
	return out
}

func (m multiHandler) WithGroup(g string) slog.Handler {
	out := make(multiHandler, len(m))
	for i, h := range m {
		out[i] = h.WithGroup(g)
	}
	return out
}
