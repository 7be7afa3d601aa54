package imagebuild

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Airship's declarative image documents (the seed
// airship-declarative-image-builder.txt): an ImageConfiguration
// (apiVersion airshipit.org/v1alpha1) or the AirshipImage CR (kind
// AirshipImage/v1). Both carry a builder section naming the cloud-init
// files, an action (build-root, build-iso, build-qcow) and params
// (networking, software, storage). imprint maps them onto the same
// builder as the Fuel JSON: the document is parsed strictly (an unknown
// field is an error naming it), resolved by the pure Resolve into a
// Config plus what the action makes, and built by BuildAirship.

// Airship actions.
const (
	ActionRoot = "build-root" // a root filesystem tarball
	ActionISO  = "build-iso"  // a live ISO, BIOS and UEFI
	ActionQcow = "build-qcow" // a whole-disk qcow2
)

// AirshipActions lists the actions, in the seed's order.
var AirshipActions = []string{ActionRoot, ActionISO, ActionQcow}

// AirshipDoc is an ImageConfiguration or AirshipImage document. The body
// (builder, container, action, params, image) may be at the top level (as
// airshipctl's executor documents have it) or under spec, not both.
type AirshipDoc struct {
	APIVersion  string       `yaml:"apiVersion"`
	Kind        string       `yaml:"kind"`
	Metadata    AirshipMeta  `yaml:"metadata"`
	Name        string       `yaml:"name"` // the AirshipImage form names itself here
	Spec        *AirshipSpec `yaml:"spec"`
	AirshipSpec `yaml:",inline"`
}

// AirshipMeta is the document's Kubernetes-style metadata.
type AirshipMeta struct {
	Name        string            `yaml:"name"`
	Namespace   string            `yaml:"namespace"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

// AirshipSpec is the body of the document.
type AirshipSpec struct {
	Image     *AirshipImageOut  `yaml:"image"`
	Container *AirshipContainer `yaml:"container"`
	Builder   *AirshipBuilder   `yaml:"builder"`
	Action    string            `yaml:"action"`
	Params    *AirshipParams    `yaml:"params"`
}

// AirshipImageOut names what is built: type iso, qcow (qcow2) or root
// (the action, when action is not given) and the output file name.
type AirshipImageOut struct {
	Type           string `yaml:"type"`
	OutputFileName string `yaml:"outputFileName"`
}

// AirshipContainer is how Airship runs its builder container. imprint
// builds natively; the host side of volume ("HOST:/config") is the
// directory the builder files are read from and the outputs written to.
type AirshipContainer struct {
	ContainerRuntime string `yaml:"containerRuntime"`
	Image            string `yaml:"image"`
	Volume           string `yaml:"volume"`
	Privileged       *bool  `yaml:"privileged"`
}

// AirshipBuilder names the files of the config directory.
type AirshipBuilder struct {
	UserDataFileName       string `yaml:"userDataFileName"`
	NetworkConfigFileName  string `yaml:"networkConfigFileName"`
	OutputMetadataFileName string `yaml:"outputMetadataFileName"`
}

// AirshipParams are the image's settings by area.
type AirshipParams struct {
	Networking *AirshipNetworking `yaml:"networking"`
	Software   *AirshipSoftware   `yaml:"software"`
	Storage    *AirshipStorage    `yaml:"storage"`
}

// AirshipNetworking is baked into the image: the host name (also the
// seed's local-hostname) and static /etc/hosts entries. Interfaces come
// from the network-config file, applied by cloud-init.
type AirshipNetworking struct {
	Hostname string        `yaml:"hostname"`
	Hosts    []AirshipHost `yaml:"hosts"`
}

// AirshipHost is one /etc/hosts line.
type AirshipHost struct {
	IP    string   `yaml:"ip"`
	Names []string `yaml:"names"`
}

// AirshipSoftware is what is installed: packages on top of the action's
// own, from repos (the first one is debootstrapped; none: the host's
// mirror), with the kernel flavour and release.
type AirshipSoftware struct {
	Packages []string      `yaml:"packages"`
	Repos    []AirshipRepo `yaml:"repos"`
	Kernel   string        `yaml:"kernel"`
	Release  string        `yaml:"release"`
}

// AirshipRepo is one apt repository.
type AirshipRepo struct {
	Name       string   `yaml:"name"`
	URI        string   `yaml:"uri"`
	Suite      string   `yaml:"suite"`
	Components []string `yaml:"components"`
	Priority   *int     `yaml:"priority"`
}

// AirshipStorage is the disk of build-qcow: its size and partitions
// (mount point, filesystem, size). The root partition takes what the
// others leave of diskSize.
type AirshipStorage struct {
	DiskSize   string             `yaml:"diskSize"`
	Partitions []AirshipPartition `yaml:"partitions"`
}

// AirshipPartition is one partition of the qcow2's disk.
type AirshipPartition struct {
	MountPoint string `yaml:"mountPoint"`
	Filesystem string `yaml:"filesystem"`
	Size       string `yaml:"size"`
}

// IsAirship reports whether data is an Airship image document (its kind
// is ImageConfiguration or AirshipImage), not a Fuel build config.
func IsAirship(data []byte) bool {
	var probe struct {
		Kind string `yaml:"kind"`
	}
	if t := bytes.TrimSpace(data); len(t) > 0 && t[0] == '{' {
		return false
	}
	if err := yaml.Unmarshal(data, &probe); err != nil {
		return false
	}
	k, _, _ := strings.Cut(probe.Kind, "/")
	return k == "ImageConfiguration" || k == "AirshipImage"
}

// ParseAirship decodes an Airship image document strictly: an unknown
// field, a second document or a wrong type is an error naming the line.
func ParseAirship(data []byte) (AirshipDoc, error) {
	var d AirshipDoc
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&d); err != nil {
		return AirshipDoc{}, fmt.Errorf("airship image document: %w", err)
	}
	var extra any
	if err := dec.Decode(&extra); err != io.EOF {
		return AirshipDoc{}, errors.New("airship image document: more than one YAML document")
	}
	return d, nil
}

// body is the document's body: spec, or the top-level fields.
func (d AirshipDoc) body() (AirshipSpec, string) {
	if d.Spec != nil {
		return *d.Spec, "spec."
	}
	return d.AirshipSpec, ""
}

// DocName is the document's name (metadata.name, or name).
func (d AirshipDoc) DocName() string {
	if d.Metadata.Name != "" {
		return d.Metadata.Name
	}
	return d.Name
}

var (
	dnsLabelRe = regexp.MustCompile(`^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$`)
	hostnameRe = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$`)
	fileNameRe = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._+-]*$`)
)

// imageTypes maps spec.image.type to the action.
var imageTypes = map[string]string{"iso": ActionISO, "qcow": ActionQcow, "qcow2": ActionQcow, "root": ActionRoot}

// Action is the document's action: action, else what image.type names.
func (d AirshipDoc) Action() string {
	b, _ := d.body()
	if b.Action != "" {
		return b.Action
	}
	if b.Image != nil {
		return imageTypes[b.Image.Type]
	}
	return ""
}

// Validate returns every problem of the document, each naming its field,
// joined; nil if there is none.
func (d AirshipDoc) Validate() error {
	var errs []error
	add := func(field, format string, a ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, a...)))
	}
	switch d.Kind {
	case "ImageConfiguration":
		if d.APIVersion != "airshipit.org/v1alpha1" {
			add("apiVersion", "%q: an ImageConfiguration is airshipit.org/v1alpha1", d.APIVersion)
		}
	case "AirshipImage/v1", "AirshipImage":
		if d.APIVersion != "" && d.APIVersion != "airshipit.org/v1" && d.APIVersion != "airshipit.org/v1alpha1" {
			add("apiVersion", "%q: an AirshipImage is airshipit.org/v1 or v1alpha1", d.APIVersion)
		}
	default:
		add("kind", "%q: want ImageConfiguration or AirshipImage/v1", d.Kind)
	}
	if d.Metadata.Name != "" && d.Name != "" {
		add("name", "both name and metadata.name are set")
	}
	if n := d.DocName(); n == "" {
		add("metadata.name", "must be set (it names the image and the cloud-init instance)")
	} else if !dnsLabelRe.MatchString(n) {
		add("metadata.name", "%q must be lower case letters, digits, '-' and '.'", n)
	}
	top := d.AirshipSpec
	if d.Spec != nil && (top.Image != nil || top.Container != nil || top.Builder != nil || top.Action != "" || top.Params != nil) {
		add("spec", "the body is given both under spec and at the top level (builder, container, action, params, image)")
	}
	b, p := d.body()
	action := d.Action()
	if b.Action != "" && !slices.Contains(AirshipActions, b.Action) {
		add(p+"action", "%q is not one of %s", b.Action, strings.Join(AirshipActions, ", "))
	}
	if b.Image != nil {
		t, ok := imageTypes[b.Image.Type]
		switch {
		case b.Image.Type != "" && !ok:
			add(p+"image.type", "%q is not one of iso, qcow, qcow2, root", b.Image.Type)
		case ok && b.Action != "" && t != b.Action:
			add(p+"image.type", "%q contradicts action %q", b.Image.Type, b.Action)
		}
		if f := b.Image.OutputFileName; f != "" && !fileNameRe.MatchString(f) {
			add(p+"image.outputFileName", "%q must be a plain file name (no directory)", f)
		}
	}
	if action == "" && b.Action == "" {
		add(p+"action", "must be one of %s (or image.type iso, qcow or root)", strings.Join(AirshipActions, ", "))
	}
	if b.Container != nil && b.Container.Volume != "" {
		host, guest, ok := strings.Cut(b.Container.Volume, ":")
		if !ok || host == "" || !strings.HasPrefix(guest, "/") {
			add(p+"container.volume", "%q is not HOST_DIR:/CONTAINER_DIR", b.Container.Volume)
		}
	}
	if bl := b.Builder; bl != nil {
		for _, f := range []struct{ field, v string }{
			{"userDataFileName", bl.UserDataFileName}, {"networkConfigFileName", bl.NetworkConfigFileName},
			{"outputMetadataFileName", bl.OutputMetadataFileName},
		} {
			if f.v != "" && !fileNameRe.MatchString(f.v) {
				add(p+"builder."+f.field, "%q must be a plain file name in the config directory", f.v)
			}
		}
	}
	if b.Params != nil {
		d.validateParams(p+"params.", *b.Params, action, add)
	}
	return errors.Join(errs...)
}

func (d AirshipDoc) validateParams(p string, pr AirshipParams, action string, add func(string, string, ...any)) {
	if n := pr.Networking; n != nil {
		if n.Hostname != "" && (len(n.Hostname) > 253 || !hostnameRe.MatchString(n.Hostname)) {
			add(p+"networking.hostname", "%q is not a host name", n.Hostname)
		}
		for i, h := range n.Hosts {
			f := fmt.Sprintf("%snetworking.hosts[%d]", p, i)
			if net.ParseIP(h.IP) == nil {
				add(f+".ip", "%q is not an IP address", h.IP)
			}
			if len(h.Names) == 0 {
				add(f+".names", "must list at least one host name")
			}
			for j, nm := range h.Names {
				if !hostnameRe.MatchString(nm) {
					add(fmt.Sprintf("%s.names[%d]", f, j), "%q is not a host name", nm)
				}
			}
		}
	}
	if s := pr.Software; s != nil {
		for i, pk := range s.Packages {
			if !packageRe.MatchString(pk) {
				add(fmt.Sprintf("%ssoftware.packages[%d]", p, i), "%q is not a Debian package name", pk)
			}
		}
		if s.Kernel != "" && s.Kernel != KernelCloud && s.Kernel != KernelGeneric {
			add(p+"software.kernel", "%q is not %s or %s", s.Kernel, KernelCloud, KernelGeneric)
		}
		if s.Release != "" && !codenameRe.MatchString(s.Release) {
			add(p+"software.release", "%q is not a release code name", s.Release)
		}
		for i, r := range s.Repos {
			if len(r.Components) == 0 && !strings.HasSuffix(r.Suite, "/") {
				add(fmt.Sprintf("%ssoftware.repos[%d].components", p, i), `must be set unless suite ends with "/" (a flat repository)`)
			}
		}
	}
	if st := pr.Storage; st != nil {
		if action != ActionQcow {
			add(p+"storage", "only build-qcow makes a disk (%s has no partitions)", action)
			return
		}
		if st.DiskSize != "" {
			if _, err := parseByteSize(st.DiskSize); err != nil {
				add(p+"storage.diskSize", "%v", err)
			}
		}
		seen := map[string]int{}
		root := false
		for i, pt := range st.Partitions {
			f := fmt.Sprintf("%sstorage.partitions[%d]", p, i)
			if !strings.HasPrefix(pt.MountPoint, "/") || path.Clean(pt.MountPoint) != pt.MountPoint {
				add(f+".mountPoint", "%q must be a clean absolute path", pt.MountPoint)
			} else if j, dup := seen[pt.MountPoint]; dup {
				add(f+".mountPoint", "%q is also partitions[%d]", pt.MountPoint, j)
			} else {
				seen[pt.MountPoint] = i
			}
			root = root || pt.MountPoint == "/"
			if pt.Filesystem != "" && !slices.Contains(Formats, pt.Filesystem) {
				add(f+".filesystem", "%q is not one of %s", pt.Filesystem, strings.Join(Formats, ", "))
			}
			if pt.Size != "" {
				if _, err := parseByteSize(pt.Size); err != nil {
					add(f+".size", "%v", err)
				} else if pt.Filesystem == "xfs" && pt.MountPoint != "/" {
					add(f+".size", "an xfs partition is as large as its content (xfs cannot be grown offline); drop size or use ext4")
				}
			}
		}
		if len(st.Partitions) > 0 && !root {
			add(p+"storage.partitions", `must contain the root partition "/"`)
		}
		if len(st.Partitions) > 4 {
			add(p+"storage.partitions", "%d partitions, the disk's MBR holds 4", len(st.Partitions))
		}
	}
}

// parseByteSize reads 8G, 512M, 4096K or bytes.
func parseByteSize(s string) (int64, error) {
	mult := int64(1)
	n := strings.TrimSuffix(strings.TrimSuffix(s, "iB"), "B")
	switch {
	case strings.HasSuffix(n, "G"):
		mult, n = 1<<30, strings.TrimSuffix(n, "G")
	case strings.HasSuffix(n, "M"):
		mult, n = 1<<20, strings.TrimSuffix(n, "M")
	case strings.HasSuffix(n, "K"):
		mult, n = 1<<10, strings.TrimSuffix(n, "K")
	}
	v, err := strconv.ParseInt(n, 10, 64)
	if err != nil || v <= 0 || v > (1<<50)/mult {
		return 0, fmt.Errorf("%q is not a size such as 4G, 512M or bytes", s)
	}
	return v * mult, nil
}

// ConfigDir is where the builder files are read and the outputs written:
// the host side of container.volume (relative to the document's
// directory), else the document's directory.
func (d AirshipDoc) ConfigDir(docDir string) string {
	b, _ := d.body()
	if b.Container != nil && b.Container.Volume != "" {
		host, _, _ := strings.Cut(b.Container.Volume, ":")
		if !filepath.IsAbs(host) {
			host = filepath.Join(docDir, host)
		}
		return filepath.Clean(host)
	}
	return docDir
}

// AirshipInput is what Resolve needs besides the document: the config
// directory's files (read by the caller; nil when the builder names none)
// and where things go.
type AirshipInput struct {
	// ConfigDir holds the builder files; the outputs go to OutputDir
	// (ConfigDir when empty).
	ConfigDir, OutputDir string
	// WorkDir is scratch space on the build's filesystem (absolute).
	WorkDir string
	// UserData and NetworkConfig are the contents of the named files.
	UserData, NetworkConfig []byte
}

// AirshipBuild is a resolved document: the builder's Config and the
// action's outputs.
type AirshipBuild struct {
	Name   string
	Action string
	// Config is what the builder builds (its Output is scratch under WorkDir).
	Config Config
	// Kernel is the kernel flavour.
	Kernel string
	// Output is the action's file: the ISO, the qcow2 or the tarball.
	Output string
	// Metadata is the output metadata YAML's path ("" for none).
	Metadata string
	// Tarball is the root tree's tar: Output for build-root, scratch otherwise.
	Tarball string
	// DiskSize is the qcow2's size (0: what the filesystems need plus 1 GiB).
	DiskSize int64
	// WorkDir is the scratch directory.
	WorkDir string
	// Source records the document's container and labels for the metadata.
	Source AirshipSource
}

// AirshipSource is what the metadata says about the document.
type AirshipSource struct {
	Kind      string            `yaml:"kind"`
	Name      string            `yaml:"name"`
	Labels    map[string]string `yaml:"labels,omitempty"`
	Container string            `yaml:"container,omitempty"`
}

// Seed paths: cloud-init's NoCloud seed directory in the image.
const nocloudSeedDir = "/var/lib/cloud/seed/nocloud"

// Resolve maps a validated document onto the builder. It is pure: in
// carries the files' contents.
func (d AirshipDoc) Resolve(in AirshipInput) (AirshipBuild, error) {
	if err := d.Validate(); err != nil {
		return AirshipBuild{}, err
	}
	if !filepath.IsAbs(in.WorkDir) {
		return AirshipBuild{}, fmt.Errorf("work dir %q: must be absolute", in.WorkDir)
	}
	b, p := d.body()
	name, action := d.DocName(), d.Action()
	out := in.OutputDir
	if out == "" {
		out = in.ConfigDir
	}
	if !filepath.IsAbs(out) {
		return AirshipBuild{}, fmt.Errorf("output dir %q: must be absolute", out)
	}
	var pr AirshipParams
	if b.Params != nil {
		pr = *b.Params
	}
	var sw AirshipSoftware
	if pr.Software != nil {
		sw = *pr.Software
	}
	kernel := sw.Kernel
	if kernel == "" {
		kernel = KernelCloud
	}
	ab := AirshipBuild{Name: name, Action: action, Kernel: kernel, WorkDir: in.WorkDir,
		Source: AirshipSource{Kind: d.Kind, Name: name, Labels: d.Metadata.Labels}}
	if b.Container != nil {
		ab.Source.Container = b.Container.Image
	}
	ext := map[string]string{ActionISO: ".iso", ActionQcow: ".qcow2", ActionRoot: ".tar"}[action]
	file := name + ext
	if b.Image != nil && b.Image.OutputFileName != "" {
		file = b.Image.OutputFileName
	}
	ab.Output = filepath.Join(out, file)
	if b.Builder != nil && b.Builder.OutputMetadataFileName != "" {
		ab.Metadata = filepath.Join(out, b.Builder.OutputMetadataFileName)
		if ab.Metadata == ab.Output {
			return AirshipBuild{}, fmt.Errorf("%sbuilder.outputMetadataFileName: %q is also the image's file name", p, file)
		}
	}
	ab.Tarball = filepath.Join(in.WorkDir, "root.tar")
	if action == ActionRoot {
		ab.Tarball = ab.Output
	}

	cfg := Config{Output: filepath.Join(in.WorkDir, "fs"), Codename: sw.Release}
	// the filesystems: build-qcow's partitions, else one ext4 root
	cfg.ImageData = map[string]Image{"/": {Container: "raw", Format: "ext4", URI: "root.img"}}
	if st := pr.Storage; st != nil && len(st.Partitions) > 0 {
		cfg.ImageData = map[string]Image{}
		var total int64
		allSized := true
		for _, pt := range st.Partitions {
			fsType := pt.Filesystem
			if fsType == "" {
				fsType = "ext4"
			}
			img := Image{Container: "raw", Format: fsType, URI: strings.Trim(strings.ReplaceAll(pt.MountPoint, "/", "-"), "-") + ".img"}
			if pt.MountPoint == "/" {
				img.URI = "root.img"
			}
			if pt.Size != "" {
				sz, _ := parseByteSize(pt.Size)
				total += sz
				if pt.MountPoint != "/" {
					img.Size = sz
				}
			} else {
				allSized = false
			}
			cfg.ImageData[pt.MountPoint] = img
		}
		if allSized {
			ab.DiskSize = total + 2*mib
		}
	}
	if st := pr.Storage; st != nil && st.DiskSize != "" {
		ab.DiskSize, _ = parseByteSize(st.DiskSize)
	}
	for i, r := range sw.Repos {
		n := r.Name
		if n == "" {
			n = fmt.Sprintf("repo%d", i)
		}
		cfg.Repos = append(cfg.Repos, Repo{Name: n, Type: "deb", URI: r.URI, Suite: r.Suite, Section: strings.Join(r.Components, " "), Priority: r.Priority})
	}
	cfg.Packages = airshipPackages(action, kernel, sw.Packages)

	// what is baked in: networking, then the NoCloud seed
	host := name
	if n := pr.Networking; n != nil {
		if n.Hostname != "" {
			host = n.Hostname
			cfg.Files = append(cfg.Files, File{Path: "/etc/hostname", Content: n.Hostname + "\n", Mode: "0644"})
		}
		cfg.Files = append(cfg.Files, File{Path: "/etc/hosts", Content: etcHosts(host, n.Hosts), Mode: "0644"})
	}
	seed, err := nocloudSeed(name, host, b.Builder, p, in)
	if err != nil {
		return AirshipBuild{}, err
	}
	cfg.Files = append(cfg.Files, seed...)
	ab.Config = cfg
	return ab, nil
}

// airshipPackages is what each action needs to boot (or, for a root
// tree, to be booted later), plus the document's packages.
func airshipPackages(action, kernel string, extra []string) []string {
	var pk []string
	switch action {
	case ActionQcow:
		pk = DefaultPackages(kernel)
	default:
		k := "linux-image-cloud-amd64"
		if kernel == KernelGeneric {
			k = "linux-image-amd64"
		}
		pk = []string{"initramfs-tools", k, "systemd-sysv", "dbus", "udev", "kmod", "cloud-init", "openssh-server", "sudo", "locales",
			"ifupdown", "isc-dhcp-client", "iproute2", "netbase", "ca-certificates", "procps"}
		if action == ActionISO {
			// live-boot's initramfs scripts find the medium and mount
			// /live/filesystem.squashfs under a tmpfs overlay (boot=live)
			pk = append(pk, "live-boot")
		}
	}
	for _, p := range extra {
		if !slices.Contains(pk, p) {
			pk = append(pk, p)
		}
	}
	return pk
}

func etcHosts(host string, hosts []AirshipHost) string {
	var b strings.Builder
	b.WriteString("# written by imprint build-image (params.networking)\n127.0.0.1\tlocalhost\n")
	short, _, _ := strings.Cut(host, ".")
	if short != host {
		fmt.Fprintf(&b, "127.0.1.1\t%s %s\n", host, short)
	} else {
		fmt.Fprintf(&b, "127.0.1.1\t%s\n", host)
	}
	for _, h := range hosts {
		fmt.Fprintf(&b, "%s\t%s\n", h.IP, strings.Join(h.Names, " "))
	}
	b.WriteString("::1\tlocalhost ip6-localhost ip6-loopback\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n")
	return b.String()
}

// nocloudSeed checks the user-data and network-config and makes the
// NoCloud seed files: cloud-init finds /var/lib/cloud/seed/nocloud in the
// image and applies them on first boot. The instance id changes with the
// files, so a rebuilt image is a new instance.
func nocloudSeed(name, host string, bl *AirshipBuilder, p string, in AirshipInput) ([]File, error) {
	var files []File
	h := sha256.New()
	if bl != nil && bl.UserDataFileName != "" {
		if err := checkUserData(in.UserData); err != nil {
			return nil, fmt.Errorf("%sbuilder.userDataFileName %q: %w", p, bl.UserDataFileName, err)
		}
		h.Write(in.UserData)
		files = append(files, File{Path: nocloudSeedDir + "/user-data", Content: string(in.UserData), Mode: "0600"})
	} else {
		files = append(files, File{Path: nocloudSeedDir + "/user-data", Content: "#cloud-config\n{}\n", Mode: "0600"})
	}
	if bl != nil && bl.NetworkConfigFileName != "" {
		if err := checkNetworkConfig(in.NetworkConfig); err != nil {
			return nil, fmt.Errorf("%sbuilder.networkConfigFileName %q: %w", p, bl.NetworkConfigFileName, err)
		}
		h.Write([]byte{0})
		h.Write(in.NetworkConfig)
		files = append(files, File{Path: nocloudSeedDir + "/network-config", Content: string(in.NetworkConfig), Mode: "0600"})
	}
	id := name + "-" + hex.EncodeToString(h.Sum(nil))[:12]
	files = append(files, File{Path: nocloudSeedDir + "/meta-data", Mode: "0644",
		Content: fmt.Sprintf("instance-id: %s\nlocal-hostname: %s\n", id, host)})
	return files, nil
}

// checkUserData accepts what cloud-init takes as user-data: a
// #cloud-config YAML mapping (parsed here, so a typo fails the build, not
// the boot), a script (#!), or the other cloud-init formats.
func checkUserData(data []byte) error {
	if len(bytes.TrimSpace(data)) == 0 {
		return errors.New("empty")
	}
	first, _, _ := strings.Cut(string(data), "\n")
	first = strings.TrimSpace(first)
	switch {
	case first == "#cloud-config":
		var m map[string]any
		if err := yaml.Unmarshal(data, &m); err != nil {
			return fmt.Errorf("#cloud-config is not YAML: %w", err)
		}
		return nil
	case strings.HasPrefix(first, "#!"), strings.HasPrefix(first, "#include"), strings.HasPrefix(first, "#cloud-boothook"),
		strings.HasPrefix(first, "## template: jinja"), strings.HasPrefix(first, "Content-Type: multipart/"), strings.HasPrefix(first, "MIME-Version:"):
		return nil
	}
	return fmt.Errorf("first line %q: want #cloud-config, a #! script or another cloud-init user-data format", first)
}

// checkNetworkConfig accepts cloud-init's network config version 1 or 2
// (optionally under a network: key).
func checkNetworkConfig(data []byte) error {
	var m map[string]any
	if err := yaml.Unmarshal(data, &m); err != nil {
		return fmt.Errorf("not YAML: %w", err)
	}
	if n, ok := m["network"].(map[string]any); ok {
		m = n
	}
	switch v := m["version"].(type) {
	case int:
		if v == 1 || v == 2 {
			return nil
		}
	}
	return fmt.Errorf("version: want cloud-init network config version 1 or 2, got %v", m["version"])
}

// BuilderFiles is the document's builder section (zero when absent).
func (d AirshipDoc) BuilderFiles() AirshipBuilder {
	b, _ := d.body()
	if b.Builder == nil {
		return AirshipBuilder{}
	}
	return *b.Builder
}
