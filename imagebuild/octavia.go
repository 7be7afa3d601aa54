package imagebuild

import (
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
)

// Octavia is the command line of Octavia's diskimage-create.sh (the
// amphora image, octavia-amphora-base-image-spec): `imprint build-image`
// with no config file. The zero value is not meant to be used; start from
// DefaultOctavia.
type Octavia struct {
	Arch         string   // -a: amd64
	Backend      string   // -b: haproxy
	Cache        string   // -c: the debootstrap cache directory
	OS           string   // -i: debian (this host's mirror) or ubuntu (DIB_DISTRIBUTION_MIRROR)
	Output       string   // -o: the output file name without extension
	RootPassword string   // -r: "" leaves root's password locked
	SizeGB       int      // -s: the disk image's size in GiB
	Types        []string // -t: qcow2, raw and/or tar
	WorkDir      string   // -w: where the image is built
}

// OctaviaEnv are the DIB_* variables diskimage-create.sh honours, and
// diskimage-builder's ELEMENTS_PATH and DIB_RELEASE.
type OctaviaEnv struct {
	Mirror            string // DIB_DISTRIBUTION_MIRROR
	Elements          string // DIB_ELEMENTS: replaces the backend element (space separated)
	LocalElements     string // DIB_LOCAL_ELEMENTS: added (space separated); needs LocalElementsPath
	LocalElementsPath string // DIB_LOCAL_ELEMENTS_PATH (colon separated)
	ElementsPath      string // ELEMENTS_PATH (colon separated)
	Release           string // DIB_RELEASE: the codename
}

// OctaviaEnvFrom reads OctaviaEnv with getenv (os.Getenv).
func OctaviaEnvFrom(getenv func(string) string) OctaviaEnv {
	return OctaviaEnv{Mirror: getenv("DIB_DISTRIBUTION_MIRROR"), Elements: getenv("DIB_ELEMENTS"),
		LocalElements: getenv("DIB_LOCAL_ELEMENTS"), LocalElementsPath: getenv("DIB_LOCAL_ELEMENTS_PATH"),
		ElementsPath: getenv("ELEMENTS_PATH"), Release: getenv("DIB_RELEASE")}
}

// Octavia's defaults, where they make sense here: Debian rather than
// Ubuntu (this machine's mirror serves Debian).
const (
	OctaviaOutput = "amphora-x64-haproxy"
	OctaviaSizeGB = 5
)

// DefaultOctavia is `diskimage-create.sh` without arguments; cache is the
// default cache directory (~/.cache/image-create, expanded by the caller).
func DefaultOctavia(cache string) Octavia {
	return Octavia{Arch: "amd64", Backend: "haproxy", Cache: cache, OS: "debian", Output: OctaviaOutput,
		SizeGB: OctaviaSizeGB, Types: []string{"qcow2"}, WorkDir: "."}
}

// OctaviaTypes are the image types -t accepts (comma separated, as
// disk-image-create's -t).
var OctaviaTypes = []string{"qcow2", "raw", "tar"}

// AmphoraPackages are what an amphora runs besides the base system and
// its backend: keepalived (VRRP for active/standby), ipvsadm and conntrack
// (UDP load balancing), iptables, the network tools the agent calls, and
// rsyslog and logrotate for the load balancers' logs.
var AmphoraPackages = []string{
	"keepalived", "ipvsadm", "conntrack", "iptables", "iputils-ping", "iproute2", "ethtool",
	"netcat-openbsd", "socat", "rsyslog", "logrotate",
}

// OctaviaBackends maps -b to the element and packages of the backend.
var OctaviaBackends = map[string]struct {
	Element  string
	Packages []string
}{
	"haproxy": {Element: "haproxy", Packages: []string{"haproxy"}},
}

// distro is what differs between the distributions -i accepts.
type distro struct {
	codename string
	section  string
	packages func() []string
}

var octaviaDistros = map[string]distro{
	"debian": {codename: "bookworm", section: "main", packages: func() []string { return DefaultPackages(KernelCloud) }},
	"ubuntu": {codename: "jammy", section: "main universe", packages: UbuntuPackages},
}

// UbuntuPackages is DefaultPackages with Ubuntu's names: the virtual
// kernel flavour (Ubuntu has no linux-image-cloud-amd64) and netplan, which
// Ubuntu's cloud-init renders the network with, instead of ifupdown.
func UbuntuPackages() []string {
	var out []string
	for _, p := range DefaultPackages(KernelCloud) {
		switch p {
		case "linux-image-cloud-amd64":
			p = "linux-image-virtual"
		case "ifupdown":
			p = "netplan.io"
		}
		out = append(out, p)
	}
	return out
}

// OctaviaBuild is what an Octavia command line builds: the config and
// options for Build and the files it writes.
type OctaviaBuild struct {
	Config  Config
	Options BuildOptions
	// Outputs are the requested images (qcow2, raw, tar, in that order).
	Outputs []string
}

// PrepareOctavia maps an Octavia command line and its environment onto a
// build: one ext4 root filesystem (also written as <output>.root.img.zst
// with <output>.yaml for imprint's agent), the base packages of the
// distribution, the amphora packages and the backend's, the backend
// element plus DIB_LOCAL_ELEMENTS (or DIB_ELEMENTS instead of the
// backend), found through DIB_LOCAL_ELEMENTS_PATH, ELEMENTS_PATH and
// builtin (the directory WriteBuiltinElements filled). hostRoot is read for
// the host's mirror when DIB_DISTRIBUTION_MIRROR is unset (Debian only).
// Every problem is reported, each naming its flag or variable.
func PrepareOctavia(o Octavia, env OctaviaEnv, hostRoot fs.FS, builtin string) (OctaviaBuild, error) {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	switch o.Arch {
	case "amd64", "x86_64":
		o.Arch = "amd64"
	case "i386", "armhf", "arm64", "aarch64", "ppc64le", "s390x":
		bad("-a %s: cannot be built here: only amd64 (the image boots through grub-pc's BIOS loader and an amd64 kernel, and this host runs no foreign binaries for debootstrap's second stage: no qemu-user binfmt)", o.Arch)
	default:
		bad("-a %q: not an architecture (amd64 is the one built here)", o.Arch)
	}
	backend, ok := OctaviaBackends[o.Backend]
	if !ok {
		bad("-b %q: not a backend (haproxy is the only one)", o.Backend)
	}
	d, ok := octaviaDistros[o.OS]
	switch {
	case !ok && (o.OS == "fedora" || o.OS == "centos" || o.OS == "rhel"):
		bad("-i %s: cannot be built here: imprint builds Debian-family images with debootstrap and apt (debian, ubuntu); %s needs dnf", o.OS, o.OS)
	case !ok:
		bad("-i %q: not a base OS (debian or ubuntu)", o.OS)
	}
	mirror := strings.TrimSpace(env.Mirror)
	codename := d.codename
	if env.Release != "" {
		if !codenameRe.MatchString(env.Release) {
			bad("DIB_RELEASE %q: not a release code name", env.Release)
		}
		codename = env.Release
	}
	if ok && mirror == "" {
		if o.OS != "debian" {
			bad("-i %s: needs DIB_DISTRIBUTION_MIRROR (this host's apt mirror serves Debian)", o.OS)
		} else if hostRoot != nil {
			m, err := HostMirror(hostRoot, codename)
			if err != nil {
				bad("DIB_DISTRIBUTION_MIRROR unset, and %v", err)
			}
			mirror = m
		}
	}
	if o.SizeGB <= 0 || o.SizeGB > 2048 {
		bad("-s %d: the image size in GB must be 1 to 2048", o.SizeGB)
	}
	if len(o.Types) == 0 {
		bad("-t: no image type (qcow2, raw or tar)")
	}
	for _, t := range o.Types {
		if !slices.Contains(OctaviaTypes, t) {
			bad("-t %q: not an image type (%s)", t, strings.Join(OctaviaTypes, ", "))
		}
	}
	if slices.Contains(o.Types, "qcow2") && slices.Contains(o.Types, "raw") {
		bad("-t: qcow2 and raw both name <output>'s disk image; pick one")
	}
	base := o.Output
	for _, ext := range []string{".qcow2", ".raw", ".tar"} {
		base = strings.TrimSuffix(base, ext)
	}
	if base == "" || strings.HasSuffix(base, "/") || strings.HasPrefix(path.Base(base), ".") {
		bad("-o %q: not a file name", o.Output)
	} else if !filepath.IsAbs(base) {
		bad("-o %q: must be absolute here (the command makes it so)", o.Output)
	}
	if strings.ContainsAny(o.RootPassword, "\n") {
		bad("-r: the root password must be one line")
	}
	if o.Cache != "" && !filepath.IsAbs(o.Cache) {
		bad("-c %q: must be an absolute directory", o.Cache)
	}
	var elements, epath []string
	if env.LocalElements != "" && env.LocalElementsPath == "" {
		bad("DIB_LOCAL_ELEMENTS is set but DIB_LOCAL_ELEMENTS_PATH is not (where are %q?)", env.LocalElements)
	}
	epath = append(epath, SplitElementsPath(env.LocalElementsPath)...)
	epath = append(epath, SplitElementsPath(env.ElementsPath)...)
	if builtin != "" {
		epath = append(epath, builtin)
	}
	if env.Elements != "" {
		elements = strings.Fields(env.Elements)
	} else if backend.Element != "" {
		elements = []string{backend.Element}
	}
	elements = append(elements, strings.Fields(env.LocalElements)...)
	for _, e := range elements {
		if !elementNameRe.MatchString(e) {
			bad("element %q (DIB_ELEMENTS or DIB_LOCAL_ELEMENTS): not an element name", e)
		}
	}
	if len(errs) > 0 {
		return OctaviaBuild{}, errors.Join(errs...)
	}

	packages := append(append(d.packages(), AmphoraPackages...), backend.Packages...)
	cfg := Config{
		ImageData: map[string]Image{"/": {Container: "zstd", Format: "ext4", URI: path.Base(base) + ".root.img.zst"}},
		Output:    filepath.Dir(base),
		Repos:     []Repo{{Name: o.OS, Type: "deb", URI: mirror, Suite: codename, Section: d.section}},
		Codename:  codename,
		Packages:  dedupe(packages),
	}
	if o.RootPassword != "" {
		pw := o.RootPassword
		cfg.RootPassword = &pw
	}
	bo := BuildOptions{WorkDir: o.WorkDir, Elements: elements, ElementsPath: epath, HostRoot: hostRoot,
		Options: Options{Arch: o.Arch, Distro: o.OS, Variant: "minbase", Cache: o.Cache, ImageSize: DefaultImageSize}}
	var outputs []string
	for _, t := range []string{"qcow2", "raw"} {
		if slices.Contains(o.Types, t) {
			bo.Options.DiskImage, bo.Options.DiskFormat, bo.Options.DiskSize = base+"."+t, t, int64(o.SizeGB)<<30
			outputs = append(outputs, bo.Options.DiskImage)
		}
	}
	if slices.Contains(o.Types, "tar") {
		bo.Options.Tarball = base + ".tar"
		outputs = append(outputs, bo.Options.Tarball)
	}
	return OctaviaBuild{Config: cfg, Options: bo, Outputs: outputs}, nil
}

func dedupe(in []string) []string {
	var out []string
	for _, s := range in {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

//go:embed elements
var builtinElements embed.FS

// BuiltinElements lists the elements imprint ships (haproxy).
func BuiltinElements() []string {
	entries, _ := fs.ReadDir(builtinElements, "elements")
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}

// WriteBuiltinElements writes imprint's own elements into dir (an element
// search path entry): hooks executable, documentation not.
func WriteBuiltinElements(dir string) error {
	return fs.WalkDir(builtinElements, "elements", func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel := strings.TrimPrefix(strings.TrimPrefix(p, "elements"), "/")
		target := filepath.Join(dir, filepath.FromSlash(rel))
		if de.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		data, err := builtinElements.ReadFile(p)
		if err != nil {
			return err
		}
		mode := os.FileMode(0o644)
		if strings.HasSuffix(path.Dir(p), ".d") && path.Base(path.Dir(p)) != EnvPhase {
			mode = 0o755
		}
		return writeFile(target, data, mode)
	})
}
