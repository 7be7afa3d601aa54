package imagebuild

import (
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestHostAptSources(t *testing.T) {
	tests := []struct {
		root string
		want []AptSource
	}{
		{"testdata/hostroot-oneline", []AptSource{
			{URI: "http://mirror-a.invalid/debian-security", Suites: []string{"bookworm-security"}, Components: []string{"main"}, File: "/etc/apt/sources.list"},
			{URI: "http://mirror-a.invalid/debian", Suites: []string{"bookworm"}, Components: []string{"main", "contrib", "non-free-firmware"}, File: "/etc/apt/sources.list"},
		}},
		{"testdata/hostroot-deb822", []AptSource{
			{URI: "http://mirror-b.invalid/debian-security", Suites: []string{"bookworm-security"}, Components: []string{"main"}, File: "/etc/apt/sources.list.d/debian.sources"},
			{URI: "http://mirror-b.invalid/debian", Suites: []string{"bookworm", "bookworm-updates"}, Components: []string{"main"}, File: "/etc/apt/sources.list.d/debian.sources"},
			{URI: "http://mirror-c.invalid/debian", Suites: []string{"bookworm", "bookworm-updates"}, Components: []string{"main"}, File: "/etc/apt/sources.list.d/debian.sources"},
		}},
		{"testdata/hostroot-empty", nil},
	}
	for _, tt := range tests {
		t.Run(tt.root, func(t *testing.T) {
			got, err := HostAptSources(os.DirFS(tt.root))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("HostAptSources(%s) (-want +got):\n%s", tt.root, diff)
			}
		})
	}
}

func TestHostMirror(t *testing.T) {
	tests := []struct{ root, codename, want, wantErr string }{
		{"testdata/hostroot-oneline", "bookworm", "http://mirror-a.invalid/debian", ""},
		{"testdata/hostroot-deb822", "bookworm", "http://mirror-b.invalid/debian", ""},
		// no entry for trixie: the first plain-suite entry
		{"testdata/hostroot-deb822", "trixie", "http://mirror-b.invalid/debian", ""},
		{"testdata/hostroot-empty", "bookworm", "", "no Debian mirror"},
	}
	for _, tt := range tests {
		got, err := HostMirror(os.DirFS(tt.root), tt.codename)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("HostMirror(%s) err = %v, want %q", tt.root, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("HostMirror(%s, %s) = %q, %v, want %q", tt.root, tt.codename, got, err, tt.want)
		}
	}
}

func TestPrepareUsesHostMirror(t *testing.T) {
	c := Config{ImageData: map[string]Image{"/": {Container: "gzip", Format: "ext4", URI: "/srv/img/debian.img.gz"}}, Output: "/srv/img"}
	got, err := Prepare(c, BuildOptions{HostRoot: os.DirFS("testdata/hostroot-deb822")})
	if err != nil {
		t.Fatal(err)
	}
	if got.Repos[0].URI != "http://mirror-b.invalid/debian" {
		t.Errorf("repo = %+v", got.Repos[0])
	}
	if _, err := Prepare(c, BuildOptions{HostRoot: os.DirFS("testdata/hostroot-empty")}); err == nil || !strings.HasPrefix(err.Error(), "repos: none given") {
		t.Errorf("Prepare without any mirror = %v", err)
	}
}
