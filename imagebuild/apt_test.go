package imagebuild

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestSourcesList(t *testing.T) {
	for _, tt := range []struct {
		r    Repo
		want string
	}{
		{Repo{Name: "debian", Type: "deb", URI: "http://m.invalid/debian", Suite: "bookworm", Section: "main contrib"}, "deb http://m.invalid/debian bookworm main contrib\n"},
		{Repo{Name: "flat", Type: "deb", URI: "http://10.20.0.2:8080/repo", Suite: "./"}, "deb http://10.20.0.2:8080/repo ./\n"},
	} {
		if got := SourcesList(tt.r); got != tt.want {
			t.Errorf("SourcesList(%+v) = %q, want %q", tt.r, got, tt.want)
		}
	}
	if got := SourcesListPath(Repo{Name: "mos"}); got != "etc/apt/sources.list.d/fuel-image-mos.list" {
		t.Errorf("SourcesListPath = %q", got)
	}
	if got := PrefsPath(Repo{Name: "mos"}); got != "etc/apt/preferences.d/fuel-image-mos.pref" {
		t.Errorf("PrefsPath = %q", got)
	}
}

const inRelease = `-----BEGIN PGP SIGNED MESSAGE-----
Hash: SHA256

Origin: Debian
Label: Debian
Suite: stable
Version: 12.10
Codename: bookworm
Changelogs: https://metadata.ftp-master.debian.org/changelogs/@CHANGEPATH@_changelog
Date: Sat, 15 Mar 2025 09:06:26 UTC
Architectures: all amd64 arm64
Components: main contrib non-free-firmware non-free
Description: Debian 12.10 Released 15 March 2025
MD5Sum:
 0ed6d4c8891eb86358b94bb35d9e4da4  1484322 contrib/Contents-all
 Origin: Not-A-Field
-----BEGIN PGP SIGNATURE-----

iQIzBAEBCAAdFiEE
-----END PGP SIGNATURE-----
`

func TestParseRelease(t *testing.T) {
	want := ReleaseInfo{Suite: "stable", Codename: "bookworm", Version: "12.10", Origin: "Debian", Label: "Debian"}
	if diff := cmp.Diff(want, ParseRelease(inRelease)); diff != "" {
		t.Errorf("ParseRelease(InRelease) (-want +got):\n%s", diff)
	}
	plain := "Origin: Mirantis\nLabel: mos9.0\nSuite: mos9.0\nCodename: mos9.0\n\nignored: yes\n"
	if diff := cmp.Diff(ReleaseInfo{Suite: "mos9.0", Codename: "mos9.0", Origin: "Mirantis", Label: "mos9.0"}, ParseRelease(plain)); diff != "" {
		t.Errorf("ParseRelease(Release) (-want +got):\n%s", diff)
	}
}

func TestPreferences(t *testing.T) {
	r := Repo{Name: "mos", Type: "deb", URI: "http://10.20.0.2:8080/mos", Suite: "mos9.0", Section: "main", Priority: ptr(1050)}
	tests := []struct {
		name string
		r    Repo
		ri   ReleaseInfo
		want string
	}{
		{"no priority", Repo{Name: "x", Suite: "s", Section: "main"}, ReleaseInfo{Suite: "s"}, ""},
		{"release fields", r, ReleaseInfo{Suite: "stable", Codename: "bookworm", Version: "12.10", Origin: "Debian", Label: "Debian"},
			"Package: *\nPin: release a=stable,n=bookworm,v=12.10,o=Debian,l=Debian\nPin-Priority: 1050\n"},
		{"some fields", r, ReleaseInfo{Suite: "mos9.0", Origin: "Mirantis"}, "Package: *\nPin: release a=mos9.0,o=Mirantis\nPin-Priority: 1050\n"},
		{"no release file", r, ReleaseInfo{}, "Package: *\nPin: release n=mos9.0\nPin-Priority: 1050\n"},
		{"flat, no release file", Repo{Name: "f", URI: "http://10.20.0.2:8080/f", Suite: "./", Priority: ptr(-10)}, ReleaseInfo{},
			"Package: *\nPin: origin \"10.20.0.2\"\nPin-Priority: -10\n"},
	}
	for _, tt := range tests {
		if got := Preferences(tt.r, tt.ri); got != tt.want {
			t.Errorf("%s: Preferences = %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestReleaseListNames(t *testing.T) {
	for _, tt := range []struct {
		r    Repo
		want []string
	}{
		{Repo{URI: "http://m.invalid/debian/", Suite: "bookworm", Section: "main"},
			[]string{"m.invalid_debian_dists_bookworm_InRelease", "m.invalid_debian_dists_bookworm_Release"}},
		{Repo{URI: "http://user:pw@10.20.0.2:8080/mitaka-9.0/ubuntu/x86_64", Suite: "mos9.0", Section: "main"},
			[]string{"10.20.0.2:8080_mitaka-9.0_ubuntu_x86%5f64_dists_mos9.0_InRelease", "10.20.0.2:8080_mitaka-9.0_ubuntu_x86%5f64_dists_mos9.0_Release"}},
		{Repo{URI: "http://h.invalid/flat", Suite: "./"},
			[]string{"h.invalid_flat_._InRelease", "h.invalid_flat_._Release"}},
	} {
		if diff := cmp.Diff(tt.want, ReleaseListNames(tt.r)); diff != "" {
			t.Errorf("ReleaseListNames(%s) (-want +got):\n%s", tt.r.URI, diff)
		}
	}
}

func TestAptConfAndProxyEnv(t *testing.T) {
	p := &Proxies{Protocols: map[string]string{"http": "http://10.20.0.3:3128", "https": "http://10.20.0.3:3129"}, DirectRepoAddrList: []string{"10.20.0.2", "10.20.0.1"}}
	want := map[string]string{
		"etc/apt/apt.conf.d/install_rule":                 "APT::Install-Recommends \"false\";\nAPT::Install-Suggests \"false\";\n",
		"etc/apt/apt.conf.d/pipeline_depth":               "Acquire::http::Pipeline-Depth 0;\n",
		"etc/apt/apt.conf.d/allow_unsigned_packages":      "APT::Get::AllowUnauthenticated 1;\n",
		"etc/apt/apt.conf.d/01fuel_agent-use-proxy-http":  "Acquire::http::proxy \"http://10.20.0.3:3128\";\nAcquire::http::proxy::10.20.0.2 \"DIRECT\";\nAcquire::http::proxy::10.20.0.1 \"DIRECT\";\n",
		"etc/apt/apt.conf.d/01fuel_agent-use-proxy-https": "Acquire::https::proxy \"http://10.20.0.3:3129\";\nAcquire::https::proxy::10.20.0.2 \"DIRECT\";\nAcquire::https::proxy::10.20.0.1 \"DIRECT\";\n",
	}
	if diff := cmp.Diff(want, AptConfFiles(p, true)); diff != "" {
		t.Errorf("AptConfFiles (-want +got):\n%s", diff)
	}
	if got := AptConfFiles(nil, false); len(got) != 2 {
		t.Errorf("AptConfFiles(nil, false) = %v", got)
	}
	if diff := cmp.Diff([]string{"http_proxy=http://10.20.0.3:3128", "https_proxy=http://10.20.0.3:3129", "no_proxy=10.20.0.1,10.20.0.2"}, ProxyEnv(p)); diff != "" {
		t.Errorf("ProxyEnv (-want +got):\n%s", diff)
	}
}
