package imagebuild

import (
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func ptr[T any](v T) *T { return &v }

func loadFixture(t *testing.T) Config {
	t.Helper()
	data, err := os.ReadFile("testdata/fuel_build_image.json")
	if err != nil {
		t.Fatal(err)
	}
	c, err := Parse(data)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return c
}

func TestParseFuelFixture(t *testing.T) {
	c := loadFixture(t)
	want := Config{
		ImageData: map[string]Image{
			"/boot": {Container: "gzip", Format: "ext2", URI: "http://10.20.0.2:8080/targetimages/env_1_debian_12_amd64-boot.img.gz"},
			"/":     {Container: "gzip", Format: "ext4", URI: "http://10.20.0.2:8080/targetimages/env_1_debian_12_amd64.img.gz"},
		},
		Output: "/var/www/nailgun/targetimages",
		Repos: []Repo{
			{Name: "debian", Type: "deb", URI: "http://10.20.0.2:8080/debian/", Suite: "bookworm", Section: "main contrib"},
			{Name: "mos", Type: "deb", URI: "http://10.20.0.2:8080/mitaka-9.0/ubuntu/x86_64", Suite: "mos9.0", Section: "main restricted", Priority: ptr(1050)},
		},
		Packages:           []string{"acl", "cloud-init", "grub-pc", "linux-image-cloud-amd64", "openssh-server"},
		Codename:           "bookworm",
		Proxies:            &Proxies{Protocols: map[string]string{"http": "http://10.20.0.3:3128"}, DirectRepoAddrList: []string{"10.20.0.2"}},
		HashedRootPassword: ptr("$6$saltsalt$hashhashhash"),
	}
	if diff := cmp.Diff(want, c); diff != "" {
		t.Errorf("Parse(fixture) mismatch (-want +got):\n%s", diff)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("Validate(fixture) = %v, want nil", err)
	}
	images, meta := OutputPaths(c)
	if diff := cmp.Diff(map[string]string{
		"/":     "/var/www/nailgun/targetimages/env_1_debian_12_amd64.img.gz",
		"/boot": "/var/www/nailgun/targetimages/env_1_debian_12_amd64-boot.img.gz",
	}, images); diff != "" {
		t.Errorf("OutputPaths images (-want +got):\n%s", diff)
	}
	if meta != "/var/www/nailgun/targetimages/env_1_debian_12_amd64.yaml" {
		t.Errorf("metadata path = %q", meta)
	}
}

func TestParseErrors(t *testing.T) {
	for _, tt := range []struct{ name, in, want string }{
		{"not json", `{`, "image build config: unexpected EOF"},
		{"priority string", `{"repos":[{"name":"a","priority":"high"}]}`, "repos.priority: want int, got JSON string"},
		{"packages object", `{"packages":{"a":1}}`, "packages: want []string, got JSON object"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.in))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Parse(%s) = %v, want error containing %q", tt.in, err, tt.want)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	base := func() Config { return loadFixture(t) }
	tests := []struct {
		name   string
		mutate func(*Config)
		want   []string // every line of the joined error
	}{
		{"fixture", func(*Config) {}, nil},
		{"everything wrong", func(c *Config) {
			c.ImageData = map[string]Image{
				"/boot": {Container: "bzip2", Format: "btrfs", URI: ""},
				"var/":  {Container: "gzip", Format: "ext4", URI: "http://h/x/"},
			}
			c.Output = "relative/dir"
			c.Repos = []Repo{
				{Name: "a b", Type: "rpm", URI: "ftp://x/y", Suite: "", Section: ""},
				{Name: "ok", Type: "deb", URI: "http://h/d", Suite: "s", Section: "main", Priority: ptr(99999)},
				{Name: "ok", Type: "deb", URI: "http://h/d", Suite: "flat/"},
			}
			c.Codename = "Bookworm!"
			c.Packages = []string{"good", "Bad Name", "pkg=1.2-3", "foo:amd64", "bar/bookworm-backports"}
			c.Proxies = &Proxies{Protocols: map[string]string{"gopher": "x"}, DirectRepoAddrList: []string{""}}
			c.HashedRootPassword = ptr("plain")
			c.RootPassword = ptr("two\nlines")
		}, []string{
			`image_data: must contain the root image "/"`,
			`image_data["/boot"].container: "bzip2" is not one of gzip, zstd, raw`,
			`image_data["/boot"].format: "btrfs" is not one of ext2, ext3, ext4, xfs`,
			`image_data["/boot"].uri: must be set (its file name names the image)`,
			`image_data["var/"]: mount point must be a clean absolute path`,
			`image_data["var/"].uri: "http://h/x/" has no file name`,
			`output: "relative/dir" must be an absolute path`,
			`repos[0].name: "a b" must be letters, digits, '.', '_' or '-' (it names files in the image)`,
			`repos[0].type: "rpm": only deb repositories can be installed from`,
			`repos[0].uri: "ftp://x/y" must be an http, https or file URL`,
			`repos[0].suite: "" is not a suite name`,
			`repos[0].section: must be set unless suite ends with "/" (a flat repository)`,
			`repos[1].priority: 99999 is out of apt's range`,
			`repos[2].name: "ok" is also the name of repos[1]`,
			`codename: "Bookworm!" is not a release code name`,
			`packages[1]: "Bad Name" is not a Debian package name`,
			`proxies.protocols["gopher"]: protocol must be http, https or ftp`,
			`proxies.protocols["gopher"]: "x" is not a proxy URL`,
			`proxies.direct_repo_addr_list[0]: "" is not a host name or address`,
			`hashed_root_password: must be a crypt(3) hash such as $6$salt$hash`,
			`root_password: must be one line`,
		}},
		{"empty", func(c *Config) { *c = Config{} }, []string{
			"image_data: must list at least the / image",
			"output: must be set (the directory the images are written to)",
		}},
		{"duplicate file names", func(c *Config) {
			c.ImageData["/var"] = Image{Container: "zstd", Format: "xfs", URI: "file:///srv/x/env_1_debian_12_amd64.img.gz"}
		}, []string{`image_data["/var"].uri: file name "env_1_debian_12_amd64.img.gz" is also the one of image_data["/"]`}},
		{"root image dot name", func(c *Config) {
			c.ImageData["/"] = Image{Container: "gzip", Format: "ext4", URI: "/srv/.hidden.img.gz"}
		}, []string{`image_data["/"].uri: file name ".hidden.img.gz" gives no metadata name (it starts with a dot)`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := base()
			tt.mutate(&c)
			err := c.Validate()
			var got []string
			if err != nil {
				got = strings.Split(err.Error(), "\n")
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Validate() problems (-want +got):\n%s", diff)
			}
		})
	}
}

func TestWithDefaults(t *testing.T) {
	c := Config{ImageData: map[string]Image{"/": {Container: "gzip", Format: "ext4", URI: "/srv/img/debian.img.gz"}}, Output: "/srv/img"}
	got := c.WithDefaults("http://mirror.invalid/debian", KernelGeneric)
	if got.Codename != "bookworm" {
		t.Errorf("codename = %q", got.Codename)
	}
	if diff := cmp.Diff([]Repo{{Name: "debian", Type: "deb", URI: "http://mirror.invalid/debian", Suite: "bookworm", Section: "main"}}, got.Repos); diff != "" {
		t.Errorf("repos (-want +got):\n%s", diff)
	}
	for _, p := range []string{"linux-image-amd64", "grub-pc", "cloud-init", "lvm2", "mdadm", "openssh-server", "initramfs-tools", "cloud-guest-utils", "locales"} {
		if !slices.Contains(got.Packages, p) {
			t.Errorf("default packages lack %s: %v", p, got.Packages)
		}
	}
	if slices.Contains(c.WithDefaults("", KernelCloud).Packages, "linux-image-amd64") || !slices.Contains(c.WithDefaults("", KernelCloud).Packages, "linux-image-cloud-amd64") {
		t.Errorf("cloud kernel default wrong")
	}
	if err := got.Validate(); err != nil {
		t.Errorf("Validate(defaults) = %v", err)
	}
	// given values are kept
	c.Codename, c.Packages = "trixie", []string{"bash"}
	got = c.WithDefaults("http://m.invalid/d", KernelCloud)
	if got.Codename != "trixie" || got.Repos[0].Suite != "trixie" || !cmp.Equal(got.Packages, []string{"bash"}) {
		t.Errorf("WithDefaults overrode given values: %+v", got)
	}
}
