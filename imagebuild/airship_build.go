package imagebuild

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// AirshipMetadata is the output metadata YAML (builder.outputMetadataFileName):
// what was built, so a consumer can check and boot it.
type AirshipMetadata struct {
	Name   string         `yaml:"name"`
	Action string         `yaml:"action"`
	Source AirshipSource  `yaml:"source"`
	Files  []AirshipFile  `yaml:"files"`
	OS     MetadataOS     `yaml:"os"`
	Kernel AirshipKernel  `yaml:"kernel"`
	Boot   *AirshipBoot   `yaml:"boot,omitempty"`
	Seed   []string       `yaml:"seed"`
	Repos  []MetadataRepo `yaml:"repos"`
	// Packages are the packages installed in the image (dpkg's status).
	Packages []AirshipPackage `yaml:"packages"`
}

// AirshipFile is one output file.
type AirshipFile struct {
	Name   string `yaml:"name"`
	Size   int64  `yaml:"size"`
	SHA256 string `yaml:"sha256"`
}

// AirshipKernel is the image's kernel.
type AirshipKernel struct {
	Version string `yaml:"version"`
	Package string `yaml:"package"`
	Image   string `yaml:"image"`
	Initrd  string `yaml:"initrd"`
}

// AirshipBoot is how the ISO boots.
type AirshipBoot struct {
	Modes   []string `yaml:"modes"`
	Cmdline string   `yaml:"cmdline"`
	VolID   string   `yaml:"volumeId"`
}

// AirshipPackage is one installed package.
type AirshipPackage struct {
	Name    string `yaml:"name"`
	Version string `yaml:"version"`
}

// AirshipResult is what BuildAirship did.
type AirshipResult struct {
	Skipped  bool
	Outputs  []string
	Metadata AirshipMetadata
	Duration time.Duration
}

// TreeInfo is what the root tree holds that the metadata reports.
type TreeInfo struct {
	Packages []AirshipPackage
	Kernels  []string // versions of /boot/vmlinuz-*
	Seed     []string // files of the NoCloud seed directory
}

// ReadTree reads a root tarball: dpkg's status (installed packages),
// the kernels in /boot and the NoCloud seed files.
func ReadTree(r io.Reader) (TreeInfo, error) {
	var ti TreeInfo
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return TreeInfo{}, fmt.Errorf("root tarball: %w", err)
		}
		name := path.Clean("/" + h.Name)
		switch {
		case name == "/var/lib/dpkg/status":
			data, err := io.ReadAll(tr)
			if err != nil {
				return TreeInfo{}, fmt.Errorf("root tarball: %s: %w", name, err)
			}
			ti.Packages = ParseDpkgStatus(data)
		case path.Dir(name) == "/boot" && strings.HasPrefix(path.Base(name), "vmlinuz-") && h.Typeflag == tar.TypeReg:
			ti.Kernels = append(ti.Kernels, strings.TrimPrefix(path.Base(name), "vmlinuz-"))
		case path.Dir(name) == nocloudSeedDir && h.Typeflag == tar.TypeReg:
			ti.Seed = append(ti.Seed, path.Base(name))
		}
	}
	slices.Sort(ti.Kernels)
	slices.Sort(ti.Seed)
	return ti, nil
}

// ParseDpkgStatus lists the installed packages of a dpkg status file,
// sorted by name.
func ParseDpkgStatus(data []byte) []AirshipPackage {
	var out []AirshipPackage
	for _, para := range bytes.Split(data, []byte("\n\n")) {
		var p AirshipPackage
		installed := false
		sc := bufio.NewScanner(bytes.NewReader(para))
		sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
		for sc.Scan() {
			k, v, ok := strings.Cut(sc.Text(), ": ")
			if !ok {
				continue
			}
			switch k {
			case "Package":
				p.Name = v
			case "Version":
				p.Version = v
			case "Status":
				installed = strings.HasSuffix(v, " installed")
			}
		}
		if installed && p.Name != "" {
			out = append(out, p)
		}
	}
	slices.SortFunc(out, func(a, b AirshipPackage) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// highestKernel is the highest of the kernel versions (versionLess).
func highestKernel(ks []string) string {
	ks = slices.Clone(ks)
	slices.SortFunc(ks, func(a, b string) int {
		switch {
		case versionLess(a, b):
			return -1
		case versionLess(b, a):
			return 1
		}
		return 0
	})
	if len(ks) == 0 {
		return ""
	}
	return ks[len(ks)-1]
}

// BuildAirship builds a resolved Airship document: the root tree with the
// builder (Build), then what the action makes of it (the ISO, the qcow2,
// the tarball), then the output metadata. Nothing is rebuilt when the
// output and its metadata exist, unless bo.Force.
func BuildAirship(ctx context.Context, ab AirshipBuild, bo BuildOptions, d Deps) (AirshipResult, error) {
	t0 := time.Now()
	log := d.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	outputs := []string{ab.Output}
	if ab.Metadata != "" {
		outputs = append(outputs, ab.Metadata)
	}
	if !bo.Force && allFilesExist(outputs) {
		log.Info("the image and its metadata exist; nothing to do", "output", ab.Output)
		return AirshipResult{Skipped: true, Outputs: outputs}, nil
	}
	if err := os.MkdirAll(ab.WorkDir, 0o755); err != nil {
		return AirshipResult{}, fmt.Errorf("work dir: %w", err)
	}
	// scratch: the builder's filesystem images, the ISO's unpacked tree
	// (nothing is mounted below them), on failure as on success
	defer os.RemoveAll(ab.Config.Output)
	defer os.RemoveAll(filepath.Join(ab.WorkDir, "iso-root"))
	defer os.RemoveAll(filepath.Join(ab.WorkDir, "iso-tree"))
	if ab.Tarball != ab.Output {
		defer os.Remove(ab.Tarball)
	}
	bo.Kernel = ab.Kernel
	bo.Force = true
	bo.Options.Tarball = ab.Tarball
	if ab.Action == ActionQcow {
		bo.Options.DiskImage, bo.Options.DiskFormat, bo.Options.DiskSize = ab.Output, "qcow2", ab.DiskSize
	}
	for _, o := range outputs {
		if err := os.MkdirAll(filepath.Dir(o), 0o755); err != nil {
			return AirshipResult{}, fmt.Errorf("output dir: %w", err)
		}
	}
	log.Info("--- Airship image ---", "name", ab.Name, "action", ab.Action, "output", ab.Output)
	if _, err := Build(ctx, ab.Config, bo, d); err != nil {
		return AirshipResult{}, fmt.Errorf("%s: %w", ab.Action, err)
	}
	tf, err := os.Open(ab.Tarball)
	if err != nil {
		return AirshipResult{}, fmt.Errorf("%s: %w", ab.Action, err)
	}
	ti, err := ReadTree(bufio.NewReaderSize(tf, 1<<20))
	tf.Close()
	if err != nil {
		return AirshipResult{}, err
	}
	kver := highestKernel(ti.Kernels)
	md := AirshipMetadata{Name: ab.Name, Action: ab.Action, Source: ab.Source, Packages: ti.Packages, Seed: ti.Seed,
		Kernel: AirshipKernel{Version: kver}}
	if kver != "" {
		md.Kernel.Image, md.Kernel.Initrd = "/boot/vmlinuz-"+kver, "/boot/initrd.img-"+kver
		md.Kernel.Package = "linux-image-" + kver
	}
	if fm, err := os.ReadFile(filepathOfFuelMeta(ab.Config)); err == nil {
		var m Metadata
		if yaml.Unmarshal(fm, &m) == nil {
			md.OS, md.Repos = m.OS, m.Repos
		}
	}
	if ab.Action == ActionISO {
		label := isoLabel(ab.Name)
		p, err := ISOPlan(ISOInput{Tarball: ab.Tarball, KernelVersion: kver, WorkDir: ab.WorkDir, Output: ab.Output, Label: label, Title: ab.Name + " (imprint live)"})
		if err != nil {
			return AirshipResult{}, err
		}
		ex := &Executor{Runner: d.Runner, Mounter: d.Mounter, Procs: d.Procs, Log: log}
		if err := ex.Run(ctx, p); err != nil {
			return AirshipResult{}, fmt.Errorf("%s: %w", ab.Action, err)
		}
		md.Kernel.Image, md.Kernel.Initrd = "/"+ISOKernel, "/"+ISOInitrd
		md.Boot = &AirshipBoot{Modes: []string{"bios", "uefi"}, Cmdline: ISOKernelCmdline, VolID: label}
	}
	if kver == "" {
		return AirshipResult{}, fmt.Errorf("%s: the image has no kernel in /boot", ab.Action)
	}
	f, err := fileSum(ab.Output)
	if err != nil {
		return AirshipResult{}, err
	}
	md.Files = []AirshipFile{f}
	if ab.Metadata != "" {
		data, err := md.Marshal()
		if err != nil {
			return AirshipResult{}, err
		}
		if err := writeFileAtomic(ab.Metadata, data, 0o644); err != nil {
			return AirshipResult{}, fmt.Errorf("output metadata: %w", err)
		}
	}
	r := AirshipResult{Outputs: outputs, Metadata: md, Duration: time.Since(t0)}
	log.Info("--- Airship image END ---", "duration", r.Duration.Round(time.Second), "outputs", outputs, "size", f.Size)
	return r, nil
}

func filepathOfFuelMeta(cfg Config) string {
	_, meta := OutputPaths(cfg)
	return meta
}

func allFilesExist(paths []string) bool {
	for _, p := range paths {
		if _, err := os.Stat(p); err != nil {
			return false
		}
	}
	return true
}

// fileSum is a file's size and sha256.
func fileSum(p string) (AirshipFile, error) {
	f, err := os.Open(p)
	if err != nil {
		return AirshipFile{}, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return AirshipFile{}, fmt.Errorf("%s: %w", p, err)
	}
	return AirshipFile{Name: filepath.Base(p), Size: n, SHA256: hex.EncodeToString(h.Sum(nil))}, nil
}

// Marshal renders the metadata as YAML.
func (m AirshipMetadata) Marshal() ([]byte, error) { return marshalYAML(m) }
