package configdrive

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/imprint-dev/imprint/internal/testenv"
)

// probeResult is what testdata/cloudinit_probe.py prints.
type probeResult struct {
	Detected      []string `json:"detected"`
	InstanceID    string   `json:"instance_id"`
	Hostname      string   `json:"hostname"`
	LocalHostname string   `json:"local_hostname"`
	PublicKeys    []string `json:"public_keys"`
	Parts         []struct {
		Type, Filename string
	} `json:"parts"`
	SchemaValid bool `json:"schema_valid"`
	CloudConfig struct {
		Hostname string `json:"hostname"`
		FQDN     string `json:"fqdn"`
		Users    []struct {
			Name         string   `json:"name"`
			HashedPasswd string   `json:"hashed_passwd"`
			Sudo         string   `json:"sudo"`
			Keys         []string `json:"ssh_authorized_keys"`
		} `json:"users"`
		PhoneHome struct {
			URL string `json:"url"`
		} `json:"phone_home"`
	} `json:"cloud_config"`
	ENI             string                    `json:"eni"`
	Netplan         string                    `json:"netplan"`
	NormalizedUsers map[string]map[string]any `json:"normalized_users"`
	DefaultUser     *string                   `json:"default_user"`
	WrittenFiles    map[string]struct {
		Content, Mode string
	} `json:"written_files"`
}

// cloudInit returns the Debian python3 with cloud-init importable, or skips.
func cloudInit(t *testing.T) string {
	t.Helper()
	py := "/usr/bin/python3"
	if err := exec.Command(py, "-c", "import cloudinit.sources.DataSourceNoCloud").Run(); err != nil {
		testenv.Skipf(t, "cloud-init (Debian package cloud-init) not installed")
	}
	return py
}

// extract copies an image's files into dir with independent tools: mtools
// for 512-byte FAT, xorriso for ISO9660 (the host kernel cannot mount
// either). mtools cannot read 4 KiB-sector FAT, so go-diskfs reads those
// (fsck.fat has checked the structure).
func extract(t *testing.T, img string, f Format, sector int, dir string) {
	t.Helper()
	var cmd *exec.Cmd
	switch {
	case f.ISO():
		cmd = exec.Command("xorriso", "-osirrox", "on", "-indev", img, "-extract", "/", dir)
	case sector == SectorSize512:
		cmd = exec.Command("mcopy", "-s", "-n", "-i", img, "::/*", dir+"/")
		cmd.Env = append(os.Environ(), "MTOOLS_SKIP_CHECK=1")
	default:
		files, _ := readImage(t, img, f, sector)
		for p, data := range files {
			if err := os.MkdirAll(filepath.Join(dir, filepath.Dir(p)), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, p), data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return
	}
	testenv.RequireTool(t, cmd.Args[0])
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(cmd.Args, " "), err, out)
	}
}

// TestCloudInitReadsImages runs the installed cloud-init on every fixture in
// every format: device detection on the image, the NoCloud / ConfigDrive
// datasource on its extracted files, the user-data processor, strict schema
// validation of the cloud-config, the network parser and eni/netplan
// renderers; then compares with what the document asked for.
func TestCloudInitReadsImages(t *testing.T) {
	py := cloudInit(t)
	probe, _ := filepath.Abs("testdata/cloudinit_probe.py")
	type layout struct {
		f      Format
		sector int
	}
	layouts := []layout{{NoCloudVFAT, 512}, {NoCloudISO, 512}, {Config2VFAT, 512}, {Config2ISO, 512}, {NoCloudVFAT, 4096}, {Config2VFAT, 4096}}
	for _, fx := range fixtures {
		doc := loadFixture(t, fx)
		c, err := Build(doc, Options{PhoneHomeURL: "http://10.0.2.2:8080/phone-home"})
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range layouts {
			t.Run(fmt.Sprintf("%s/%s/%d", strings.TrimSuffix(fx, ".json"), l.f, l.sector), func(t *testing.T) {
				tmp := t.TempDir()
				img := filepath.Join(tmp, "seed.img")
				if _, err := WriteFile(context.Background(), c, l.f, img, 20<<20, ImageOptions{SectorSize: l.sector}); err != nil {
					t.Fatal(err)
				}
				seed, work := filepath.Join(tmp, "seed"), filepath.Join(tmp, "work")
				os.MkdirAll(seed, 0o755)
				os.MkdirAll(work, 0o755)
				extract(t, img, l.f, l.sector, seed)
				kind := "configdrive"
				if l.f.NoCloud() {
					kind = "nocloud"
				}
				cmd := exec.Command(py, probe, kind, seed, img, work)
				out, err := cmd.Output()
				if err != nil {
					var stderr []byte
					if ee, ok := err.(*exec.ExitError); ok {
						stderr = ee.Stderr
					}
					t.Fatalf("cloud-init probe: %v\n%s\n%s", err, out, stderr)
				}
				var r probeResult
				if err := json.Unmarshal(out, &r); err != nil {
					t.Fatalf("probe output: %v\n%s", err, out)
				}
				if d := cmp.Diff([]string{img}, r.Detected); d != "" {
					t.Errorf("cloud-init's device search (blkid) on the image (-want +got):\n%s", d)
				}
				short, _, _ := strings.Cut(doc.Hostname, ".")
				if r.InstanceID != c.InstanceID || r.Hostname != short || r.LocalHostname != doc.Hostname {
					t.Errorf("datasource: instance-id %q hostname %q local-hostname %q; want %q %q %q",
						r.InstanceID, r.Hostname, r.LocalHostname, c.InstanceID, short, doc.Hostname)
				}
				if d := cmp.Diff(wantRootKeys(doc.KsMeta.AuthorizedKeys, doc.KsMeta.AuthKey), r.PublicKeys); d != "" {
					t.Errorf("public keys (-want +got):\n%s", d)
				}
				var parts []string
				for _, p := range r.Parts {
					parts = append(parts, p.Type)
				}
				if d := cmp.Diff([]string{"text/cloud-boothook", "text/cloud-config"}, parts); d != "" {
					t.Errorf("user-data parts as cloud-init splits them (-want +got):\n%s", d)
				}
				if !r.SchemaValid {
					t.Error("cloud-config not schema-validated")
				}
				cc := r.CloudConfig
				if cc.Hostname != short || cc.FQDN != doc.Hostname || cc.PhoneHome.URL != "http://10.0.2.2:8080/phone-home" {
					t.Errorf("cloud-config hostname %q fqdn %q phone_home %q", cc.Hostname, cc.FQDN, cc.PhoneHome.URL)
				}
				if len(cc.Users) != len(doc.KsMeta.UserAccounts) {
					t.Fatalf("cloud-init sees %d users, want %d", len(cc.Users), len(doc.KsMeta.UserAccounts))
				}
				for i, ua := range doc.KsMeta.UserAccounts {
					u := cc.Users[i]
					if u.Name != ua.Name || !VerifyPassword(ua.Password, u.HashedPasswd) {
						t.Errorf("user %d: %s with hash %q; want %s with a hash of its password", i, u.Name, u.HashedPasswd, ua.Name)
					}
					if len(ua.Sudo) == 1 && u.Sudo != ua.Sudo[0] {
						t.Errorf("user %s sudo %q, want %q", u.Name, u.Sudo, ua.Sudo[0])
					}
					for _, k := range ua.SSHKeys {
						if !contains(u.Keys, strings.Trim(k, `"`)) {
							t.Errorf("user %s: key %q missing", u.Name, k)
						}
					}
				}
				// cc_users_groups: exactly the document's accounts, no distro
				// default user (so root gets the metadata keys, disable_root off).
				if r.DefaultUser != nil || len(r.NormalizedUsers) != len(doc.KsMeta.UserAccounts) {
					t.Errorf("cloud-init users: default %v, %d users; want none and %d", r.DefaultUser, len(r.NormalizedUsers), len(doc.KsMeta.UserAccounts))
				}
				for _, ua := range doc.KsMeta.UserAccounts {
					if u, ok := r.NormalizedUsers[ua.Name]; !ok || u["lock_passwd"] != false {
						t.Errorf("cloud-init user %s: %v", ua.Name, u)
					}
				}
				// cc_write_files, rooted in a temp dir.
				if f := r.WrittenFiles["/etc/nailgun_systemtype"]; f.Content != "target" || f.Mode != "0o644" {
					t.Errorf("/etc/nailgun_systemtype written as %+v", f)
				}
				if f, ok := r.WrittenFiles["/etc/mcollective/server.cfg"]; ok != (doc.KsMeta.McoEnable == 1) || (ok && (f.Mode != "0o640" ||
					!strings.Contains(f.Content, "plugin.rabbitmq.pool.1.host = "+doc.KsMeta.McoHost))) {
					t.Errorf("mcollective server.cfg written as %+v (present %v)", f, ok)
				}
				if f := r.WrittenFiles["/etc/udev/rules.d/70-persistent-net.rules"]; strings.Count(f.Content, "NAME=") != len(doc.Interfaces) {
					t.Errorf("udev rules written as %q", f.Content)
				}
				admin := doc.Interfaces["eth0"]
				ones, _ := net.IPMask(net.ParseIP(admin.Netmask).To4()).Size()
				for _, want := range []string{"auto eth0", "iface eth0 inet static", fmt.Sprintf("address %s/%d", admin.IPAddress, ones),
					"gateway " + doc.KsMeta.Gw, "dns-nameservers 10.20.0.2", "dns-search domain.tld"} {
					if !strings.Contains(r.ENI, want) {
						t.Errorf("eni rendering lacks %q:\n%s", want, r.ENI)
					}
				}
				if !strings.Contains(r.Netplan, "macaddress: "+admin.MACAddress) || !strings.Contains(r.Netplan, fmt.Sprintf("- %s/%d", admin.IPAddress, ones)) {
					t.Errorf("netplan rendering:\n%s", r.Netplan)
				}
				if strings.Contains(r.Netplan, "to: default") {
					t.Errorf("netplan rendering uses 'to: default':\n%s", r.Netplan)
				}
				// The cloud-init CLI agrees on the schema.
				if out, err := exec.Command("cloud-init", "schema", "--config-file", filepath.Join(work, "cloud-config.yaml")).CombinedOutput(); err != nil ||
					!strings.Contains(string(out), "Valid cloud-config") {
					t.Errorf("cloud-init schema --config-file: %v\n%s", err, out)
				}
			})
		}
	}
}

// TestCloudInitNetConvert runs `cloud-init devel net-convert` on both
// network formats for the Debian (ifupdown/eni) renderer.
func TestCloudInitNetConvert(t *testing.T) {
	cloudInit(t)
	c, err := Build(loadFixture(t, fixtures[0]), Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		kind string
		data []byte
	}{{"yaml", c.NetworkConfig}, {"network_data.json", c.NetworkDataJSON}} {
		t.Run(tt.kind, func(t *testing.T) {
			eni := netConvertENI(t, tt.kind, tt.data)
			for _, want := range []string{"iface eth0 inet static", "address 10.20.0.3/24", "gateway 10.20.0.2"} {
				if !strings.Contains(string(eni), want) {
					t.Errorf("net-convert -k %s lacks %q:\n%s", tt.kind, want, eni)
				}
			}
		})
	}
}

// netConvertENI renders network config data of kind (net-convert's -k:
// yaml or network_data.json) for Debian's ifupdown with `cloud-init devel
// net-convert`, and returns the interfaces file it wrote.
func netConvertENI(t *testing.T, kind string, data []byte) string {
	t.Helper()
	dir := t.TempDir()
	in := filepath.Join(dir, "net")
	if err := os.WriteFile(in, data, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("cloud-init", "devel", "net-convert", "-p", in, "-k", kind, "-d", filepath.Join(dir, "out"), "-D", "debian", "-O", "eni").CombinedOutput()
	if err != nil {
		t.Fatalf("cloud-init devel net-convert: %v\n%s\n%s", err, out, data)
	}
	eni, err := os.ReadFile(filepath.Join(dir, "out", "etc/network/interfaces.d/50-cloud-init"))
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	return string(eni)
}
