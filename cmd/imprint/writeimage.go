package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/imprint-dev/imprint/agent"
	"github.com/imprint-dev/imprint/imagewriter"
	"github.com/imprint-dev/imprint/internal/sys"
)

const writeImageUsage = `usage: imprint write-image [flags] URL DEVICE
       fa_copyimage [flags] [FILE]

As fa_copyimage (fuel-agent's console script) without URL and DEVICE, it
writes every image of the provision document FILE (default
/tmp/provision.json) onto the devices its plan gives them, the node's disks
already partitioned (fa_partition), then moves what an image holds below a
nested mount point into the filesystem mounted there.

Streams the image at URL (http, https, file, or an absolute path) onto the
block device DEVICE: compression (gzip, zstd, xz, raw) is detected from the
magic bytes, the download resumes with Range after a dropped or stalled
connection, digests are checked inline, and the first MiB is written last,
only after everything verified (on failure it is zeroed).

A multi-frame zstd image (imprint convert-image, build-image --container
zstd) is found by its manifest beside it: its frames are decoded on every
core, each checked against the manifest's sha256 before it is written, zero
frames left to the device, and a broken download restarts at the frame
boundary on the next --mirror.

Flags may come before or after URL and DEVICE.
`

// runWriteImage is `imprint write-image URL DEVICE`.
func runWriteImage(ctx context.Context, env *cmdEnv, args []string) int {
	fs := newFlagSet(env, "write-image", writeImageUsage)
	var (
		req          imagewriter.Request
		opts         imagewriter.Options
		container    string
		verbose      bool
		jsonLog      bool
		noGrow       bool
		progressIntv time.Duration
		mirrors      stringList
	)
	fs.StringVar(&req.SHA256, "sha256", "", "hex sha256 of the file as downloaded")
	fs.StringVar(&req.SHA512, "sha512", "", "hex sha512 of the file as downloaded")
	fs.StringVar(&req.MD5, "md5", "", "hex md5 of the first --size bytes of the decompressed image (Fuel raw_md5)")
	fs.Int64Var(&req.RawSize, "size", 0, "decompressed image size in bytes (Fuel raw_size); any other length fails")
	fs.StringVar(&req.MetadataURL, "metadata", "", "Fuel image metadata YAML giving raw_size/raw_md5 (must list the image)")
	fs.BoolVar(&req.FuelMetadata, "fuel-metadata", false, "look for <stem>.yaml beside the image as fuel-agent does (best effort)")
	fs.StringVar(&req.ManifestURL, "manifest", "", "frame manifest of a multi-frame zstd image (default: URL.manifest.json when URL ends in .zst)")
	fs.StringVar(&req.ManifestSHA256, "manifest-sha256", "", "hex sha256 of the frame manifest: authenticates every frame, so the whole image, without hashing the file again")
	fs.Var(&mirrors, "mirror", "another URL of the same multi-frame image, used when a frame cannot be read from the first (repeatable)")
	fs.StringVar(&container, "container", "", "declared compression: gzip|zstd|xz|raw (checked against the magic bytes)")
	fs.StringVar(&req.Format, "format", "", "filesystem in the image (ext2|ext3|ext4|xfs): grown to fill DEVICE afterwards")
	fs.BoolVar(&noGrow, "no-grow", false, "do not grow the filesystem even with --format")
	fs.BoolVar(&opts.AllowRegularFile, "file", false, "allow DEVICE to be a regular file (created if missing)")
	fs.BoolVar(&opts.TargetZeroed, "zeroed", false, "assert DEVICE reads back as zeroes (discarded/zeroed): skip writing zero blocks")
	fs.BoolVar(&opts.NoDirect, "no-direct", false, "do not use O_DIRECT")
	fs.BoolVar(&opts.NoZeroOffload, "no-zero-offload", false, "write every zero byte instead of having DEVICE zero runs of 1 MiB or more itself (write-zeroes)")
	fs.DurationVar(&opts.IdleTimeout, "idle-timeout", 30*time.Second, "abort and resume a connection that sends nothing for this long")
	fs.DurationVar(&opts.Timeout, "timeout", 0, "give up after this long in total (0: no limit)")
	fs.IntVar(&opts.MaxRetries, "retries", 10, "attempts without progress before giving up")
	fs.DurationVar(&progressIntv, "progress", 2*time.Second, "interval of progress lines (0: none)")
	fs.BoolVar(&verbose, "v", false, "debug logs, including fuel-agent's per-MiB \"Next chunk: N\" lines")
	fs.BoolVar(&jsonLog, "json", false, "log as JSON")
	pos, code, ok := parseInterspersed(fs, args)
	if !ok {
		return code
	}
	if env.alias == "fa_copyimage" && len(pos) <= 1 {
		// fuel-agent's fa_copyimage: every image of the document
		doc := "/tmp/provision.json"
		if len(pos) == 1 {
			doc = pos[0]
		}
		log := slog.New(logHandler(env.stderr, verbose, jsonLog)).With("cmd", "fa_copyimage")
		// fuel-agent's per-MiB "Next chunk" lines, whatever the level
		chunkLog := slog.New(logHandler(env.stderr, true, jsonLog)).With("cmd", "fa_copyimage")
		return copyDocumentImages(ctx, env, doc, log, chunkLog, opts)
	}
	if len(pos) != 2 {
		fmt.Fprintf(env.stderr, "write-image: want URL and DEVICE, got %d argument(s)\n\n", len(pos))
		fs.Usage()
		return 2
	}
	req.URL, req.Device = pos[0], pos[1]
	req.Mirrors = mirrors
	req.Container = imagewriter.Container(strings.ToLower(container))
	if err := req.Validate(); err != nil {
		fmt.Fprintf(env.stderr, "write-image: invalid arguments:\n%v\n", err)
		return 2
	}

	if st, err := os.Stat(req.Device); err == nil && st.Mode()&os.ModeDevice != 0 {
		if err := agent.DestructiveAllowed(os.Getenv, kernelCmdline()); err != nil {
			fmt.Fprintf(env.stderr, "write-image: %s: %v\n", req.Device, err)
			return 3
		}
	}

	h := logHandler(env.stderr, verbose, jsonLog)
	opts.Logger = slog.New(h).With("cmd", "write-image")
	opts.Logger.Info(agent.FuelAgentLine(agent.StepImages), "url", req.URL, "device", req.Device)
	if !noGrow {
		opts.Runner = &sys.Exec{}
	}
	if progressIntv > 0 {
		opts.ProgressInterval = progressIntv
		opts.Progress = progressPrinter(opts.Logger)
	}
	res, err := imagewriter.Write(ctx, req, opts)
	if err != nil {
		fmt.Fprintf(env.stderr, "write-image: %v\n", err)
		return 1
	}
	sum := res.SHA256
	if sum == "" {
		sum = "not computed"
	}
	kind := string(res.Container)
	if res.Frames > 0 {
		kind = fmt.Sprintf("%s, %d frames, %d mirror switches", kind, res.Frames, res.MirrorSwitches)
	}
	fmt.Fprintf(env.stdout, "wrote %d bytes (%s, %d downloaded) to %s in %s: %.0f MB/s; sha256 %s; verified [%s]; retries %d; direct %v; grown %v\n",
		res.BytesWritten, kind, res.BytesRead, req.Device, res.Duration.Round(time.Millisecond),
		float64(res.BytesWritten)/res.Duration.Seconds()/1e6, sum, strings.Join(res.Verified, ","),
		res.Retries, res.Direct, res.Grown)
	return 0
}

// progressPrinter logs progress events as structured lines.
func progressPrinter(log *slog.Logger) func(imagewriter.Progress) {
	return func(p imagewriter.Progress) {
		if p.Phase == "done" {
			return
		}
		attrs := []any{"phase", p.Phase, "read", p.BytesRead, "written", p.BytesWritten, "durable", p.BytesDurable,
			"mb_per_s", fmt.Sprintf("%.1f", p.Rate/1e6)}
		if p.TotalRead > 0 {
			attrs = append(attrs, "total_read", p.TotalRead, "percent", fmt.Sprintf("%.1f", 100*float64(p.BytesRead)/float64(p.TotalRead)))
		}
		if p.ETA >= 0 {
			attrs = append(attrs, "eta", p.ETA.Round(time.Second).String())
		}
		log.Info("progress", attrs...)
	}
}
