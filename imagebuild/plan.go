package imagebuild

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/imprint-dev/imprint/bootloader"
)

// Op is what a Step does.
type Op string

// Step operations. Paths inside the image are absolute host paths under
// the chroot; {loop:MOUNTPOINT} in Argv, Env and Source is the loop device
// of that image, resolved by the Executor.
const (
	OpTruncate   Op = "truncate"    // create the sparse file Path of Size bytes
	OpLoopAttach Op = "loop-attach" // attach Path to a free loop device for image Mount
	OpLoopDetach Op = "loop-detach" // detach the loop device of image Mount
	OpRun        Op = "run"         // run Argv on the host (Env, Stdin)
	OpChroot     Op = "chroot"      // run Argv chrooted into Path (Env, Stdin)
	OpMkdir      Op = "mkdir"       // mkdir -p Path
	OpMount      Op = "mount"       // mount Source (FSType; "bind" binds) on Path
	OpUnmount    Op = "umount"      // unmount Path
	OpWrite      Op = "write"       // write Data to Path with Mode
	OpCopy       Op = "copy"        // copy the file Source to Path with Mode
	OpRemove     Op = "remove"      // remove the files matching the glob Path (not directories)
	OpRemoveAll  Op = "remove-all"  // remove the directory tree Path (refused if anything is mounted below)
	OpRename     Op = "rename"      // rename Source to Path
	OpPin        Op = "pin"         // write the pin of Repo from the Release file apt downloaded
	OpKill       Op = "kill"        // kill the processes whose root is inside Path
	OpShrinkFile Op = "fit-file"    // truncate the image file Path to its ext filesystem's size
	OpShrinkXFS  Op = "shrink-xfs"  // copy the xfs image Path into a new one just big enough, made with Argv ({image}: the new file)
	OpCompress   Op = "compress"    // compress the image file Source (Container) to Path, record sizes and md5s
	OpReadOS     Op = "read-os"     // read the image's os-release under Path for the metadata
	OpMetadata   Op = "metadata"    // write the metadata YAML to Path
	OpDiskImage  Op = "disk-image"  // assemble the whole-disk image Path (Data: raw|qcow2)
	OpTar        Op = "tar"         // write the tarball Path of the tree Source
)

// Step is one action of a build. Steps are data, so a Plan can be shown,
// compared and tested; the Executor performs them.
type Step struct {
	Name   string // unique, names the step in logs and errors
	Op     Op
	Argv   []string
	Env    []string
	Stdin  string
	Secret bool   // Stdin or Data are not shown
	Path   string // target path (file, mount point, chroot)
	Source string // source device or file
	FSType string // mount type
	Data   string
	Mode   fs.FileMode
	Size   int64
	Mount  string // the image_data mount point the step is about
	// SkipIfExists skips the step when this path exists (cached downloads).
	SkipIfExists string
	// OKExit lists exit codes that are success besides 0.
	OKExit []int
	// Attempts is how often a failing command is tried (0 and 1: once).
	Attempts int
	// Optional steps may fail: the failure is logged, the build goes on.
	Optional bool
	Repo     *Repo
}

// String renders the step on one line, secrets masked.
func (s Step) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s", s.Name, s.Op)
	if len(s.Argv) > 0 {
		fmt.Fprintf(&b, " %s", strings.Join(s.Argv, " "))
	}
	for _, kv := range [][2]string{{"path", s.Path}, {"source", s.Source}, {"type", s.FSType}, {"mount", s.Mount}, {"skip-if-exists", s.SkipIfExists}} {
		if kv[1] != "" {
			fmt.Fprintf(&b, " %s=%s", kv[0], kv[1])
		}
	}
	if s.Size != 0 {
		fmt.Fprintf(&b, " size=%d", s.Size)
	}
	if s.Mode != 0 {
		fmt.Fprintf(&b, " mode=%o", s.Mode)
	}
	if len(s.Env) > 0 {
		fmt.Fprintf(&b, " env=%s", strings.Join(s.Env, ","))
	}
	if s.Attempts > 1 {
		fmt.Fprintf(&b, " attempts=%d", s.Attempts)
	}
	if len(s.OKExit) > 0 {
		fmt.Fprintf(&b, " ok-exit=%v", s.OKExit)
	}
	if s.Optional {
		b.WriteString(" optional")
	}
	for _, kv := range [][2]string{{"stdin", s.Stdin}, {"data", s.Data}} {
		if kv[1] == "" {
			continue
		}
		if s.Secret {
			fmt.Fprintf(&b, " %s=<secret>", kv[0])
		} else {
			fmt.Fprintf(&b, " %s=%q", kv[0], kv[1])
		}
	}
	return b.String()
}

// Plan is the ordered steps of one build.
type Plan struct {
	Steps []Step
	// Outputs are the files the build produces (compressed images first,
	// then the metadata YAML, then the optional outputs).
	Outputs []string
}

// String renders the plan, one step a line.
func (p Plan) String() string {
	var b strings.Builder
	for _, s := range p.Steps {
		b.WriteString(s.String())
		b.WriteByte('\n')
	}
	return b.String()
}

// Options are the build settings that are not in the Fuel JSON.
type Options struct {
	// Chroot is the (existing, empty) directory the root image is mounted on.
	Chroot string
	// TmpDir holds the raw images while they are built (same filesystem as
	// nothing else: they are compressed from there into Output).
	TmpDir string
	// ImageSize is the size of each sparse image file (default 8 GiB, so
	// ext4's resize limit lets the filesystem grow to 8 TiB later).
	ImageSize int64
	// Arch is the Debian architecture (amd64).
	Arch string
	// Distro is the distribution debootstrapped, for DISTRO_NAME of the
	// hooks: debian (the default) or ubuntu.
	Distro string
	// Variant is the debootstrap variant ("" for the default, "minbase").
	Variant string
	// Cache is a directory where the debootstrap tarball is kept between
	// builds ("" for none): debootstrap --make-tarball, then --unpack-tarball.
	Cache string
	// Container overrides every image's container (zstd instead of gzip).
	Container string
	// AllowUnsigned skips signature checks of debootstrap and apt (repos
	// without a signed Release, as Fuel's were).
	AllowUnsigned bool
	// NoEatmydata runs apt without eatmydata.
	NoEatmydata bool
	// FSUUIDs are the filesystem UUIDs to create, by mount point (written
	// to the image's fstab); the caller generates them.
	FSUUIDs map[string]string
	// Hooks are the element hooks by phase (LoadElements).
	Hooks map[string][]Hook
	// ElementNames are the names of the elements, for $IMAGE_ELEMENT.
	ElementNames []string
	// HooksDir is TMP_HOOKS_PATH (required when there are hooks).
	HooksDir string
	// DiskImage, when set, is a whole-disk image to write as well, with
	// DiskFormat raw or qcow2.
	DiskImage  string
	DiskFormat string
	// DiskSize is the whole-disk image's size; the root partition gets
	// what the filesystems do not need (0: they need plus 1 GiB).
	DiskSize int64
	// Tarball, when set, is a rootfs tar for docker import.
	Tarball string
}

// DefaultImageSize is Fuel's sparse image size.
const DefaultImageSize = 8 << 30

// OutputPaths returns the files a build of cfg writes: the images in
// image_data order of their mount points, then the metadata YAML.
func OutputPaths(cfg Config) (images map[string]string, metadata string) {
	images = map[string]string{}
	for mp, img := range cfg.ImageData {
		base, _ := imageBase(img.URI)
		images[mp] = filepath.Join(cfg.Output, base)
	}
	root, _ := imageBase(cfg.ImageData["/"].URI)
	return images, filepath.Join(cfg.Output, metadataStem(root)+".yaml")
}

// mountOrder sorts mount points by depth, then name ("/" first), the order
// they are mounted in.
func mountOrder(m map[string]Image) []string {
	mps := slices.Sorted(maps.Keys(m))
	sort.SliceStable(mps, func(i, j int) bool { return depth(mps[i]) < depth(mps[j]) })
	return mps
}

func depth(mp string) int {
	if mp == "/" {
		return 0
	}
	return strings.Count(mp, "/")
}

// imageFileName is the raw image's name in TmpDir: root.img, boot.img,
// var-log.img.
func imageFileName(mp string) string {
	if mp == "/" {
		return "root.img"
	}
	return strings.ReplaceAll(strings.Trim(mp, "/"), "/", "-") + ".img"
}

func mkfsArgv(format, label, uuid, dev string) []string {
	switch format {
	case "xfs":
		a := []string{"mkfs.xfs", "-f", "-q"}
		if label != "" {
			a = append(a, "-L", label)
		}
		if uuid != "" {
			a = append(a, "-m", "uuid="+uuid)
		}
		return append(a, dev)
	default:
		a := []string{"mkfs." + format, "-F", "-q"}
		if label != "" {
			a = append(a, "-L", label)
		}
		if uuid != "" {
			a = append(a, "-U", uuid)
		}
		return append(a, dev)
	}
}

func fsLabel(mp string) string {
	if mp == "/" {
		return "root"
	}
	l := strings.ReplaceAll(strings.Trim(mp, "/"), "/", "-")
	if len(l) > 12 {
		l = l[:12]
	}
	return l
}

// chrootEnv is the environment of every command run in the chroot.
func chrootEnv(cfg Config) []string {
	return append([]string{
		"DEBIAN_FRONTEND=noninteractive", "DEBCONF_NONINTERACTIVE_SEEN=true",
		"HOME=/root", "LANG=C.UTF-8", "LC_ALL=C.UTF-8",
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
	}, ProxyEnv(cfg.Proxies)...)
}

// DebootstrapTarball is the cache file name of the base system of cfg.
func DebootstrapTarball(cache string, cfg Config, o Options) string {
	v := o.Variant
	if v == "" {
		v = "default"
	}
	return filepath.Join(cache, fmt.Sprintf("debootstrap-%s-%s-%s.tgz", cfg.Repos[0].Suite, o.Arch, v))
}

// BuildPlan returns the steps that build cfg (validated, with defaults
// applied) with o. It is pure: nothing is read or changed. The steps come in
// the order of the build's sections, one method of planBuilder each.
func BuildPlan(cfg Config, o Options) (Plan, error) {
	if err := checkBuild(cfg, o); err != nil {
		return Plan{}, err
	}
	if o.ImageSize == 0 {
		o.ImageSize = DefaultImageSize
	}
	if o.Arch == "" {
		o.Arch = "amd64"
	}
	b := newPlanBuilder(cfg, o)
	b.makeImages()      // 1. one sparse file, loop device and filesystem per image
	b.mountImages()     // 2. mount by depth
	b.rootFS()          // 3. debootstrap the first repo (or the elements' root.d)
	b.prepareChroot()   // 4. the chroot's kernel filesystems, DNS, apt configuration
	b.installPackages() // 5. apt: index, pins, packages
	b.configure()       // 6. what makes the image boot in imprint's flow
	b.cleanImage()      // 7. cleanup inside the image
	b.leaveChroot()     // 8. leave the chroot, trim, unmount, detach
	b.finish()          // 9. shrink, compress, describe
	return b.plan()
}

// Revision names what a build puts into an image beyond its config;
// bump it when that changes (the VM tests' target-image cache is keyed by
// it with the config).
const Revision = 2 // 2: the initramfs's LVM activation script

// checkBuild reports every reason cfg cannot be built with o.
func checkBuild(cfg Config, o Options) error {
	var errs []error
	if err := cfg.Validate(); err != nil {
		errs = append(errs, err)
	}
	if len(cfg.Repos) == 0 {
		errs = append(errs, errors.New("repos: at least one repository is needed (the first is debootstrapped)"))
	}
	if len(cfg.Packages) == 0 {
		errs = append(errs, errors.New("packages: empty"))
	}
	if o.Chroot == "" || !filepath.IsAbs(o.Chroot) {
		errs = append(errs, fmt.Errorf("chroot %q: must be an absolute directory", o.Chroot))
	}
	if o.TmpDir == "" || !filepath.IsAbs(o.TmpDir) {
		errs = append(errs, fmt.Errorf("tmp dir %q: must be an absolute directory", o.TmpDir))
	}
	if o.Container != "" && !slices.Contains(Containers, o.Container) {
		errs = append(errs, fmt.Errorf("container %q: not one of %s", o.Container, strings.Join(Containers, ", ")))
	}
	if hookCount(o) > 0 && (o.HooksDir == "" || !filepath.IsAbs(o.HooksDir)) {
		errs = append(errs, fmt.Errorf("hooks dir %q: must be an absolute directory", o.HooksDir))
	}
	if o.DiskImage != "" && o.DiskFormat != "raw" && o.DiskFormat != "qcow2" {
		errs = append(errs, fmt.Errorf("disk format %q: must be raw or qcow2", o.DiskFormat))
	}
	if o.DiskImage != "" {
		if !slices.Contains(cfg.Packages, "grub-pc") {
			errs = append(errs, errors.New("disk image: packages must include grub-pc (its boot code goes into the MBR)"))
		}
		for mp := range cfg.ImageData {
			if o.FSUUIDs[mp] == "" {
				errs = append(errs, fmt.Errorf("disk image: no filesystem UUID for %q", mp))
			}
		}
		if len(cfg.ImageData) > 4 {
			errs = append(errs, fmt.Errorf("disk image: %d filesystems, an MBR holds 4", len(cfg.ImageData)))
		}
	}
	return errors.Join(errs...)
}

// hookCount is the number of element hooks o runs.
func hookCount(o Options) int {
	n := 0
	for _, hs := range o.Hooks {
		n += len(hs)
	}
	return n
}

// planBuilder accumulates the steps of one BuildPlan; cfg and o are
// checked and defaulted.
type planBuilder struct {
	cfg       Config
	o         Options
	root      string   // the chroot
	env       []string // of commands in the chroot
	penv      []string // proxy variables of commands on the host
	dibEnv    []string // diskimage-builder's variables for element hooks
	order     []string // image mount points, by depth
	outImages map[string]string
	metaPath  string
	hooked    bool     // any element hooks: /tmp/in_target.d is mounted
	staged    bool     // the hooks were copied to HooksDir
	aptFiles  []string // apt sources, conf and pins written, removed at cleanup
	steps     []Step
}

func newPlanBuilder(cfg Config, o Options) *planBuilder {
	b := &planBuilder{cfg: cfg, o: o, root: o.Chroot, env: chrootEnv(cfg), penv: ProxyEnv(cfg.Proxies),
		order: mountOrder(cfg.ImageData), hooked: hookCount(o) > 0}
	b.outImages, b.metaPath = OutputPaths(cfg)
	b.dibEnv = []string{
		"ARCH=" + o.Arch, "DIB_RELEASE=" + cfg.Codename, "DISTRO_NAME=" + distroName(o), "DIB_INIT_SYSTEM=systemd",
		"IMAGE_NAME=" + metadataStem(path.Base(b.outImages["/"])), "IMAGE_ELEMENT=" + strings.Join(o.ElementNames, " "),
	}
	return b
}

func (b *planBuilder) add(s Step) { b.steps = append(b.steps, s) }

// in is the host path of p inside the image.
func (b *planBuilder) in(p string) string { return filepath.Join(b.root, p) }

// chroot is a command run in the chroot.
func (b *planBuilder) chroot(name string, argv ...string) Step {
	return Step{Name: name, Op: OpChroot, Path: b.root, Argv: argv, Env: b.env}
}

// target is where the image of mount point mp is mounted.
func (b *planBuilder) target(mp string) string {
	if mp == "/" {
		return b.root
	}
	return b.in(mp)
}

// rawImage is the raw image file of mount point mp in TmpDir.
func (b *planBuilder) rawImage(mp string) string {
	return filepath.Join(b.o.TmpDir, imageFileName(mp))
}

// hooks runs the element hooks of phase: on the host for the host phases,
// in the chroot for the others.
func (b *planBuilder) hooks(phase string, extra ...string) {
	for _, h := range b.o.Hooks[phase] {
		name := "hook " + phase + "/" + h.Name + " (element " + h.Element + ")"
		if HostPhase(phase) {
			e := append([]string{"TMP_HOOKS_PATH=" + b.o.HooksDir, "TARGET_ROOT=" + b.root, "TMP_MOUNT_PATH=" + b.root,
				"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}, b.dibEnv...)
			e = append(e, extra...)
			b.add(Step{Name: name, Op: OpRun, Argv: b.hookArgv(b.o.HooksDir, phase, h.Name), Env: append(e, b.penv...)})
			continue
		}
		e := append(append([]string{"TMP_HOOKS_PATH=/tmp/in_target.d"}, b.env...), b.dibEnv...)
		b.add(Step{Name: name, Op: OpChroot, Path: b.root, Argv: b.hookArgv("/tmp/in_target.d", phase, h.Name), Env: e})
	}
}

// makeImages: one sparse file, loop device and filesystem per image.
func (b *planBuilder) makeImages() {
	for _, mp := range b.order {
		img := b.cfg.ImageData[mp]
		file := b.rawImage(mp)
		b.add(Step{Name: "create image " + mp, Op: OpTruncate, Path: file, Size: b.o.ImageSize, Mount: mp})
		b.add(Step{Name: "attach loop " + mp, Op: OpLoopAttach, Path: file, Mount: mp})
		b.add(Step{Name: "mkfs " + mp, Op: OpRun, Mount: mp,
			Argv: mkfsArgv(img.Format, fsLabel(mp), b.o.FSUUIDs[mp], "{loop:"+mp+"}")})
	}
}

// mountImages mounts the images by depth and keeps services from starting.
func (b *planBuilder) mountImages() {
	for _, mp := range b.order {
		if mp != "/" {
			b.add(Step{Name: "mkdir " + mp, Op: OpMkdir, Path: b.target(mp), Mode: 0o755})
		}
		b.add(Step{Name: "mount " + mp, Op: OpMount, Source: "{loop:" + mp + "}", Path: b.target(mp), FSType: b.cfg.ImageData[mp].Format, Mount: mp})
	}
	b.add(Step{Name: "policy-rc.d", Op: OpWrite, Path: b.in("usr/sbin/policy-rc.d"), Data: "#!/bin/sh\n# written by imprint build-image: no service starts in the chroot\nexit 101\n", Mode: 0o755})
}

// debootstrap installs the base system from the first repository, through
// the cache's tarball when there is a cache.
func (b *planBuilder) debootstrap() {
	o := b.o
	first := b.cfg.Repos[0]
	dbs := []string{"debootstrap", "--verbose", "--arch=" + o.Arch}
	if o.Variant != "" {
		dbs = append(dbs, "--variant="+o.Variant)
	}
	include := "ca-certificates"
	if !o.NoEatmydata {
		include += ",eatmydata"
	}
	dbs = append(dbs, "--include="+include)
	if o.AllowUnsigned {
		dbs = append(dbs, "--no-check-gpg")
	}
	if o.Cache != "" {
		tarball := DebootstrapTarball(o.Cache, b.cfg, o)
		scratch := filepath.Join(o.TmpDir, "debootstrap-download")
		b.add(Step{Name: "mkdir debootstrap cache", Op: OpMkdir, Path: o.Cache, Mode: 0o755, SkipIfExists: tarball})
		b.add(Step{Name: "debootstrap download", Op: OpRun, Env: b.penv, SkipIfExists: tarball,
			Argv: append(append([]string(nil), dbs...), "--make-tarball="+tarball+".part", first.Suite, scratch, first.URI)})
		b.add(Step{Name: "debootstrap cache", Op: OpRename, Source: tarball + ".part", Path: tarball, SkipIfExists: tarball})
		b.add(Step{Name: "remove debootstrap download", Op: OpRemoveAll, Path: scratch})
		dbs = append(dbs, "--unpack-tarball="+tarball)
	}
	b.add(Step{Name: "debootstrap", Op: OpRun, Env: b.penv, Argv: append(dbs, first.Suite, b.root, first.URI)})
}

// rootFS makes the root filesystem: the elements' root.d hooks when there
// are any (diskimage-builder's rule: root.d builds or unpacks the tree),
// else debootstrap.
func (b *planBuilder) rootFS() {
	if len(b.o.Hooks[RootPhase]) == 0 {
		b.debootstrap()
		return
	}
	b.stageHooks()
	b.hooks(RootPhase, "DIB_DISTRIBUTION_MIRROR="+b.cfg.Repos[0].URI)
}

// prepareChroot mounts the chroot's kernel filesystems, gives it DNS and
// the apt configuration, stages the element hooks and runs extra-data.d.
func (b *planBuilder) prepareChroot() {
	b.add(Step{Name: "mount /proc", Op: OpMount, Source: "proc", FSType: "proc", Path: b.in("proc")})
	b.add(Step{Name: "mount /sys", Op: OpMount, Source: "sysfs", FSType: "sysfs", Path: b.in("sys")})
	b.add(Step{Name: "mount /dev", Op: OpMount, Source: "/dev", FSType: "bind", Path: b.in("dev")})
	b.add(Step{Name: "mount /dev/pts", Op: OpMount, Source: "/dev/pts", FSType: "bind", Path: b.in("dev/pts")})
	b.add(Step{Name: "resolv.conf", Op: OpCopy, Source: "/etc/resolv.conf", Path: b.in("etc/resolv.conf"), Mode: 0o644})
	b.add(Step{Name: "hostname", Op: OpWrite, Path: b.in("etc/hostname"), Data: "localhost\n", Mode: 0o644})
	b.add(Step{Name: "remove apt sources.list", Op: OpRemove, Path: b.in("etc/apt/sources.list")})
	for _, r := range b.cfg.Repos {
		p := b.in(SourcesListPath(r))
		b.aptFiles = append(b.aptFiles, p)
		b.add(Step{Name: "apt source " + r.Name, Op: OpWrite, Path: p, Data: SourcesList(r), Mode: 0o644})
	}
	conf := AptConfFiles(b.cfg.Proxies, b.o.AllowUnsigned)
	for _, k := range slices.Sorted(maps.Keys(conf)) {
		b.aptFiles = append(b.aptFiles, b.in(k))
		b.add(Step{Name: "apt conf " + path.Base(k), Op: OpWrite, Path: b.in(k), Data: conf[k], Mode: 0o644})
	}
	if b.hooked {
		b.stageHooks()
		b.add(Step{Name: "mkdir /tmp/in_target.d", Op: OpMkdir, Path: b.in("tmp/in_target.d"), Mode: 0o755})
		b.add(Step{Name: "mount /tmp/in_target.d", Op: OpMount, Source: b.o.HooksDir, FSType: "bind", Path: b.in("tmp/in_target.d")})
	}
	b.hooks("extra-data.d")
}

// installPackages: the apt index, the pins, the upgrade and the packages,
// and the locale cloud-init will ask for.
func (b *planBuilder) installPackages() {
	apt := func(args ...string) []string {
		a := []string{"apt-get", "-y", "-q", "-o", "Dpkg::Options::=--force-confdef", "-o", "Dpkg::Options::=--force-confold"}
		if !b.o.NoEatmydata {
			a = append([]string{"eatmydata"}, a...)
		}
		return append(a, args...)
	}
	upd := b.chroot("apt-get update", "apt-get", "-y", "-q", "update")
	upd.Attempts = 3
	b.add(upd)
	for i := range b.cfg.Repos {
		r := b.cfg.Repos[i]
		if r.Priority == nil {
			continue
		}
		p := b.in(PrefsPath(r))
		b.aptFiles = append(b.aptFiles, p)
		b.add(Step{Name: "apt pin " + r.Name, Op: OpPin, Path: p, Source: b.in("var/lib/apt/lists"), Repo: &r})
	}
	b.hooks("pre-install.d")
	if slices.Contains(b.cfg.Packages, "lvm2") && slices.Contains(b.cfg.Packages, "initramfs-tools") {
		// Before the kernel, whose initramfs then carries it: activate
		// every VG on each pass of the initramfs's wait for the root
		// (bookworm's initramfs tries once, from one udev event; the
		// agent rebuilds the initramfs of an image without it).
		for _, p := range bootloader.InitramfsLVMPaths {
			b.add(Step{Name: "initramfs LVM activation " + path.Dir(p), Op: OpWrite, Path: b.in(p), Data: string(bootloader.InitramfsLVMScript(nil)), Mode: 0o755})
		}
	}
	s := b.chroot("apt-get dist-upgrade", apt("dist-upgrade")...)
	s.Attempts = 3
	b.add(s)
	s = b.chroot("apt-get install", apt(append([]string{"install"}, b.cfg.Packages...)...)...)
	s.Attempts = 3
	b.add(s)
	b.hooks("install.d")
	if slices.Contains(b.cfg.Packages, "locales") {
		// The configdrive asks cloud-init for locale en_US.UTF-8 (as
		// Nailgun's cloud_config does); its cc_locale runs update-locale,
		// which refuses a locale that was never generated.
		b.add(Step{Name: "locale.gen", Op: OpWrite, Path: b.in("etc/locale.gen"), Data: "en_US.UTF-8 UTF-8\n", Mode: 0o644})
		b.add(b.chroot("locale-gen", "locale-gen"))
	}
}

// configure writes what makes the image boot in imprint's flow: fstab,
// cloud-init's datasources, passwords and users, files, no host keys or
// machine id of its own; then the late hooks and the disk image's grub.
func (b *planBuilder) configure() {
	cfg := b.cfg
	b.add(Step{Name: "fstab", Op: OpWrite, Path: b.in("etc/fstab"), Data: fstab(cfg, b.order, b.o.FSUUIDs), Mode: 0o644})
	if slices.Contains(cfg.Packages, "cloud-init") {
		b.add(Step{Name: "cloud-init datasources", Op: OpWrite, Path: b.in("etc/cloud/cloud.cfg.d/90_imprint.cfg"), Data: cloudInitCfg, Mode: 0o644})
	}
	switch {
	case cfg.HashedRootPassword != nil && *cfg.HashedRootPassword != "":
		b.add(b.password("root password", "root", *cfg.HashedRootPassword, true))
	case cfg.RootPassword != nil && *cfg.RootPassword != "":
		b.add(b.password("root password", "root", *cfg.RootPassword, false))
	}
	for _, u := range cfg.Users {
		b.user(u)
	}
	for i, f := range cfg.Files {
		m, _ := fileMode(f.Mode)
		b.add(Step{Name: fmt.Sprintf("file %s (files[%d])", f.Path, i), Op: OpWrite, Path: b.in(strings.TrimPrefix(f.Path, "/")), Data: f.Content, Mode: fs.FileMode(m)})
	}
	b.add(Step{Name: "remove ssh host keys", Op: OpRemove, Path: b.in("etc/ssh/ssh_host_*")})
	if slices.Contains(cfg.Packages, "openssh-server") {
		// each node makes its own keys on first boot, with or without cloud-init
		b.add(Step{Name: "ssh host keys on boot", Op: OpWrite, Path: b.in("etc/systemd/system/ssh.service.d/10-imprint-host-keys.conf"), Data: sshKeygenDropIn, Mode: 0o644})
	}
	b.add(Step{Name: "machine-id", Op: OpWrite, Path: b.in("etc/machine-id"), Data: "", Mode: 0o444})
	b.add(Step{Name: "remove dbus machine-id", Op: OpRemove, Path: b.in("var/lib/dbus/machine-id")})
	b.firstBoot()
	b.hooks("post-install.d")
	b.hooks("block-device.d", "IMAGE_BLOCK_DEVICE={loop:/}")
	b.hooks("finalise.d")
	if b.o.DiskImage != "" {
		b.diskSteps()
	}
}

// password sets user's password with chpasswd (-e: already hashed); the
// password is a secret, never shown.
func (b *planBuilder) password(name, user, password string, hashed bool) Step {
	argv := []string{"chpasswd"}
	if hashed {
		argv = append(argv, "-e")
	}
	st := b.chroot(name, argv...)
	st.Stdin, st.Secret = user+":"+password+"\n", true
	return st
}

// user creates one account with its groups, password, SSH keys and sudo.
func (b *planBuilder) user(u User) {
	shell := u.Shell
	if shell == "" {
		shell = "/bin/bash"
	}
	argv := []string{"useradd", "--create-home", "--shell", shell}
	if len(u.Groups) > 0 {
		argv = append(argv, "--groups", strings.Join(u.Groups, ","))
	}
	b.add(b.chroot("user "+u.Name, append(argv, u.Name)...))
	if u.HashedPassword != "" {
		b.add(b.password("user "+u.Name+" password", u.Name, u.HashedPassword, true))
	}
	if len(u.SSHAuthorizedKeys) > 0 {
		home := "home/" + u.Name
		b.add(Step{Name: "user " + u.Name + " authorized_keys", Op: OpWrite, Path: b.in(home + "/.ssh/authorized_keys"), Data: strings.Join(u.SSHAuthorizedKeys, "\n") + "\n", Mode: 0o600})
		b.add(b.chroot("user "+u.Name+" owns .ssh", "chown", "-R", u.Name+":", "/"+home+"/.ssh"))
	}
	if u.Sudo {
		b.add(Step{Name: "user " + u.Name + " sudo", Op: OpWrite, Path: b.in("etc/sudoers.d/90-imprint-" + u.Name), Data: u.Name + " ALL=(ALL) NOPASSWD:ALL\n", Mode: 0o440})
	}
}

// cleanImage removes what only the build needed: apt's lists and our apt
// configuration, policy-rc.d, resolv.conf; reads the OS for the metadata.
func (b *planBuilder) cleanImage() {
	b.add(b.chroot("apt-get clean", "apt-get", "clean"))
	b.add(Step{Name: "remove apt lists", Op: OpRemove, Path: b.in("var/lib/apt/lists/*_*")})
	for _, f := range b.aptFiles {
		b.add(Step{Name: "remove " + strings.TrimPrefix(f, b.root), Op: OpRemove, Path: f})
	}
	b.add(Step{Name: "remove policy-rc.d", Op: OpRemove, Path: b.in("usr/sbin/policy-rc.d")})
	b.add(Step{Name: "remove resolv.conf", Op: OpRemove, Path: b.in("etc/resolv.conf")})
	b.add(Step{Name: "read os", Op: OpReadOS, Path: b.root})
	b.hooks("cleanup.d")
}

// leaveChroot stops what runs in the chroot, discards the free blocks (the
// loop device punches holes in the image file: deleted files then compress
// to nothing), writes the tarball and unmounts and detaches everything.
func (b *planBuilder) leaveChroot() {
	b.add(Step{Name: "kill chroot processes", Op: OpKill, Path: b.root})
	for _, mp := range b.order {
		// ext4 does not trim blocks freed in its running journal
		// transaction: without the sync first, what apt and the cleanup
		// just deleted stays in the image (measured: a 745 MiB root
		// compressed to 288 MiB instead of 176 MiB).
		b.add(Step{Name: "sync " + mp, Op: OpRun, Argv: []string{"sync", "-f", b.target(mp)}, Mount: mp})
		b.add(Step{Name: "fstrim " + mp, Op: OpRun, Argv: []string{"fstrim", b.target(mp)}, Mount: mp, Optional: true})
	}
	if b.hooked {
		b.add(Step{Name: "umount /tmp/in_target.d", Op: OpUnmount, Path: b.in("tmp/in_target.d")})
	}
	for _, p := range []string{"dev/pts", "dev", "sys", "proc"} {
		b.add(Step{Name: "umount /" + p, Op: OpUnmount, Path: b.in(p)})
	}
	if b.o.Tarball != "" {
		b.add(Step{Name: "rootfs tarball", Op: OpTar, Source: b.root, Path: b.o.Tarball})
	}
	for i := len(b.order) - 1; i >= 0; i-- {
		mp := b.order[i]
		b.add(Step{Name: "umount " + mp, Op: OpUnmount, Path: b.target(mp), Mount: mp})
	}
	for _, mp := range b.order {
		b.add(Step{Name: "detach loop " + mp, Op: OpLoopDetach, Mount: mp})
	}
}

// finish shrinks every filesystem to its minimum, compresses the images,
// writes the metadata and the disk image, and removes the scratch files.
func (b *planBuilder) finish() {
	o := b.o
	for _, mp := range b.order {
		img := b.cfg.ImageData[mp]
		file := b.rawImage(mp)
		if strings.HasPrefix(img.Format, "ext") {
			b.add(Step{Name: "e2fsck " + mp, Op: OpRun, Argv: []string{"e2fsck", "-fy", file}, OKExit: []int{1}, Mount: mp})
			b.add(Step{Name: "resize2fs " + mp, Op: OpRun, Argv: []string{"resize2fs", "-M", file}, Mount: mp})
			b.add(Step{Name: "fit file " + mp, Op: OpShrinkFile, Path: file, Mount: mp})
		}
		if img.Format == "xfs" {
			// xfs only grows: the tree is copied into a new, minimal
			// filesystem made with the mkfs options of the original
			b.add(Step{Name: "shrink xfs " + mp, Op: OpShrinkXFS, Path: file, Mount: mp,
				Argv: mkfsArgv(img.Format, fsLabel(mp), o.FSUUIDs[mp], xfsImagePlaceholder)})
		}
	}
	for _, mp := range b.order {
		img := b.cfg.ImageData[mp]
		c := img.Container
		if o.Container != "" {
			c = o.Container
		}
		b.add(Step{Name: "compress " + mp, Op: OpCompress, Source: b.rawImage(mp), Path: b.outImages[mp], Data: c, Mount: mp, FSType: img.Format})
	}
	b.add(Step{Name: "metadata", Op: OpMetadata, Path: b.metaPath})
	if o.DiskImage != "" {
		// after the compression: the root filesystem is grown into its partition
		b.add(Step{Name: "disk image", Op: OpDiskImage, Path: o.DiskImage, Data: o.DiskFormat, Source: o.TmpDir, Size: o.DiskSize})
	}
	for _, mp := range b.order {
		b.add(Step{Name: "remove raw " + mp, Op: OpRemove, Path: b.rawImage(mp)})
	}
	if o.DiskImage != "" {
		b.add(Step{Name: "remove grub boot.img", Op: OpRemove, Path: filepath.Join(o.TmpDir, grubBootCodeFile)})
		b.add(Step{Name: "remove grub core.img", Op: OpRemove, Path: filepath.Join(o.TmpDir, grubCoreFile)})
	}
}

// plan checks that every step name is unique and lists the outputs:
// compressed images (by depth), the metadata, the disk image, the tarball.
func (b *planBuilder) plan() (Plan, error) {
	names := map[string]bool{}
	for _, s := range b.steps {
		if names[s.Name] {
			return Plan{}, fmt.Errorf("internal: step name %q twice", s.Name)
		}
		names[s.Name] = true
	}
	var outputs []string
	for _, mp := range b.order {
		outputs = append(outputs, b.outImages[mp])
	}
	outputs = append(outputs, b.metaPath)
	if b.o.DiskImage != "" {
		outputs = append(outputs, b.o.DiskImage)
	}
	if b.o.Tarball != "" {
		outputs = append(outputs, b.o.Tarball)
	}
	return Plan{Steps: b.steps, Outputs: outputs}, nil
}

// cloudInitCfg enables the datasources imprint's agent writes (a
// config-2 configdrive, or a NoCloud seed) and grows the root partition
// and filesystem on first boot.
const cloudInitCfg = `# written by imprint build-image
datasource_list: [ ConfigDrive, NoCloud, None ]
growpart:
  mode: auto
  devices: ['/']
resize_rootfs: true
`

// sshKeygenDropIn makes ssh.service generate missing host keys before
// its config test (the image ships none).
const sshKeygenDropIn = `# written by imprint build-image: the image ships no host keys
[Service]
ExecStartPre=
ExecStartPre=/usr/bin/ssh-keygen -A
ExecStartPre=/usr/sbin/sshd -t
`

func fstab(cfg Config, order []string, uuids map[string]string) string {
	var b strings.Builder
	b.WriteString("# written by imprint build-image; the provisioning agent rewrites it for its layout\n")
	for _, mp := range order {
		img := cfg.ImageData[mp]
		src := "LABEL=" + fsLabel(mp)
		if u := uuids[mp]; u != "" {
			src = "UUID=" + u
		}
		opts, pass := "defaults", 2
		if mp == "/" {
			opts, pass = "errors=remount-ro", 1
		}
		if img.Format == "xfs" {
			opts, pass = "defaults", 0
		}
		fmt.Fprintf(&b, "%s %s %s %s 0 %s\n", src, mp, img.Format, opts, strconv.Itoa(pass))
	}
	return b.String()
}

// diskSteps prepare grub for the whole-disk image while the chroot is
// mounted: modules and grub.cfg into the image's /boot/grub, boot.img and
// a core.img (finding /boot by UUID) out to TmpDir.
func (b *planBuilder) diskSteps() {
	cfg, o, add, chroot, in := b.cfg, b.o, b.add, b.chroot, b.in
	bootMP, prefix := "/", "/boot"
	if _, ok := cfg.ImageData["/boot"]; ok {
		bootMP, prefix = "/boot", ""
	}
	bootUUID, rootUUID := o.FSUUIDs[bootMP], o.FSUUIDs["/"]
	add(chroot("grub modules", "sh", "-c", "mkdir -p /boot/grub/i386-pc && cp /usr/lib/grub/i386-pc/*.mod /usr/lib/grub/i386-pc/*.lst /boot/grub/i386-pc/"))
	add(Step{Name: "grub early config", Op: OpWrite, Path: in("tmp/imprint-grub-early.cfg"), Mode: 0o644,
		Data: fmt.Sprintf("search.fs_uuid %s root\nset prefix=($root)%s/grub\n", bootUUID, prefix)})
	add(chroot("grub core.img", "grub-mkimage", "-O", "i386-pc", "-o", "/tmp/imprint-core.img", "-c", "/tmp/imprint-grub-early.cfg",
		"-p", prefix+"/grub", "biosdisk", "part_msdos", "ext2", "xfs", "search_fs_uuid"))
	add(Step{Name: "copy core.img", Op: OpCopy, Source: in("tmp/imprint-core.img"), Path: filepath.Join(o.TmpDir, grubCoreFile), Mode: 0o644})
	add(Step{Name: "copy boot.img", Op: OpCopy, Source: in("usr/lib/grub/i386-pc/boot.img"), Path: filepath.Join(o.TmpDir, grubBootCodeFile), Mode: 0o644})
	add(Step{Name: "remove grub scratch", Op: OpRemove, Path: in("tmp/imprint-*")})
	add(Step{Name: "grub.cfg", Op: OpGrubCfg, Path: in("boot/grub/grub.cfg"), Source: in("boot"),
		Data: GrubCfg(bootUUID, rootUUID, prefix+"/vmlinuz-{kver}", prefix+"/initrd.img-{kver}")})
}
