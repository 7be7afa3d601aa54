package imagebuild

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const declarativeYAML = `
# Airship-style: the Fuel keys, plus users and files
image_data:
  /:
    container: gzip
    format: ext4
    uri: http://10.0.2.2:8080/targetimages/node.img.gz
output: /srv/images
codename: bookworm
packages: [openssh-server, sudo, linux-image-cloud-amd64]
users:
  - name: ops
    groups: [sudo, adm]
    sudo: true
    ssh_authorized_keys:
      - ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExample ops@example
files:
  - path: /etc/motd
    content: |
      provisioned by imprint
  - path: /usr/local/bin/hello
    content: "#!/bin/sh\necho hello\n"
    mode: "0755"
`

func TestParseYAMLConfig(t *testing.T) {
	c, err := Parse([]byte(declarativeYAML))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.WithDefaults("http://m.invalid/debian", KernelCloud).Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	want := []User{{Name: "ops", Groups: []string{"sudo", "adm"}, Sudo: true, SSHAuthorizedKeys: []string{"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExample ops@example"}}}
	if diff := cmp.Diff(want, c.Users); diff != "" {
		t.Errorf("users (-want +got):\n%s", diff)
	}
	if len(c.Files) != 2 || c.Files[0].Content != "provisioned by imprint\n" || c.Files[1].Mode != "0755" {
		t.Errorf("files = %+v", c.Files)
	}
	p, err := BuildPlan(c.WithDefaults("http://m.invalid/debian", KernelCloud), Options{Chroot: "/w/r", TmpDir: "/w/t"})
	if err != nil {
		t.Fatal(err)
	}
	s := p.String()
	for _, w := range []string{
		"user ops: chroot useradd --create-home --shell /bin/bash --groups sudo,adm ops path=/w/r",
		"user ops authorized_keys: write path=/w/r/home/ops/.ssh/authorized_keys mode=600 data=\"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExample ops@example\\n\"",
		"user ops owns .ssh: chroot chown -R ops: /home/ops/.ssh",
		"user ops sudo: write path=/w/r/etc/sudoers.d/90-imprint-ops mode=440 data=\"ops ALL=(ALL) NOPASSWD:ALL\\n\"",
		"file /etc/motd (files[0]): write path=/w/r/etc/motd mode=644",
		"file /usr/local/bin/hello (files[1]): write path=/w/r/usr/local/bin/hello mode=755",
	} {
		if !strings.Contains(s, w) {
			t.Errorf("plan lacks %q", w)
		}
	}
	if i, j := indexOf(stepNames(p), "apt-get install"), indexOf(stepNames(p), "user ops"); i < 0 || j < i {
		t.Errorf("users are created before the packages")
	}
}

func TestValidateUsersFiles(t *testing.T) {
	c := Config{
		ImageData: map[string]Image{"/": {Container: "gzip", Format: "ext4", URI: "/srv/x.img.gz"}}, Output: "/srv",
		Users: []User{{Name: "root"}, {Name: "Bad"}, {Name: "ok", Groups: []string{"Wheel"}, Shell: "bash", HashedPassword: "plain", SSHAuthorizedKeys: []string{""}}, {Name: "ok"}},
		Files: []File{{Path: "etc/x"}, {Path: "/etc/../x"}, {Path: "/etc/y", Mode: "4755"}, {Path: "/etc/z", Mode: "rw"}},
	}
	want := []string{
		`users[0].name: "root" is not a user name (lower case, digits, '_', '-'; not root)`,
		`users[1].name: "Bad" is not a user name (lower case, digits, '_', '-'; not root)`,
		`users[2].groups[0]: "Wheel" is not a group name`,
		`users[2].shell: "bash" must be an absolute path`,
		`users[2].hashed_password: must be a crypt(3) hash such as $6$salt$hash`,
		`users[2].ssh_authorized_keys[0]: must be one non-empty line`,
		`users[3].name: "ok" is also users[2]`,
		`files[0].path: "etc/x" must be a clean absolute file path`,
		`files[1].path: "/etc/../x" must be a clean absolute file path`,
		`files[2].mode: "4755" is not an octal file mode such as 0644 (permission bits only)`,
		`files[3].mode: "rw" is not an octal file mode such as 0644 (permission bits only)`,
	}
	if diff := cmp.Diff(want, strings.Split(c.Validate().Error(), "\n")); diff != "" {
		t.Errorf("Validate (-want +got):\n%s", diff)
	}
	if _, err := Parse([]byte("image_data: [unclosed")); err == nil || !strings.Contains(err.Error(), "image build config: yaml:") {
		t.Errorf("Parse(bad yaml) = %v", err)
	}
}
