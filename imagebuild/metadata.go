package imagebuild

import (
	"bufio"
	"bytes"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Metadata is the image metadata YAML fuel-agent writes beside the images
// (docs/fuel-agent.md §13): exactly these keys, in this (sorted) order.
type Metadata struct {
	Images   []MetadataImage `yaml:"images"`
	OS       MetadataOS      `yaml:"os"`
	Packages []string        `yaml:"packages"`
	Repos    []MetadataRepo  `yaml:"repos"`
}

// MetadataImage describes one compressed filesystem image.
type MetadataImage struct {
	Container     string  `yaml:"container"`
	ContainerMD5  string  `yaml:"container_md5"`
	ContainerName string  `yaml:"container_name"`
	ContainerSize int64   `yaml:"container_size"`
	Format        string  `yaml:"format"`
	RawMD5        string  `yaml:"raw_md5"`
	RawName       *string `yaml:"raw_name"`
	RawSize       int64   `yaml:"raw_size"`
}

// MetadataOS is the operating system of the image.
type MetadataOS struct {
	Major int    `yaml:"major"`
	Minor int    `yaml:"minor"`
	Name  string `yaml:"name"`
}

// MetadataRepo is one repository the image was built from.
type MetadataRepo struct {
	Meta     *string `yaml:"meta"`
	Name     string  `yaml:"name"`
	Priority *int    `yaml:"priority"`
	Section  string  `yaml:"section"`
	Suite    string  `yaml:"suite"`
	Type     string  `yaml:"type"`
	URI      string  `yaml:"uri"`
}

// Marshal renders m as YAML (two-space indentation).
func (m Metadata) Marshal() ([]byte, error) { return marshalYAML(m) }

// marshalYAML renders v as YAML with two-space indentation, as the
// metadata files imprint writes are.
func marshalYAML(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// MetadataRepos converts the config's repos.
func MetadataRepos(repos []Repo) []MetadataRepo {
	out := make([]MetadataRepo, 0, len(repos))
	for _, r := range repos {
		out = append(out, MetadataRepo{Name: r.Name, Priority: r.Priority, Section: r.Section, Suite: r.Suite, Type: r.Type, URI: r.URI})
	}
	return out
}

// ParseOS derives the metadata os from the image's /etc/os-release and
// (Debian) /etc/debian_version: name from ID ("Debian", "Ubuntu"), major
// and minor from VERSION_ID, the minor of Debian from debian_version
// ("12.10" → 12, 10; testing's "trixie/sid" → 0).
func ParseOS(osRelease, debianVersion string) MetadataOS {
	kv := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(osRelease))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), "=")
		if ok {
			kv[k] = strings.Trim(v, `"'`)
		}
	}
	var o MetadataOS
	id := kv["ID"]
	if id == "" {
		id = "linux"
	}
	o.Name = strings.ToUpper(id[:1]) + id[1:]
	maj, min, _ := strings.Cut(kv["VERSION_ID"], ".")
	o.Major, _ = strconv.Atoi(maj)
	o.Minor, _ = strconv.Atoi(strings.TrimLeft(min, "0"))
	if id == "debian" {
		dmaj, dmin, _ := strings.Cut(strings.TrimSpace(debianVersion), ".")
		if n, err := strconv.Atoi(dmaj); err == nil {
			o.Major = n
			o.Minor, _ = strconv.Atoi(dmin)
		}
	}
	return o
}
