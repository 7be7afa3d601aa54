package imagebuild

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"sigs.k8s.io/yaml"
)

// Config is the Fuel image build JSON (fa_build_image --input_data,
// docs/fuel-agent.md §12).
type Config struct {
	// ImageData maps a mount point ("/", "/boot") to its image.
	ImageData map[string]Image `json:"image_data"`
	// Output is the directory the images and the metadata YAML go to.
	Output string `json:"output"`
	// Repos are the apt repositories; the first one is debootstrapped from.
	Repos []Repo `json:"repos"`
	// Packages are installed with apt-get; empty means DefaultPackages.
	Packages []string `json:"packages"`
	// Codename is the distribution release (bookworm when empty).
	Codename string `json:"codename"`
	// Proxies configure apt and debootstrap.
	Proxies *Proxies `json:"proxies,omitempty"`
	// RootPassword is set in clear text (hashed by chpasswd in the chroot).
	RootPassword *string `json:"root_password"`
	// HashedRootPassword is a crypt(3) hash; it wins over RootPassword.
	HashedRootPassword *string `json:"hashed_root_password"`

	// Users and Files are imprint's declarative additions (Airship-style):
	// accounts and files put into the image after the packages.
	Users []User `json:"users,omitempty"`
	Files []File `json:"files,omitempty"`
}

// User is an account created in the image.
type User struct {
	Name              string   `json:"name"`
	Groups            []string `json:"groups,omitempty"`
	Shell             string   `json:"shell,omitempty"` // default /bin/bash
	HashedPassword    string   `json:"hashed_password,omitempty"`
	SSHAuthorizedKeys []string `json:"ssh_authorized_keys,omitempty"`
	// Sudo gives passwordless sudo (/etc/sudoers.d/90-imprint-<name>).
	Sudo bool `json:"sudo,omitempty"`
}

// File is a file written into the image.
type File struct {
	Path    string `json:"path"`
	Content string `json:"content"`
	// Mode is octal ("0644", the default).
	Mode string `json:"mode,omitempty"`
}

// Image is one filesystem image of image_data.
type Image struct {
	// Container is the compression: gzip (Fuel's), zstd or raw.
	Container string `json:"container"`
	// Format is the filesystem: ext2, ext3, ext4 or xfs.
	Format string `json:"format"`
	// URI is where the image will be served; only its basename is used:
	// the image is written to <output>/<basename>.
	URI string `json:"uri"`
	// Size is the partition's size in the whole-disk image (imprint's
	// addition; 0: as large as the filesystem); an ext filesystem is grown
	// to it.
	Size int64 `json:"size,omitempty"`
}

// Repo is one apt repository.
type Repo struct {
	Name    string `json:"name"`
	Type    string `json:"type"`
	URI     string `json:"uri"`
	Suite   string `json:"suite"`
	Section string `json:"section"`
	// Priority becomes the Pin-Priority of the repository; nil: no pin.
	Priority *int `json:"priority"`
}

// Flat reports whether the repository is a flat one ("deb URI suite/"
// with no sections).
func (r Repo) Flat() bool { return r.Section == "" && strings.HasSuffix(r.Suite, "/") }

// Proxies are Nailgun's proxy settings.
type Proxies struct {
	// Protocols maps http, https or ftp to a proxy URL.
	Protocols map[string]string `json:"protocols"`
	// DirectRepoAddrList are hosts reached without the proxy.
	DirectRepoAddrList []string `json:"direct_repo_addr_list"`
}

// DefaultCodename is the release built when the config names none.
const DefaultCodename = "bookworm"

// Parse decodes the Fuel build JSON, or the same keys as YAML (a document
// not starting with '{'). Unknown keys are ignored, as fuel-agent does; use
// Validate for the content.
func Parse(data []byte) (Config, error) {
	var c Config
	if t := bytes.TrimSpace(data); len(t) > 0 && t[0] != '{' {
		j, err := yaml.YAMLToJSON(data)
		if err != nil {
			return Config{}, fmt.Errorf("image build config: yaml: %w", err)
		}
		data = j
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&c); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return Config{}, fmt.Errorf("image build config: %s: want %s, got JSON %s", te.Field, te.Type, te.Value)
		}
		return Config{}, fmt.Errorf("image build config: %w", err)
	}
	return c, nil
}

var (
	repoNameRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)
	codenameRe = regexp.MustCompile(`^[a-z][a-z0-9-]*$`)
	// a Debian package name, optionally with =version, /release or :arch.
	packageRe = regexp.MustCompile(`^[a-z0-9][a-z0-9+.-]*(:[a-z0-9-]+)?([=/][A-Za-z0-9+.~:_-]+)?$`)
	userRe    = regexp.MustCompile(`^[a-z_][a-z0-9_-]{0,31}$`)
	suiteRe   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._/-]*$`)
	sectionRe = regexp.MustCompile(`^[A-Za-z0-9._/-]+( [A-Za-z0-9._/-]+)*$`)
)

// Formats lists the filesystems an image may have.
var Formats = []string{"ext2", "ext3", "ext4", "xfs"}

// Containers lists the compressions an image may have.
var Containers = []string{"gzip", "zstd", "raw"}

// Validate returns every problem of the config, each prefixed with its
// field path, joined; nil if there is none. It checks the config as given
// (call WithDefaults first to validate what will be built).
func (c Config) Validate() error {
	var errs []error
	add := func(field, format string, a ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, a...)))
	}
	if len(c.ImageData) == 0 {
		add("image_data", "must list at least the / image")
	} else if _, ok := c.ImageData["/"]; !ok {
		add("image_data", `must contain the root image "/"`)
	}
	names := map[string]string{}
	for _, mp := range slices.Sorted(maps.Keys(c.ImageData)) {
		img := c.ImageData[mp]
		f := fmt.Sprintf("image_data[%q]", mp)
		if !strings.HasPrefix(mp, "/") || path.Clean(mp) != mp {
			add(f, "mount point must be a clean absolute path")
		}
		if !slices.Contains(Containers, img.Container) {
			add(f+".container", "%q is not one of %s", img.Container, strings.Join(Containers, ", "))
		}
		if !slices.Contains(Formats, img.Format) {
			add(f+".format", "%q is not one of %s", img.Format, strings.Join(Formats, ", "))
		}
		if img.Size < 0 {
			add(f+".size", "%d is negative", img.Size)
		}
		base, err := imageBase(img.URI)
		if err != nil {
			add(f+".uri", "%v", err)
			continue
		}
		if other, dup := names[base]; dup {
			add(f+".uri", "file name %q is also the one of image_data[%q]", base, other)
		}
		names[base] = mp
		if mp == "/" && metadataStem(base) == "" {
			add(f+".uri", "file name %q gives no metadata name (it starts with a dot)", base)
		}
	}
	if c.Output == "" {
		add("output", "must be set (the directory the images are written to)")
	} else if !strings.HasPrefix(c.Output, "/") {
		add("output", "%q must be an absolute path", c.Output)
	}
	seen := map[string]int{}
	for i, r := range c.Repos {
		f := fmt.Sprintf("repos[%d]", i)
		if !repoNameRe.MatchString(r.Name) {
			add(f+".name", "%q must be letters, digits, '.', '_' or '-' (it names files in the image)", r.Name)
		} else if j, dup := seen[r.Name]; dup {
			add(f+".name", "%q is also the name of repos[%d]", r.Name, j)
		} else {
			seen[r.Name] = i
		}
		if r.Type != "deb" {
			add(f+".type", "%q: only deb repositories can be installed from", r.Type)
		}
		if u, err := url.Parse(r.URI); err != nil || (u.Scheme != "http" && u.Scheme != "https" && u.Scheme != "file") || (u.Scheme != "file" && u.Host == "") {
			add(f+".uri", "%q must be an http, https or file URL", r.URI)
		}
		if !suiteRe.MatchString(r.Suite) {
			add(f+".suite", "%q is not a suite name", r.Suite)
		}
		if r.Section == "" && !strings.HasSuffix(r.Suite, "/") {
			add(f+".section", `must be set unless suite ends with "/" (a flat repository)`)
		} else if r.Section != "" && !sectionRe.MatchString(r.Section) {
			add(f+".section", "%q must be space-separated component names", r.Section)
		}
		if r.Priority != nil && (*r.Priority < -32768 || *r.Priority > 32767) {
			add(f+".priority", "%d is out of apt's range", *r.Priority)
		}
	}
	if c.Codename != "" && !codenameRe.MatchString(c.Codename) {
		add("codename", "%q is not a release code name", c.Codename)
	}
	for i, p := range c.Packages {
		if !packageRe.MatchString(p) {
			add(fmt.Sprintf("packages[%d]", i), "%q is not a Debian package name", p)
		}
	}
	if c.Proxies != nil {
		for _, proto := range slices.Sorted(maps.Keys(c.Proxies.Protocols)) {
			f := fmt.Sprintf("proxies.protocols[%q]", proto)
			if proto != "http" && proto != "https" && proto != "ftp" {
				add(f, "protocol must be http, https or ftp")
			}
			if u, err := url.Parse(c.Proxies.Protocols[proto]); err != nil || u.Scheme == "" || u.Host == "" {
				add(f, "%q is not a proxy URL", c.Proxies.Protocols[proto])
			}
		}
		for i, a := range c.Proxies.DirectRepoAddrList {
			if a == "" || strings.ContainsAny(a, " \t\n\"/") {
				add(fmt.Sprintf("proxies.direct_repo_addr_list[%d]", i), "%q is not a host name or address", a)
			}
		}
	}
	if h := c.HashedRootPassword; h != nil && *h != "" && (!strings.HasPrefix(*h, "$") || strings.ContainsAny(*h, ": \n")) {
		add("hashed_root_password", "must be a crypt(3) hash such as $6$salt$hash")
	}
	if p := c.RootPassword; p != nil && strings.ContainsAny(*p, "\n") {
		add("root_password", "must be one line")
	}
	users := map[string]int{}
	for i, u := range c.Users {
		f := fmt.Sprintf("users[%d]", i)
		if !userRe.MatchString(u.Name) || u.Name == "root" {
			add(f+".name", "%q is not a user name (lower case, digits, '_', '-'; not root)", u.Name)
		} else if j, dup := users[u.Name]; dup {
			add(f+".name", "%q is also users[%d]", u.Name, j)
		} else {
			users[u.Name] = i
		}
		for j, g := range u.Groups {
			if !userRe.MatchString(g) {
				add(fmt.Sprintf("%s.groups[%d]", f, j), "%q is not a group name", g)
			}
		}
		if u.Shell != "" && !strings.HasPrefix(u.Shell, "/") {
			add(f+".shell", "%q must be an absolute path", u.Shell)
		}
		if u.HashedPassword != "" && (!strings.HasPrefix(u.HashedPassword, "$") || strings.ContainsAny(u.HashedPassword, ": \n")) {
			add(f+".hashed_password", "must be a crypt(3) hash such as $6$salt$hash")
		}
		for j, k := range u.SSHAuthorizedKeys {
			if k == "" || strings.Contains(k, "\n") {
				add(fmt.Sprintf("%s.ssh_authorized_keys[%d]", f, j), "must be one non-empty line")
			}
		}
	}
	for i, fl := range c.Files {
		f := fmt.Sprintf("files[%d]", i)
		if !strings.HasPrefix(fl.Path, "/") || path.Clean(fl.Path) != fl.Path || fl.Path == "/" {
			add(f+".path", "%q must be a clean absolute file path", fl.Path)
		}
		if _, err := fileMode(fl.Mode); err != nil {
			add(f+".mode", "%v", err)
		}
	}
	return errors.Join(errs...)
}

// WithDefaults returns the config with what Fuel leaves implicit filled in:
// the codename (bookworm), the repository (mirror, the suite of the
// codename, main) and the packages (DefaultPackages for kernel).
func (c Config) WithDefaults(mirror, kernel string) Config {
	if c.Codename == "" {
		c.Codename = DefaultCodename
	}
	if len(c.Repos) == 0 && mirror != "" {
		c.Repos = []Repo{{Name: "debian", Type: "deb", URI: mirror, Suite: c.Codename, Section: "main"}}
	}
	if len(c.Packages) == 0 {
		c.Packages = DefaultPackages(kernel)
	}
	return c
}

// Kernel flavours of DefaultPackages.
const (
	KernelCloud   = "cloud"   // linux-image-cloud-amd64: virtio and cloud drivers, small
	KernelGeneric = "generic" // linux-image-amd64: every driver, for real hardware
)

// DefaultPackages is what makes an image boot in imprint's flow: a kernel
// with an initramfs that assembles md and activates LVM, grub for the
// agent's grub-install in either boot mode, cloud-init (ConfigDrive and
// NoCloud, growpart to fill the partition), ssh, and locales (en_US.UTF-8
// generated: the locale the configdrive sets).
//
// One image boots BIOS and UEFI: grub-pc (BIOS, with its postinst that
// keeps the MBR's grub current) plus grub-efi-amd64-bin (the x86_64-efi
// modules grub-install needs for an ESP), grub-efi-amd64-signed and
// shim-signed (the distribution's Secure Boot chain, signed by Microsoft's
// UEFI CA through Debian's shim; Debian's kernels are signed too), efibootmgr
// and mokutil (shim-signed pulls it in) for the operator. Not the
// grub-efi-amd64 package: it conflicts with grub-pc (both own the
// "which platform does grub-install serve" role), and the agent installs
// into the ESPs itself. The cost is that a grub package upgrade in the
// installed OS refreshes the MBR's grub but not the ESPs' copies; /boot's
// grub.cfg, which every copy reads, is updated either way.
func DefaultPackages(kernel string) []string {
	k := "linux-image-cloud-amd64"
	if kernel == KernelGeneric {
		k = "linux-image-amd64"
	}
	return []string{
		"initramfs-tools", k, "grub-pc", "grub-efi-amd64-bin", "grub-efi-amd64-signed", "shim-signed", "efibootmgr", "mokutil",
		"lvm2", "mdadm",
		"cloud-init", "cloud-guest-utils", "openssh-server", "sudo", "locales",
		"systemd-sysv", "dbus", "udev", "kmod", "ifupdown", "isc-dhcp-client", "iproute2", "netbase",
		"e2fsprogs", "xfsprogs", "gdisk", "parted", "ca-certificates", "less", "procps",
	}
}

// imageBase is the file name an image's uri gives (fuel-agent:
// os.path.basename(urlparse(uri).path)).
func imageBase(uri string) (string, error) {
	if uri == "" {
		return "", errors.New("must be set (its file name names the image)")
	}
	u, err := url.Parse(uri)
	if err != nil {
		return "", fmt.Errorf("%q: %v", uri, err)
	}
	p := u.Path
	if u.Scheme == "" && u.Opaque == "" {
		p = uri
	}
	b := path.Base(p)
	if p == "" || strings.HasSuffix(p, "/") || b == "." || b == "/" || b == ".." {
		return "", fmt.Errorf("%q has no file name", uri)
	}
	return b, nil
}

// metadataStem is fuel-agent's metadata name rule: the file name up to its
// first dot (env_1.img.gz → env_1).
func metadataStem(base string) string {
	stem, _, _ := strings.Cut(base, ".")
	return stem
}

// fileMode parses an octal mode ("0644", "755"; empty: 0644).
func fileMode(s string) (uint32, error) {
	if s == "" {
		return 0o644, nil
	}
	m, err := strconv.ParseUint(s, 8, 32)
	if err != nil || m > 0o777 {
		return 0, fmt.Errorf("%q is not an octal file mode such as 0644 (permission bits only)", s)
	}
	return uint32(m), nil
}
