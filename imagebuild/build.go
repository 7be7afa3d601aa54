package imagebuild

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/imprint-dev/imprint/internal/sys"
)

// BuildOptions configure Build beyond the Fuel JSON.
type BuildOptions struct {
	// WorkDir is fuel-agent's image_build_dir: the chroot and the raw
	// images are made in a temporary directory below it (os.TempDir()
	// when empty).
	WorkDir string
	// Mirror is the Debian mirror used when the config has no repos; empty:
	// the host's (HostMirror over HostRoot).
	Mirror string
	// HostRoot is the host's root for reading its apt sources (os.DirFS("/")).
	HostRoot fs.FS
	// Kernel is the kernel flavour of the default packages (KernelCloud).
	Kernel string
	// Elements are element directories or names (diskimage-builder
	// style), expanded with their element-deps; names are looked up in
	// ElementsPath.
	Elements []string
	// ElementsPath is diskimage-builder's ELEMENTS_PATH: directories that
	// hold elements by name.
	ElementsPath []string
	// Force rebuilds even when every output exists.
	Force bool
	// DryRun returns the plan without running it.
	DryRun bool
	// Options go to BuildPlan (Chroot, TmpDir, FSUUIDs and Hooks are set by Build).
	Options Options
}

// Deps are the adapters Build uses.
type Deps struct {
	Runner  Runner
	Mounter Mounter
	Procs   Procs
	Log     *slog.Logger
	// GzipMember and Workers tune the compression (0: defaults).
	GzipMember, Workers int
}

// SystemDeps are the real adapters.
func SystemDeps(log *slog.Logger) Deps {
	return Deps{Runner: &sys.Exec{Logger: log}, Mounter: sys.Mounter{}, Procs: SysProcs{}, Log: log}
}

// Result is what a build did.
type Result struct {
	Plan     Plan
	Skipped  bool // every output existed
	Sums     map[string]Sums
	Duration time.Duration
}

// Prepare applies the defaults to cfg (the host's mirror when it has no
// repos) and validates the result.
func Prepare(cfg Config, bo BuildOptions) (Config, error) {
	mirror := bo.Mirror
	if len(cfg.Repos) == 0 && mirror == "" {
		root := bo.HostRoot
		if root == nil {
			root = os.DirFS("/")
		}
		codename := cfg.Codename
		if codename == "" {
			codename = DefaultCodename
		}
		m, err := HostMirror(root, codename)
		if err != nil {
			return Config{}, fmt.Errorf("repos: none given, and %w", err)
		}
		mirror = m
	}
	kernel := bo.Kernel
	if kernel == "" {
		kernel = KernelCloud
	}
	cfg = cfg.WithDefaults(mirror, kernel)
	if err := cfg.Validate(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// Build builds the images of cfg: defaults and validation (Prepare), the
// "nothing to do" check, the elements, the plan, its execution. Temporary
// directories are removed afterwards, never while anything is mounted in
// them.
func Build(ctx context.Context, cfg Config, bo BuildOptions, d Deps) (Result, error) {
	t0 := time.Now()
	log := d.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg, err := Prepare(cfg, bo)
	if err != nil {
		return Result{}, err
	}
	if !bo.Force && !bo.DryRun && allExist(cfg, bo.Options) {
		log.Info("All necessary images are available. Nothing needs to be done.")
		return Result{Skipped: true, Duration: time.Since(t0)}, nil
	}
	elements, err := ElementSearch{Path: bo.ElementsPath}.Resolve(bo.Elements)
	if err != nil {
		return Result{}, err
	}
	hooks, err := LoadElements(elements)
	if err != nil {
		return Result{}, err
	}
	o := bo.Options
	o.Hooks = hooks
	o.ElementNames = nil
	for _, el := range elements {
		o.ElementNames = append(o.ElementNames, filepath.Base(filepath.Clean(el)))
	}
	o.FSUUIDs = map[string]string{}
	for mp := range cfg.ImageData {
		o.FSUUIDs[mp] = newUUID()
	}
	workDir := bo.WorkDir
	if workDir == "" {
		workDir = os.TempDir()
	}
	if bo.DryRun {
		o.Chroot, o.TmpDir, o.HooksDir = filepath.Join(workDir, "DRYRUN.fuel-agent-image"), filepath.Join(workDir, "DRYRUN.tmp"), filepath.Join(workDir, "DRYRUN.hooks")
		p, err := BuildPlan(cfg, o)
		return Result{Plan: p}, err
	}
	if err := os.MkdirAll(workDir, 0o755); err != nil {
		return Result{}, fmt.Errorf("image build dir %q: %w", workDir, err)
	}
	base, err := os.MkdirTemp(workDir, "imprint-image-")
	if err != nil {
		return Result{}, fmt.Errorf("image build dir %q: %w", workDir, err)
	}
	o.Chroot = filepath.Join(base, "root.fuel-agent-image")
	o.TmpDir = filepath.Join(base, "tmp")
	o.HooksDir = filepath.Join(base, "hooks")
	for _, dir := range []string{o.Chroot, o.TmpDir, o.HooksDir} {
		if err := os.Mkdir(dir, 0o755); err != nil {
			return Result{}, err
		}
	}
	p, err := BuildPlan(cfg, o)
	if err != nil {
		os.RemoveAll(base)
		return Result{}, err
	}
	log.Info("--- Building image (do_build_image) ---", "steps", len(p.Steps), "codename", cfg.Codename,
		"mirror", cfg.Repos[0].URI, "packages", len(cfg.Packages), "elements", o.ElementNames, "work_dir", base)
	ex := &Executor{Runner: d.Runner, Mounter: d.Mounter, Procs: d.Procs, Log: log, Config: cfg,
		GzipMember: d.GzipMember, Workers: d.Workers}
	runErr := ex.Run(ctx, p)
	// the chroot is empty once unmounted; never remove below a mount
	if mounts, err := d.Mounter.MountedUnder(base); err != nil || len(mounts) > 0 {
		log.Error("work dir left in place: still mounted", "dir", base, "mounts", mounts, "err", err)
		if runErr == nil {
			runErr = fmt.Errorf("work dir %q: %w", base, ErrMountedBelow)
		}
	} else if err := os.RemoveAll(base); err != nil {
		log.Warn("remove work dir", "dir", base, "err", err)
	}
	res := Result{Plan: p, Sums: ex.Sums(), Duration: time.Since(t0)}
	if runErr != nil {
		return res, runErr
	}
	log.Info("--- Building image END (do_build_image) ---", "duration", res.Duration.Round(time.Second), "outputs", p.Outputs)
	return res, nil
}

// allExist reports whether every image and the metadata of cfg exist, and
// the whole-disk image and tarball of o when asked for.
func allExist(cfg Config, o Options) bool {
	images, meta := OutputPaths(cfg)
	paths := append(mapValues(images), meta)
	for _, p := range []string{o.DiskImage, o.Tarball} {
		if p != "" {
			paths = append(paths, p)
		}
	}
	for _, p := range paths {
		if _, err := os.Stat(p); err != nil {
			return false
		}
	}
	return true
}

func mapValues(m map[string]string) []string {
	var out []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		out = append(out, m[k])
	}
	return out
}

func newUUID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(errors.New("crypto/rand failed"))
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
