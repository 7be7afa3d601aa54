package imagebuild

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestMetadataYAML(t *testing.T) {
	m := Metadata{
		Images:   []MetadataImage{{Container: "gzip", ContainerMD5: "0f2a", ContainerName: "env_1-boot.img.gz", ContainerSize: 46431234, Format: "ext2", RawMD5: "9e107d9d372bb6826bd81d3542a419d6", RawSize: 60817408}},
		OS:       MetadataOS{Major: 12, Minor: 10, Name: "Debian"},
		Packages: []string{"acl", "anacron"},
		Repos:    MetadataRepos([]Repo{{Name: "debian", Type: "deb", URI: "http://m.invalid/debian/", Suite: "bookworm", Section: "main contrib"}, {Name: "mos", Type: "deb", URI: "http://10.20.0.2:8080/mos", Suite: "mos9.0", Section: "main", Priority: ptr(1050)}}),
	}
	got, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	want := `images:
  - container: gzip
    container_md5: 0f2a
    container_name: env_1-boot.img.gz
    container_size: 46431234
    format: ext2
    raw_md5: 9e107d9d372bb6826bd81d3542a419d6
    raw_name: null
    raw_size: 60817408
os:
  major: 12
  minor: 10
  name: Debian
packages:
  - acl
  - anacron
repos:
  - meta: null
    name: debian
    priority: null
    section: main contrib
    suite: bookworm
    type: deb
    uri: http://m.invalid/debian/
  - meta: null
    name: mos
    priority: 1050
    section: main
    suite: mos9.0
    type: deb
    uri: http://10.20.0.2:8080/mos
`
	if diff := cmp.Diff(want, string(got)); diff != "" {
		t.Errorf("Marshal (-want +got):\n%s", diff)
	}
}

func TestParseOS(t *testing.T) {
	for _, tt := range []struct {
		osr, dv string
		want    MetadataOS
	}{
		{"PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\nVERSION_ID=\"12\"\n", "12.10\n", MetadataOS{Major: 12, Minor: 10, Name: "Debian"}},
		{"ID=debian\nVERSION_CODENAME=trixie\n", "trixie/sid\n", MetadataOS{Name: "Debian"}},
		{"NAME=\"Ubuntu\"\nID=ubuntu\nVERSION_ID=\"14.04\"\n", "jessie/sid\n", MetadataOS{Major: 14, Minor: 4, Name: "Ubuntu"}},
	} {
		if diff := cmp.Diff(tt.want, ParseOS(tt.osr, tt.dv)); diff != "" {
			t.Errorf("ParseOS(%q, %q) (-want +got):\n%s", tt.osr, tt.dv, diff)
		}
	}
}

func TestParseDumpe2fs(t *testing.T) {
	out := "dumpe2fs 1.47.0 (5-Feb-2023)\nFilesystem volume name:   root\nBlock count:              131072\nReserved block count:     6553\nBlock size:               4096\n"
	n, s, err := ParseDumpe2fs(out)
	if err != nil || n != 131072 || s != 4096 {
		t.Errorf("ParseDumpe2fs = %d, %d, %v", n, s, err)
	}
	if _, _, err := ParseDumpe2fs("garbage"); err == nil {
		t.Error("ParseDumpe2fs(garbage) = nil error")
	}
}

func TestNewestKernel(t *testing.T) {
	ls := "/2/040755/0/0/./\n/2/040755/0/0/../\n/12/100644/0/0/vmlinuz-6.1.0-9-cloud-amd64/7000000/\n/13/100644/0/0/vmlinuz-6.1.0-10-cloud-amd64/7000000/\n/14/100644/0/0/initrd.img-6.1.0-10-cloud-amd64/30000000/\n/15/100644/0/0/config-6.1.0-10-cloud-amd64/1/\n"
	if got := newestKernel(ls); got != "6.1.0-10-cloud-amd64" {
		t.Errorf("newestKernel = %q", got)
	}
	if got := newestKernel("/2/040755/0/0/./\n"); got != "" {
		t.Errorf("newestKernel(no kernel) = %q", got)
	}
}
