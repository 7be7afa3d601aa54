package configdrive

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"github.com/imprint-dev/imprint/provision"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.yaml.in/yaml/v3"
)

var update = flag.Bool("update", false, "rewrite testdata/golden")

// TestGolden pins the rendered files for every fixture (salts from a fixed
// reader so the hashes are stable). go test ./configdrive -run Golden -update
func TestGolden(t *testing.T) {
	for _, fx := range fixtures {
		t.Run(fx, func(t *testing.T) {
			c, err := Build(loadFixture(t, fx), Options{Rand: &fixedRand{}, PhoneHomeURL: "http://10.0.2.2:8080/phone-home"})
			if err != nil {
				t.Fatal(err)
			}
			dir := filepath.Join("testdata", "golden", strings.TrimSuffix(fx, ".json"))
			files := map[string][]byte{
				"meta-data": c.MetaData, "network-config": c.NetworkConfig, "user-data": c.UserData,
				"meta_data.json": c.MetaDataJSON, "network_data.json": c.NetworkDataJSON,
			}
			for name, got := range files {
				p := filepath.Join(dir, name)
				if *update {
					os.MkdirAll(dir, 0o755)
					if err := os.WriteFile(p, got, 0o644); err != nil {
						t.Fatal(err)
					}
					continue
				}
				want, err := os.ReadFile(p)
				if err != nil {
					t.Fatalf("%v (run with -update)", err)
				}
				if d := cmp.Diff(string(want), string(got)); d != "" {
					t.Errorf("%s differs from %s (-want +got):\n%s", name, p, d)
				}
			}
		})
	}
}

// cloudConfigDoc is the part of the cloud-config the tests read back.
type cloudConfigDoc struct {
	Hostname string `yaml:"hostname"`
	FQDN     string `yaml:"fqdn"`
	Timezone string `yaml:"timezone"`
	Users    []struct {
		Name         string   `yaml:"name"`
		HashedPasswd string   `yaml:"hashed_passwd"`
		LockPasswd   bool     `yaml:"lock_passwd"`
		Homedir      string   `yaml:"homedir"`
		Sudo         string   `yaml:"sudo"`
		Keys         []string `yaml:"ssh_authorized_keys"`
	} `yaml:"users"`
	WriteFiles []struct {
		Path    string `yaml:"path"`
		Content string `yaml:"content"`
	} `yaml:"write_files"`
	Rsyslog struct {
		Configs []struct{ Content string } `yaml:"configs"`
	} `yaml:"rsyslog"`
	PhoneHome struct {
		URL string `yaml:"url"`
	} `yaml:"phone_home"`
}

func TestContentFromFixtures(t *testing.T) {
	for _, fx := range fixtures {
		t.Run(fx, func(t *testing.T) {
			doc := loadFixture(t, fx)
			c, err := Build(doc, Options{PhoneHomeURL: "http://10.0.2.2:8080/ph"})
			if err != nil {
				t.Fatal(err)
			}
			types, bodies := mimeParts(t, c.UserData)
			if d := cmp.Diff([]string{"text/cloud-boothook", "text/cloud-config"}, types); d != "" {
				t.Errorf("MIME parts (-want +got):\n%s", d)
			}
			if bodies["text/cloud-config"] != string(c.CloudConfig) || bodies["text/cloud-boothook"] != string(c.Boothook) {
				t.Error("MIME parts differ from Content.CloudConfig/Boothook")
			}
			if !strings.HasPrefix(string(c.CloudConfig), "#cloud-config\n") || !strings.HasPrefix(string(c.Boothook), "#cloud-boothook\n") {
				t.Error("part headers missing")
			}
			var cc cloudConfigDoc
			if err := yaml.Unmarshal(c.CloudConfig, &cc); err != nil {
				t.Fatalf("cloud-config is not YAML: %v", err)
			}
			short, _, _ := strings.Cut(doc.Hostname, ".")
			if cc.Hostname != short || cc.FQDN != doc.Hostname || cc.Timezone != doc.KsMeta.Timezone {
				t.Errorf("hostname/fqdn/timezone = %q/%q/%q", cc.Hostname, cc.FQDN, cc.Timezone)
			}
			if len(cc.Users) != len(doc.KsMeta.UserAccounts) {
				t.Fatalf("%d users, want %d", len(cc.Users), len(doc.KsMeta.UserAccounts))
			}
			for i, ua := range doc.KsMeta.UserAccounts {
				u := cc.Users[i]
				if u.Name != ua.Name || !VerifyPassword(ua.Password, u.HashedPasswd) || u.LockPasswd {
					t.Errorf("user %d = %+v: want %s with a hash of its password, unlocked", i, u, ua.Name)
				}
				if len(ua.Sudo) == 1 && u.Sudo != ua.Sudo[0] {
					t.Errorf("user %s sudo %q, want %q", u.Name, u.Sudo, ua.Sudo[0])
				}
				for _, k := range ua.SSHKeys {
					if !contains(u.Keys, strings.Trim(k, `"`)) {
						t.Errorf("user %s lacks key %q", u.Name, k)
					}
				}
			}
			// No clear-text account password anywhere in what goes on the drive.
			for _, ua := range doc.KsMeta.UserAccounts {
				assertNoClearPassword(t, doc, ua.Name, ua.Password, c)
			}
			wf := map[string]string{}
			for _, f := range cc.WriteFiles {
				wf[f.Path] = f.Content
			}
			if wf["/etc/nailgun_systemtype"] != "target" {
				t.Errorf("/etc/nailgun_systemtype = %q", wf["/etc/nailgun_systemtype"])
			}
			if !strings.Contains(wf["/etc/nailgun-agent/config.yaml"], "http://"+doc.KsMeta.MasterIP+":8000/api") {
				t.Errorf("nailgun-agent config = %q", wf["/etc/nailgun-agent/config.yaml"])
			}
			rules := wf["/etc/udev/rules.d/70-persistent-net.rules"]
			for _, r := range strings.Split(doc.KernelOptions.UdevRules, ",") {
				mac, name, _ := strings.Cut(r, "_")
				if !strings.Contains(rules, `ATTR{address}=="`+mac+`"`) || !strings.Contains(rules, `NAME="`+name+`"`) {
					t.Errorf("udev rules lack %s", r)
				}
			}
			if _, ok := wf["/etc/mcollective/server.cfg"]; ok != (doc.KsMeta.McoEnable == 1) {
				t.Errorf("mcollective config present = %v with mco_enable %d", ok, doc.KsMeta.McoEnable)
			}
			if _, ok := wf["/etc/puppet/puppet.conf"]; ok != (doc.KsMeta.PuppetEnable == 1) {
				t.Errorf("puppet config present = %v with puppet_enable %d", ok, doc.KsMeta.PuppetEnable)
			}
			if len(cc.Rsyslog.Configs) != 1 || !strings.Contains(cc.Rsyslog.Configs[0].Content, "@"+doc.KsMeta.MasterIP+";") {
				t.Errorf("rsyslog = %+v", cc.Rsyslog)
			}
			if cc.PhoneHome.URL != "http://10.0.2.2:8080/ph" {
				t.Errorf("phone_home = %+v", cc.PhoneHome)
			}
			if out, err := exec.Command("sh", "-n", "-c", string(c.Boothook)).CombinedOutput(); err != nil {
				t.Errorf("boothook is not valid sh: %v\n%s", err, out)
			}
			for _, want := range []string{"nameserver " + doc.KsMeta.MasterIP, "search domain.tld", "server " + doc.KsMeta.MasterIP} {
				if !strings.Contains(string(c.Boothook), want) {
					t.Errorf("boothook lacks %q", want)
				}
			}

			// Meta-data and network config.
			var md struct {
				IID  string   `yaml:"instance-id"`
				Host string   `yaml:"local-hostname"`
				Keys []string `yaml:"public-keys"`
			}
			if err := yaml.Unmarshal(c.MetaData, &md); err != nil {
				t.Fatal(err)
			}
			if md.IID != c.InstanceID || md.Host != doc.Hostname {
				t.Errorf("meta-data = %+v", md)
			}
			if d := cmp.Diff(wantRootKeys(doc.KsMeta.AuthorizedKeys, doc.KsMeta.AuthKey), md.Keys); d != "" {
				t.Errorf("public-keys (-want +got):\n%s", d)
			}
			var mdj map[string]any
			if err := json.Unmarshal(c.MetaDataJSON, &mdj); err != nil || mdj["uuid"] != c.InstanceID || mdj["hostname"] != doc.Hostname {
				t.Errorf("meta_data.json = %s (%v)", c.MetaDataJSON, err)
			}
			var nc struct {
				Version int
				Config  []struct {
					Type, Name string
					MAC        string `yaml:"mac_address"`
					Subnets    []struct{ Type, Address, Netmask, Gateway string }
				}
			}
			if err := yaml.Unmarshal(c.NetworkConfig, &nc); err != nil {
				t.Fatal(err)
			}
			admin := doc.Interfaces["eth0"]
			if nc.Version != 1 || nc.Config[0].MAC != admin.MACAddress || nc.Config[0].Name != "eth0" ||
				nc.Config[0].Subnets[0].Address != admin.IPAddress || nc.Config[0].Subnets[0].Netmask != admin.Netmask ||
				nc.Config[0].Subnets[0].Gateway != doc.KsMeta.Gw {
				t.Errorf("network-config = %+v", nc)
			}
		})
	}
}

func wantRootKeys(authorized []string, authKey string) []string {
	var out []string
	for _, k := range append(append([]string{}, authorized...), authKey) {
		k = strings.Trim(k, `"`)
		if k != "" && !contains(out, k) {
			out = append(out, k)
		}
	}
	return out
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

func TestInstanceIDStable(t *testing.T) {
	doc := loadFixture(t, fixtures[0])
	a, _ := Build(doc, Options{})
	b, _ := Build(doc, Options{})
	if a.InstanceID != b.InstanceID {
		t.Errorf("instance id differs between builds: %s %s", a.InstanceID, b.InstanceID)
	}
	doc.UID = "5"
	c, _ := Build(doc, Options{})
	if c.InstanceID == a.InstanceID {
		t.Errorf("instance id %s does not depend on uid", a.InstanceID)
	}
	d, _ := Build(doc, Options{InstanceID: "iid-x"})
	if d.InstanceID != "iid-x" || !strings.Contains(string(d.MetaData), "iid-x") {
		t.Errorf("InstanceID override ignored: %s", d.MetaData)
	}
}

func TestQuotesStrippedDefensively(t *testing.T) {
	doc := loadFixture(t, fixtures[0])
	// As Nailgun sends them, had no parser stripped them (and twice: idempotent).
	doc.NameServers = `"10.20.0.2"`
	doc.NameServersSearch = `""domain.tld""`
	doc.KsMeta.AuthorizedKeys = []string{`"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGc3dXl1c2VyLWtleS1mb3ItdGVzdHMtb25seS0x t@x"`}
	doc.KsMeta.AuthKey = `""`
	doc.KsMeta.UserAccounts[0].SSHKeys = []string{`"ssh-rsa AAAA k"`}
	c, err := Build(doc, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range c.Files(NoCloudVFAT) {
		if bytes.Contains(f.Data, []byte(`\"`)) || bytes.Contains(f.Data, []byte(`""`)) {
			t.Errorf("%s still carries Nailgun's quotes:\n%s", f.Path, f.Data)
		}
	}
	if !strings.Contains(string(c.MetaData), "- \"ssh-ed25519 AAAAC3") {
		t.Errorf("meta-data keys:\n%s", c.MetaData)
	}
}

func TestWarnings(t *testing.T) {
	doc := loadFixture(t, "provision_sample_nailgun_3disks.json")
	c, err := Build(doc, Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		`ks_meta.authorized_keys[0]: passed on, but "fake_authorized_key1" is not an SSH public key (no known key type)`,
		`ks_meta.authorized_keys[1]: passed on, but "fake_authorized_key2" is not an SSH public key (no known key type)`,
		`ks_meta.auth_key: passed on, but "fake_auth_key" is not an SSH public key (no known key type)`,
	}
	if d := cmp.Diff(want, c.Warnings); d != "" {
		t.Errorf("warnings (-want +got):\n%s", d)
	}
	if !strings.Contains(string(c.MetaData), "fake_auth_key") {
		t.Error("a non-key was not passed on")
	}
	if err := checkSSHKey("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGc3dXl1c2VyLWtleS1mb3ItdGVzdHMtb25seS0x c"); err != nil {
		t.Errorf("valid ed25519 key: %v", err)
	}
	if err := checkSSHKey(`command="x" ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAIGc3dXl1c2VyLWtleS1mb3ItdGVzdHMtb25seS0x c`); err == nil {
		t.Error("ssh-rsa label on an ed25519 blob accepted")
	}
}

func TestBuildErrors(t *testing.T) {
	tests := []struct {
		name   string
		modify func(d *docT)
		want   []string
	}{
		{"admin MAC matches nothing", func(d *docT) { d.KernelOptions.ChooseInterface = "52:54:00:00:00:01" },
			[]string{`kernel_options["netcfg/choose_interface"]: no interface has MAC address "52:54:00:00:00:01" (the admin interface)`}},
		{"admin MAC missing", func(d *docT) { d.KernelOptions.ChooseInterface = "" },
			[]string{`kernel_options["netcfg/choose_interface"]: required: the admin interface's MAC address`}},
		{"admin NIC without address", func(d *docT) {
			e := d.Interfaces["eth0"]
			e.IPAddress, e.Netmask = "", "255.0.255.0"
			d.Interfaces["eth0"] = e
		}, []string{`interfaces.eth0.ip_address: required on the admin interface`, `interfaces.eth0.netmask: "255.0.255.0" is not a netmask`}},
		{"unknown template", func(d *docT) { d.KsMeta.CloudInitTemplates["cloud_config"] = "cloud_config_fuel_10.0_ubuntu.jinja2" },
			[]string{`ks_meta.cloud_init_templates.cloud_config: unknown template "cloud_config_fuel_10.0_ubuntu.jinja2" (known: cloud_config_centos.jinja2,`}},
		{"several at once", func(d *docT) {
			d.Hostname = "bad_host!"
			d.KsMeta.MasterIP = "master"
			d.KsMeta.UserAccounts[1].Name = "Bad User"
			d.KernelOptions.UdevRules = "zz_eth0"
			d.KsMeta.McoConnector = "amqp"
		}, []string{`hostname: "bad_host!" is not a valid host name`, `ks_meta.master_ip: "master" is not an IP address`,
			`ks_meta.user_accounts[1].name: "Bad User" is not a valid user name`, `kernel_options.udevrules: entry 1 "zz_eth0": invalid MAC address "zz"`,
			`ks_meta.mco_connector: "amqp": want rabbitmq or stomp`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := loadFixture(t, fixtures[0])
			tt.modify(doc)
			_, err := Build(doc, Options{})
			if err == nil {
				t.Fatal("Build succeeded")
			}
			// The rules are provision's: its problems, with their paths.
			var ve *provision.ValidationError
			if !errors.As(err, &ve) || len(ve.Problems) < len(tt.want) {
				t.Errorf("error %v does not carry provision's problems", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

func TestVariants(t *testing.T) {
	doc := loadFixture(t, fixtures[0])
	c, err := Build(doc, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(c.CloudConfig), "cloud_config fuel_9.0_ubuntu") || strings.Contains(string(c.CloudConfig), "\nssh_authorized_keys:") {
		t.Errorf("fuel 9.0 variant not applied:\n%s", c.CloudConfig)
	}
	doc.KsMeta.CloudInitTemplates = map[string]string{"cloud_config": "cloud_config_fuel_8.0_ubuntu.jinja2", "boothook": "boothook_centos.jinja2"}
	c, err = Build(doc, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(c.CloudConfig), "\nssh_authorized_keys:\n  - \"ssh-rsa") || !strings.Contains(string(c.Boothook), "PEERDNS=no") {
		t.Errorf("8.0 cloud_config / centos boothook variant not applied:\n%s\n%s", c.CloudConfig, c.Boothook)
	}
}

func TestImagesReadBack(t *testing.T) {
	c, err := Build(loadFixture(t, fixtures[0]), Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		f       Format
		sector  int
		sizeMiB int64
		fsType  string
		version string
	}{
		{NoCloudVFAT, 512, 20, "vfat/FAT16", "FAT16"},
		{Config2VFAT, 512, 20, "vfat/FAT16", "FAT16"},
		{NoCloudVFAT, 512, 2, "vfat/FAT12", "FAT12"},
		{Config2VFAT, 4096, 20, "vfat/FAT32", "FAT32"},
		{NoCloudVFAT, 4096, 64, "vfat/FAT32", "FAT32"},
		{NoCloudISO, 512, 20, "iso9660", "Joliet Extension"},
		{Config2ISO, 512, 20, "iso9660", ""},
	} {
		t.Run(fmt.Sprintf("%s/%s/%d/%dMiB", tt.f, tt.fsType, tt.sector, tt.sizeMiB), func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "seed.img")
			b, err := WriteFile(context.Background(), c, tt.f, p, tt.sizeMiB<<20, ImageOptions{SectorSize: tt.sector})
			if err != nil {
				t.Fatal(err)
			}
			st, _ := os.Stat(p)
			if b.FSType != tt.fsType || st.Size() != tt.sizeMiB<<20 {
				t.Errorf("fs %s, size %d; want %s, %d", b.FSType, st.Size(), tt.fsType, tt.sizeMiB<<20)
			}
			files, label := readImage(t, p, tt.f, tt.sector)
			want := map[string][]byte{}
			for _, fl := range c.Files(tt.f) {
				want[fl.Path] = fl.Data
			}
			if d := cmp.Diff(want, files); d != "" {
				t.Errorf("files read back with go-diskfs (-want +got):\n%s", d)
			}
			wantLabel := tt.f.Label()
			if !tt.f.ISO() {
				wantLabel = strings.ToUpper(wantLabel)
			}
			if strings.TrimSpace(label) != wantLabel {
				t.Errorf("label %q, want %q", label, wantLabel)
			}
			probe := blkid(t, p)
			wantType := "vfat"
			if tt.f.ISO() {
				wantType = "iso9660"
			}
			if probe["TYPE"] != wantType || !strings.EqualFold(probe["LABEL"], tt.f.Label()) ||
				(tt.version != "" && strings.ReplaceAll(probe["VERSION"], `\ `, " ") != tt.version) {
				t.Errorf("blkid -p: %v; want TYPE=%s LABEL=%s VERSION=%s", probe, wantType, tt.f.Label(), tt.version)
			}
			if !tt.f.ISO() {
				if probe["BLOCK_SIZE"] != strconv.Itoa(tt.sector) {
					t.Errorf("blkid BLOCK_SIZE %s, want %d", probe["BLOCK_SIZE"], tt.sector)
				}
				fsckFAT(t, p, tt.sector == SectorSize4096)
			}
		})
	}
}

func TestImageErrors(t *testing.T) {
	c, err := Build(loadFixture(t, fixtures[0]), Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	big := *c
	big.UserData = bytes.Repeat([]byte("x"), 3<<20)
	if _, err := Image(ctx, &big, NoCloudVFAT, 2<<20, ImageOptions{}); !errors.Is(err, ErrTooSmall) || !strings.Contains(err.Error(), "size: ") {
		t.Errorf("content larger than the partition: %v", err)
	}
	if _, err := Image(ctx, &big, Config2ISO, 2<<20, ImageOptions{}); !errors.Is(err, ErrTooSmall) {
		t.Errorf("ISO content larger than the partition: %v", err)
	}
	if _, err := Image(ctx, c, NoCloudISO, 20<<20, ImageOptions{SectorSize: 4096}); err == nil || !strings.Contains(err.Error(), "4096-byte-sector") {
		t.Errorf("ISO on 4Kn: %v", err)
	}
	if _, err := ParseFormat("nocloud-ext2"); err == nil || !strings.Contains(err.Error(), `format "nocloud-ext2": unknown`) {
		t.Errorf("ParseFormat: %v", err)
	}
	if _, err := Image(ctx, c, NoCloudVFAT, 20<<20+100, ImageOptions{}); err == nil {
		t.Error("size not a multiple of the sector accepted")
	}
	if _, err := WriteDevice(ctx, c, NoCloudVFAT, filepath.Join(t.TempDir(), "f"), 0, ImageOptions{}); err == nil {
		t.Error("WriteDevice on a missing path succeeded")
	}
	reg := filepath.Join(t.TempDir(), "reg")
	os.WriteFile(reg, make([]byte, 1<<20), 0o644)
	if _, err := WriteDevice(ctx, c, NoCloudVFAT, reg, 0, ImageOptions{}); err == nil || !strings.Contains(err.Error(), "not a block device") {
		t.Errorf("WriteDevice on a regular file: %v", err)
	}
}

// TestWriteZeroesWholeTarget: Write covers the whole target, so stale
// signatures from an earlier filesystem cannot survive.
func TestWriteZeroesWholeTarget(t *testing.T) {
	c, err := Build(loadFixture(t, fixtures[0]), Options{})
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "dev")
	fh, _ := os.Create(p)
	defer fh.Close()
	fh.Write(bytes.Repeat([]byte{0xa5}, 4<<20))
	if _, err := Write(context.Background(), c, NoCloudVFAT, fh, 4<<20, ImageOptions{}); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(p)
	if bytes.Count(data, []byte{0xa5}) > 64 {
		t.Errorf("%d stale bytes left", bytes.Count(data, []byte{0xa5}))
	}
}

type docT = provision.Document

// assertNoClearPassword fails when password appears in any configdrive file.
// Where the fixture's password also occurs legitimately (Fuel's samples use
// password "fuel" for user fuel, homedir /var/lib/fuel), it checks instead
// that no cloud-config value other than a name or path equals it and that
// the raw bytes hold no more occurrences than those legitimate strings do.
func assertNoClearPassword(t *testing.T, doc *docT, user, password string, c *Content) {
	t.Helper()
	if password == "" {
		return
	}
	var legit []string
	for _, ua := range doc.KsMeta.UserAccounts {
		legit = append(legit, ua.Name, ua.Homedir)
	}
	legit = append(legit, doc.Hostname)
	overlaps := false
	for _, l := range legit {
		overlaps = overlaps || strings.Contains(l, password)
	}
	for _, f := range append(c.Files(NoCloudVFAT), c.Files(Config2VFAT)...) {
		if !overlaps {
			if bytes.Contains(f.Data, []byte(password)) {
				t.Errorf("%s contains the clear password of %s", f.Path, user)
			}
			continue
		}
		for _, bad := range []string{": " + password + "\n", ": \"" + password + "\"", ":" + password + "\n", "passwd: " + password} {
			if bytes.Contains(f.Data, []byte(bad)) && !bytes.Contains(f.Data, []byte("name: \""+password+"\"")) {
				t.Errorf("%s contains %q (clear password of %s)", f.Path, bad, user)
			}
		}
	}
	var root yaml.Node
	if err := yaml.Unmarshal(c.CloudConfig, &root); err != nil {
		t.Fatal(err)
	}
	var walk func(n *yaml.Node, key string)
	walk = func(n *yaml.Node, key string) {
		switch n.Kind {
		case yaml.ScalarNode:
			if n.Value == password && key != "name" && key != "homedir" {
				t.Errorf("cloud-config %s: holds the clear password of %s", key, user)
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				walk(n.Content[i+1], n.Content[i].Value)
			}
		default:
			for _, ch := range n.Content {
				walk(ch, key)
			}
		}
	}
	walk(&root, "")
}

// The templates provision accepts are the ones Build renders.
func TestKnownVariantsAreProvisions(t *testing.T) {
	var got []string
	for k := range knownVariants {
		got = append(got, k)
	}
	want := append([]string(nil), provision.CloudInitTemplateVariants...)
	sort.Strings(got)
	sort.Strings(want)
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("knownVariants vs provision.CloudInitTemplateVariants (-provision +configdrive):\n%s", d)
	}
}

// Class 5: a document whose configdrive could not be built is refused by
// provision's rules, before any disk is touched, with the field named.
func TestBuildRefusesWhatProvisionRefuses(t *testing.T) {
	for _, tt := range []struct {
		modify func(d *docT)
		path   string
	}{
		{func(d *docT) { d.KsMeta.Timezone = "Mars/Base" }, "ks_meta.timezone"},
		{func(d *docT) { d.KsMeta.MasterIP = "10.20.0" }, "ks_meta.master_ip"},
		{func(d *docT) { d.KsMeta.Gw = "gateway" }, "ks_meta.gw"},
	} {
		doc := loadFixture(t, fixtures[0])
		tt.modify(doc)
		if err := doc.Validate(); err == nil || !strings.HasPrefix(err.Error(), tt.path+": ") {
			t.Errorf("provision Validate = %v, want a problem at %s", err, tt.path)
		}
		_, err := Build(doc, Options{})
		var ve *provision.ValidationError
		if !errors.As(err, &ve) || ve.Problems[0].Path != tt.path {
			t.Errorf("Build = %v, want provision's problem at %s", err, tt.path)
		}
	}
}
