// Package prepare turns a provision document into everything a job will
// execute, before anything is touched: the validated document, the storage
// plan on this node's disks, the configdrive content (and a check that it
// fits its partition), the image requests under the source and digest
// policy, the bootloader request, and the set of block devices the job may
// write (internal/devguard). Every entry point uses it: `imprint plan`,
// `partition`, `configdrive`, `bootloader`, `provision`, and the agent's
// POST /v1/plan and /v1/provision.
//
// The invariant it holds: a document that passes Prepare can fail later
// only for a reason that needs the hardware or the network (a disk that
// answers EIO, an image server down, a checksum mismatch). Every problem is
// reported at once, each with its JSON path; warnings come separately.
package prepare

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"sort"
	"strings"

	"github.com/imprint-dev/imprint/bootloader"
	"github.com/imprint-dev/imprint/configdrive"
	"github.com/imprint-dev/imprint/internal/devguard"
	"github.com/imprint-dev/imprint/inventory"
	"github.com/imprint-dev/imprint/movefiles"
	"github.com/imprint-dev/imprint/netdata"
	"github.com/imprint-dev/imprint/partition"
	"github.com/imprint-dev/imprint/provision"
)

// Problem is one thing wrong (or worth a look) in a document, at its JSON
// path ("ks_meta.pm_data.ks_spaces[1].volumes[0].size").
type Problem struct {
	Path string `json:"path"`
	Msg  string `json:"message"`
}

func (p Problem) String() string {
	if p.Path == "" {
		return p.Msg
	}
	return p.Path + ": " + p.Msg
}

// Error lists every problem of a document that Prepare refused, and the
// warnings found on the way.
type Error struct {
	Problems []Problem
	Warnings []Problem
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "invalid provision document: %d problem(s)", len(e.Problems))
	for _, p := range e.Problems {
		b.WriteString("; ")
		b.WriteString(p.String())
	}
	return b.String()
}

// ImagePolicy says which image sources a job may read and what
// verification it requires.
type ImagePolicy struct {
	// AllowFile admits file:// URLs (and absolute paths): local testing
	// only. Even then nothing under /dev, /proc, /sys or a Forbidden path
	// may be read.
	AllowFile bool
	// Forbidden are files and directories a file:// image may never read
	// (the agent's state directory and token file).
	Forbidden []string
	// RequireDigest refuses an image without a sha256 or sha512 in its
	// image_data entry. Fuel's metadata YAML (raw_md5) cannot stand in: it
	// is fetched only when the image is written, after the wipe.
	RequireDigest bool
}

// Options configure Prepare. The zero value is the agent's default: Fuel's
// plan options, http(s) images, config-2 on vfat.
type Options struct {
	Plan        *partition.PlanOptions // nil: partition.DefaultPlanOptions()
	Images      ImagePolicy
	Configdrive configdrive.Options
	// ConfigdriveFormat is the format written when the document's
	// ks_meta.configdrive_format is empty ("": configdrive.DefaultFormat).
	ConfigdriveFormat configdrive.Format
	// BootloaderTarget is where the target tree is mounted ("": the
	// bootloader's default).
	BootloaderTarget string
	// FS resolves device paths for the device set (nil: the running system).
	FS devguard.FS
	// Network, when set, is the network the installed OS gets through the
	// configdrive (configdrive.WithNetwork) instead of the document's admin
	// NIC alone: the agent passes the document the ramdisk applied. A
	// document with ks_meta.os_network "document" opts out: it is ignored.
	Network *netdata.Document
}

// Image is one image the job writes, with its verification.
type Image struct {
	partition.Image
	// SHA256 / SHA512: the digest from the document's image_data entry
	// (imprint's extension), verified inline.
	SHA256 string `json:"sha256,omitempty"`
	SHA512 string `json:"sha512,omitempty"`
	// Mirrors: the image_data entry's other URLs of the same file.
	Mirrors []string `json:"mirrors,omitempty"`
}

// Configdrive is the configdrive the job writes.
type Configdrive struct {
	Device  string               `json:"device"`
	Format  configdrive.Format   `json:"format"`
	SizeMiB int64                `json:"size_mib"`
	Content *configdrive.Content `json:"-"`
}

// Job is a prepared document: what the steps execute.
type Job struct {
	Doc         *provision.Document
	Plan        *partition.Plan
	Configdrive *Configdrive // nil: the plan has no configdrive partition
	Images      []Image
	Bootloader  bootloader.Request
	// Moves take what an image holds below a mount point into the
	// filesystem mounted there (movefiles), after the images are written.
	Moves []movefiles.Move
	// Devices are the block devices the job may write: the matched disks,
	// their planned partitions, and the md and LVM devices the plan makes.
	Devices  *devguard.Set
	Warnings []Problem
}

// Prepare parses and validates data and prepares the job on the disks inv
// describes (nil: plan on the kernel names the document gives, as `imprint
// plan` without --inventory does). ctx bounds building the configdrive
// image in memory. A refused document gives an *Error listing every
// problem; a syntax error is returned as it is (*provision.SyntaxError).
func Prepare(ctx context.Context, data []byte, inv *inventory.Inventory, opts Options) (*Job, error) {
	doc, err := provision.ParseAndValidate(data)
	if doc == nil {
		return nil, err
	}
	var c collector
	c.fromProvision(err)
	c.warnings(doc.Warnings())
	if err != nil && !c.has() {
		return nil, err // not a validation error
	}
	return prepareDocument(ctx, doc, inv, opts, &c)
}

// Document prepares an already parsed and validated document.
func Document(ctx context.Context, doc *provision.Document, inv *inventory.Inventory, opts Options) (*Job, error) {
	if doc == nil {
		return nil, errors.New("prepare: no document")
	}
	var c collector
	c.fromProvision(doc.Validate())
	c.warnings(doc.Warnings())
	return prepareDocument(ctx, doc, inv, opts, &c)
}

func prepareDocument(ctx context.Context, doc *provision.Document, inv *inventory.Inventory, opts Options, c *collector) (*Job, error) {
	po := partition.DefaultPlanOptions()
	if opts.Plan != nil {
		po = *opts.Plan
	}
	if po.BootMode == "" {
		// The document's ks_meta.boot_mode, else the mode this machine was
		// booted in (the inventory's firmware), else BIOS.
		po.BootMode = provision.ResolveBootMode(doc.KsMeta.BootMode, inv != nil && inv.Firmware.BootMode == "uefi")
	}
	var devs []partition.Device
	if inv != nil {
		devs = partition.DevicesFromInventory(inv)
	}
	job := &Job{Doc: doc}
	plan, perr := partition.NewPlan(doc, devs, po)
	if perr != nil {
		c.fromErr(perr, "ks_meta.pm_data.ks_spaces")
	}
	if plan != nil {
		job.Plan = plan
		for _, w := range plan.Warnings {
			c.warn(splitPath(w, "ks_meta.pm_data.ks_spaces"))
		}
	}
	job.Images = prepareImages(doc, plan, opts.Images, c)
	if plan != nil {
		job.Configdrive = prepareConfigdrive(ctx, doc, plan, opts, c)
		job.Bootloader = bootloader.Request{
			Plan:         plan,
			KernelParams: doc.KsMeta.PmData.KernelParams,
			UdevRules:    doc.KernelOptions.UdevRules,
			Target:       opts.BootloaderTarget,
		}
		if err := job.Bootloader.Validate(); err != nil {
			c.fromErr(err, "ks_meta.pm_data.ks_spaces")
		}
		job.Moves = movefiles.Plan(plan.FSs)
		if plan.KeepData && inv != nil {
			// A kept volume must be where the plan says on this node's
			// disks now: refused here (422), before anything is touched.
			if err := partition.CheckKept(plan, partition.ExistingFromInventory(inv)); err != nil {
				c.add("ks_meta.pm_data.ks_spaces", strings.TrimPrefix(err.Error(), "partition: "))
			}
		}
		job.Devices = partition.DeviceSet(plan, opts.FS)
		checkContained(doc, plan, job.Devices, c)
		checkOperations(doc, plan, job.Devices, c)
	}
	job.Warnings = c.warns
	if c.has() {
		return nil, &Error{Problems: c.sorted(), Warnings: c.warns}
	}
	return job, nil
}

// checkContained refuses a plan any of whose targets (a filesystem, PV,
// md member, image, configdrive or grub disk) is not a device of its own
// set: a name written in a scheme that no listed disk holds.
func checkContained(doc *provision.Document, plan *partition.Plan, set *devguard.Set, c *collector) {
	where := opPath(doc)
	bad := func(path, dev, what string) {
		c.add(path, fmt.Sprintf("%s %s is not a partition of a listed disk, nor an md or LV the document creates: refusing to write it", what, dev))
	}
	for _, d := range plan.Disks {
		for _, p := range d.Partitions {
			if want := partition.PartitionOf(d.Device, p.Number); p.Device != want {
				c.add(where+".parteds", fmt.Sprintf("partition %d of %s is named %s, but the kernel calls it %s: refusing a partition named on another disk", p.Number, d.Device, p.Device, want))
			}
		}
	}
	for i, fs := range plan.FSs {
		if !set.Contains(fs.Device) {
			bad(fmt.Sprintf("%s.fss[%d].device", where, i), fs.Device, "filesystem device")
		}
		// fs_options of every filesystem, image targets included (they
		// are not used there, but a document that tries is hostile).
		for _, dev := range set.Named(strings.Fields(fs.Options)) {
			if set.Check(dev, "fs_options") != nil {
				c.add(fmt.Sprintf("%s.fss[%d].fs_options", where, i), fmt.Sprintf("names %s, which is not a device of this plan: refused", dev))
			}
		}
	}
	for i, pv := range plan.PVs {
		if !set.Contains(pv.Device) {
			bad(fmt.Sprintf("%s.pvs[%d]", where, i), pv.Device, "physical volume")
		}
	}
	for i, md := range plan.MDs {
		for _, m := range append(append([]string(nil), md.Members...), md.Spares...) {
			if !set.Contains(m) {
				bad(fmt.Sprintf("%s.mds[%d].devices", where, i), m, "md member")
			}
		}
	}
	for _, img := range plan.Images {
		if !set.Contains(img.Device) {
			bad("ks_meta.image_data["+quoteKey(img.Mount)+"]", img.Device, "image target")
		}
	}
	if plan.Configdrive != "" && !set.Contains(plan.Configdrive) {
		bad(where, plan.Configdrive, "configdrive")
	}
	for _, d := range plan.Bootloader {
		if !set.Contains(d) {
			bad(where, d, "grub-install target")
		}
	}
}

// checkOperations runs the device guard over every command the disks step
// will run for the plan (mkfs with its fs_options, mdadm, lvm), so that an
// argument naming a device outside the plan, in any spelling, is refused
// now rather than when the command would run. The teardown of what is on
// the disks today needs the hardware and is guarded when it runs.
func checkOperations(doc *provision.Document, plan *partition.Plan, set *devguard.Set, c *collector) {
	ops, err := partition.Operations(plan, partition.DefaultLVMConfig)
	if err != nil {
		c.fromErr(err, "ks_meta.pm_data.ks_spaces")
		return
	}
	for _, op := range ops {
		for _, dev := range set.Named(op.Argv) {
			if err := set.Check(dev, op.Argv[0]+" argument"); err != nil {
				c.add(opPath(doc), fmt.Sprintf("%s would name %s, which is not a device of this plan: refused (%s)", op.Argv[0], dev, op.String()))
			}
		}
	}
}

// opPath is where the layout an operation comes from is described; the
// message names the filesystem.
func opPath(doc *provision.Document) string {
	if doc.Partitioning != nil {
		return "partitioning"
	}
	return "ks_meta.pm_data.ks_spaces"
}

// prepareConfigdrive renders the configdrive content and builds its image
// in memory at the planned partition's size, so that a document whose
// configdrive does not fit is refused before anything is written.
func prepareConfigdrive(ctx context.Context, doc *provision.Document, plan *partition.Plan, opts Options, c *collector) *Configdrive {
	if plan.Configdrive == "" {
		return nil
	}
	co := opts.Configdrive
	if u := doc.KsMeta.PhoneHomeURL; u != "" {
		co.PhoneHomeURL = u
	}
	content, err := configdrive.Build(doc, co)
	if err != nil {
		c.fromErr(err, "ks_meta")
		return nil
	}
	if opts.Network != nil && doc.UsesRamdiskNetwork() {
		if err := configdrive.WithNetwork(content, opts.Network); err != nil {
			c.fromErr(err, "network")
			return nil
		}
	}
	for _, w := range content.Warnings {
		c.warn(splitPath(w, "ks_meta"))
	}
	f := opts.ConfigdriveFormat
	if df := doc.KsMeta.ConfigdriveFormat; df != "" {
		pf, err := configdrive.ParseFormat(df)
		if err != nil {
			c.add("ks_meta.configdrive_format", err.Error())
			return nil
		}
		f = pf
	}
	if f == "" {
		f = configdrive.DefaultFormat
	}
	cd := &Configdrive{Device: plan.Configdrive, Format: f, Content: content}
	sector := 512
	for _, d := range plan.Disks {
		for _, p := range d.Partitions {
			if p.Device == plan.Configdrive {
				cd.SizeMiB = p.EndMiB - p.BeginMiB
				if d.LogicalSectorSize > 0 {
					sector = d.LogicalSectorSize
				}
			}
		}
	}
	if cd.SizeMiB <= 0 {
		c.add("ks_meta.pm_data.ks_spaces", fmt.Sprintf("configdrive %s: not a partition of a listed disk", plan.Configdrive))
		return nil
	}
	if _, err := configdrive.Image(ctx, content, f, cd.SizeMiB<<20, configdrive.ImageOptions{SectorSize: sector}); err != nil {
		c.add("ks_meta.pm_data.ks_spaces", fmt.Sprintf("configdrive %s (%d MiB, %s): %v", plan.Configdrive, cd.SizeMiB, f, err))
		return nil
	}
	return cd
}

// prepareImages applies the source and digest policy to the plan's images.
func prepareImages(doc *provision.Document, plan *partition.Plan, pol ImagePolicy, c *collector) []Image {
	if plan == nil {
		return nil
	}
	var out []Image
	for _, pi := range plan.Images {
		path := "ks_meta.image_data[" + quoteKey(pi.Mount) + "]"
		img := Image{Image: pi}
		if d, ok := doc.KsMeta.ImageData[pi.Mount]; ok {
			img.SHA256, img.SHA512, img.Mirrors = d.SHA256, d.SHA512, d.Mirrors
		}
		if err := checkSource(pi.URI, pol); err != nil {
			c.add(path+".uri", err.Error())
		}
		for i, m := range img.Mirrors {
			if err := checkSource(m, pol); err != nil {
				c.add(fmt.Sprintf("%s.mirrors[%d]", path, i), err.Error())
			}
		}
		if pol.RequireDigest && img.SHA256 == "" && img.SHA512 == "" {
			c.add(path, "no sha256 or sha512: this agent requires a digest for every image (require_digest)")
		}
		out = append(out, img)
	}
	return out
}

// quoteKey writes a map key of a JSON path.
func quoteKey(k string) string { return fmt.Sprintf("%q", k) }

// forbiddenRoots may never be an image source, whatever the policy.
var forbiddenRoots = []string{"/dev", "/proc", "/sys"}

// checkSource applies the image source policy to one URL.
func checkSource(raw string, pol ImagePolicy) error {
	if strings.HasPrefix(raw, "/") {
		raw = "file://" + raw
	}
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("%q is not a URL: %v", raw, err)
	}
	switch strings.ToLower(u.Scheme) {
	case "http", "https":
		if u.Host == "" {
			return fmt.Errorf("%q has no host", raw)
		}
		return nil
	case "file":
		if !pol.AllowFile {
			return fmt.Errorf("%q: file:// images are refused (only http and https; the agent's file_images setting admits them for local testing)", raw)
		}
		p := filepath.Clean(u.Path)
		if !filepath.IsAbs(p) {
			return fmt.Errorf("%q: a file image needs an absolute path", raw)
		}
		for _, root := range append(append([]string(nil), forbiddenRoots...), pol.Forbidden...) {
			if root == "" {
				continue
			}
			root = filepath.Clean(root)
			if p == root || strings.HasPrefix(p, root+"/") {
				return fmt.Errorf("%q: reading %s is never allowed", raw, root)
			}
		}
		if real, err := filepath.EvalSymlinks(p); err == nil && real != p {
			return checkSource("file://"+real, pol)
		}
		return nil
	case "":
		return fmt.Errorf("%q has no scheme (http:// or https://)", raw)
	default:
		return fmt.Errorf("%q: scheme %q is not supported (http and https only)", raw, u.Scheme)
	}
}

// collector gathers problems and warnings, de-duplicated.
type collector struct {
	probs []Problem
	warns []Problem
	seen  map[Problem]bool
}

func (c *collector) has() bool { return len(c.probs) > 0 }

func (c *collector) add(path, msg string) {
	p := Problem{Path: path, Msg: msg}
	if c.seen == nil {
		c.seen = map[Problem]bool{}
	}
	if c.seen[p] {
		return
	}
	c.seen[p] = true
	c.probs = append(c.probs, p)
}

func (c *collector) warn(p Problem) {
	for _, w := range c.warns {
		if w == p {
			return
		}
	}
	c.warns = append(c.warns, p)
}

func (c *collector) warnings(fs []provision.FieldError) {
	for _, f := range fs {
		c.warn(Problem{Path: f.Path, Msg: f.Msg})
	}
}

// fromProvision takes the problems of a *provision.ValidationError.
func (c *collector) fromProvision(err error) {
	var ve *provision.ValidationError
	if errors.As(err, &ve) {
		for _, p := range ve.Problems {
			c.add(p.Path, p.Msg)
		}
	}
}

// fromErr takes another package's error: a joined error is several
// problems, each "path: message" when it starts with a path, else at def.
func (c *collector) fromErr(err error, def string) {
	var ve *provision.ValidationError
	if errors.As(err, &ve) {
		c.fromProvision(err)
		return
	}
	errs := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	}
	for _, e := range errs {
		if j, ok := e.(interface{ Unwrap() []error }); ok {
			c.fromErr(errors.Join(j.Unwrap()...), def)
			continue
		}
		p := splitPath(e.Error(), def)
		c.add(p.Path, p.Msg)
	}
}

// splitPath reads "path: message" (a path has no blanks); anything else is
// a message at def.
func splitPath(msg, def string) Problem {
	msg = strings.TrimPrefix(msg, "partition: ")
	msg = strings.TrimPrefix(msg, "bootloader: ")
	msg = strings.TrimPrefix(msg, "configdrive: ")
	if pre, rest, ok := strings.Cut(msg, ": "); ok && pre != "" && !strings.ContainsAny(pre, " \t") && looksLikePath(pre) {
		return Problem{Path: pre, Msg: rest}
	}
	return Problem{Path: def, Msg: msg}
}

// looksLikePath: a document path starts with one of its top-level keys.
func looksLikePath(s string) bool {
	for _, top := range []string{"ks_meta", "kernel_options", "interfaces", "hostname", "name", "uid", "profile", "fss", "pvs", "mds", "parteds", "lvs", "vgs", "document"} {
		if s == top || strings.HasPrefix(s, top+".") || strings.HasPrefix(s, top+"[") {
			return true
		}
	}
	return false
}

// sorted returns the problems ordered by path, then message.
func (c *collector) sorted() []Problem {
	out := append([]Problem(nil), c.probs...)
	sort.SliceStable(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}
