package provision

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"go.yaml.in/yaml/v3"
)

var fixtures = []string{
	"provision_fuel90_ubuntu_1disk.json",
	"provision_sample_nailgun_3disks.json",
	"simple_nailgun_driver.json",
}

func readFixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// generic decodes a fixture into maps and slices, numbers kept exact.
func generic(t testing.TB, b []byte) map[string]any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		t.Fatal(err)
	}
	return m
}

func encode(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// at walks a generic document: keys are strings, indices ints.
func at(t testing.TB, v any, path ...any) any {
	t.Helper()
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				t.Fatalf("at %v: %T is not an object", path, v)
			}
			v = m[k]
		case int:
			a, ok := v.([]any)
			if !ok || k >= len(a) {
				t.Fatalf("at %v: no index %d", path, k)
			}
			v = a[k]
		}
	}
	return v
}

func obj(t testing.TB, v any, path ...any) map[string]any {
	t.Helper()
	m, ok := at(t, v, path...).(map[string]any)
	if !ok {
		t.Fatalf("at %v: not an object", path)
	}
	return m
}

func spaces(t testing.TB, doc map[string]any) []any {
	return at(t, doc, "ks_meta", "pm_data", "ks_spaces").([]any)
}

func setSpaces(doc map[string]any, s []any) {
	doc["ks_meta"].(map[string]any)["pm_data"].(map[string]any)["ks_spaces"] = s
}

// problemLines runs ParseAndValidate and returns its problems as lines.
func problemLines(t *testing.T, b []byte) []string {
	t.Helper()
	_, err := ParseAndValidate(b)
	if err == nil {
		return nil
	}
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("ParseAndValidate: %v (%T), want nil or *ValidationError", err, err)
	}
	if got := ve.Error(); got != strings.Join(lines(ve.Problems), "\n") {
		t.Errorf("Error() = %q, want the problems one per line", got)
	}
	return lines(ve.Problems)
}

func lines(ps []FieldError) []string {
	if len(ps) == 0 {
		return nil
	}
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.Error()
	}
	return out
}

func TestFixturesValidate(t *testing.T) {
	want := map[string][]string{
		"provision_fuel90_ubuntu_1disk.json": nil,
		"provision_sample_nailgun_3disks.json": {
			// fuel-agent's own test data: a GUID placeholder, and sda carries
			// a /tmp partition Nailgun's accounting never made room for.
			`ks_meta.pm_data.ks_spaces[0].volumes[2].partition_guid: "fake_guid" is not a GUID (sgdisk --typecode will refuse it)`,
			`ks_meta.pm_data.ks_spaces[0].size: the disk has 65535 MiB but its volumes, with Nailgun's boot and lvm_meta_pool reservations, add up to 65735 MiB`,
		},
		"simple_nailgun_driver.json": {
			`partitioning.parteds[1].partitions[3].guid: "fake_guid" is not a GUID (sgdisk --typecode will refuse it)`,
		},
	}
	// fuel-agent's nailgun_simple test data puts a PV on /dev/sdc3, a disk
	// the scheme does not list: refused (the rule tests drop it).
	wantErr := map[string]string{
		"simple_nailgun_driver.json": `partitioning.pvs[3].name: "/dev/sdc3" is not a partition of a disk in partitioning.parteds, nor an md or lv this scheme creates`,
	}
	for _, name := range fixtures {
		t.Run(name, func(t *testing.T) {
			doc, err := ParseAndValidate(readFixture(t, name))
			if want := wantErr[name]; want != "" {
				if err == nil || err.Error() != want {
					t.Fatalf("ParseAndValidate = %v, want %s", err, want)
				}
			} else if err != nil {
				t.Fatalf("ParseAndValidate: %v", err)
			}
			if diff := cmp.Diff(want[name], lines(doc.Warnings())); diff != "" {
				t.Errorf("Warnings() (-want +got):\n%s", diff)
			}
		})
	}
}

func TestFixtureModel(t *testing.T) {
	doc, err := Parse(readFixture(t, "provision_fuel90_ubuntu_1disk.json"))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := doc.Hostname, "node-4.domain.tld"; got != want {
		t.Errorf("Hostname = %q, want %q", got, want)
	}
	sp := doc.KsMeta.PmData.KsSpaces
	if len(sp) != 6 {
		t.Fatalf("%d ks_spaces, want 6", len(sp))
	}
	wantDisk := Space{
		Type: SpaceDisk, ID: "vda", Name: "vda", Extra: []string{}, Size: 81920, FreeSpace: 81100, Bootable: true,
		Volumes: []Volume{
			{Type: VolBoot, Size: 300},
			{Type: VolPartition, Mount: "/boot", FileSystem: "ext2", Name: "Boot", Size: 200},
			{Type: VolLVMMetaPool, Size: 0},
			{Type: VolPV, VG: "os", LVMMetaSize: 64, Size: 24640},
			{Type: VolPV, VG: "logs", LVMMetaSize: 64, Size: 10304},
			{Type: VolPV, VG: "mysql", LVMMetaSize: 64, Size: 20544},
			{Type: VolPV, VG: "horizon", LVMMetaSize: 64, Size: 11328},
			{Type: VolPV, VG: "image", LVMMetaSize: 64, Size: 14604},
		},
	}
	if diff := cmp.Diff(wantDisk, sp[0]); diff != "" {
		t.Errorf("disk (-want +got):\n%s", diff)
	}
	wantVG := Space{Type: SpaceVG, ID: "os", Label: "Base System", MinSize: 24576, AllocateSize: "min",
		Volumes: []Volume{
			{Type: VolLV, Name: "root", Mount: "/", FileSystem: "ext4", Size: 16384},
			{Type: VolLV, Name: "swap", Mount: "swap", FileSystem: "swap", Size: 8192},
		}}
	if diff := cmp.Diff(wantVG, sp[1]); diff != "" {
		t.Errorf("vg (-want +got):\n%s", diff)
	}
	wantImages := map[string]ImageData{
		"/":     {URI: "http://10.20.0.2:8080/targetimages/env_1_ubuntu_1404_amd64.img.gz", Format: "ext4", Container: "gzip"},
		"/boot": {URI: "http://10.20.0.2:8080/targetimages/env_1_ubuntu_1404_amd64-boot.img.gz", Format: "ext2", Container: "gzip"},
	}
	if diff := cmp.Diff(wantImages, doc.KsMeta.ImageData); diff != "" {
		t.Errorf("image_data (-want +got):\n%s", diff)
	}
	if got := doc.KsMeta.RepoSetup.Repos; len(got) != 8 || got[0].Priority != nil || got[3].Priority == nil || *got[3].Priority != 1050 {
		t.Errorf("repos = %+v, want 8 with priority null then 1050", got)
	}
	if got, want := doc.KsMeta.CloudInitTemplates["cloud_config"], "cloud_config_fuel_9.0_ubuntu.jinja2"; got != want {
		t.Errorf("cloud_config template = %q, want %q", got, want)
	}
	if got, want := doc.KsMeta.McoIdentity, 4; got != want {
		t.Errorf("mco_identity = %d, want %d", got, want)
	}
	if name, ok := doc.AdminInterface(); !ok || name != "eth0" {
		t.Errorf("AdminInterface() = %q, %v, want eth0", name, ok)
	}
	if got := doc.KsMeta.UserAccounts[1]; got.Name != "fuel" || got.Homedir != "/var/lib/fuel" || len(got.Sudo) != 1 || len(got.SSHKeys) != 1 {
		t.Errorf("user_accounts[1] = %+v", got)
	}

	simple, err := Parse(readFixture(t, "simple_nailgun_driver.json"))
	if err != nil {
		t.Fatal(err)
	}
	ps := simple.Partitioning
	if ps == nil || len(ps.Parteds) != 2 || len(ps.PVs) != 4 || len(ps.VGs) != 2 || len(ps.LVs) != 3 || len(ps.FSs) != 5 {
		t.Fatalf("partitioning = %+v", ps)
	}
	guid := "fake_guid"
	wantPart := Partition{Name: "/dev/sda4", Count: 4, Device: "/dev/sda", Begin: 425, End: 625, PartitionType: "primary", Flags: []string{}, GUID: &guid}
	if diff := cmp.Diff(wantPart, ps.Parteds[1].Partitions[3]); diff != "" {
		t.Errorf("parteds[1].partitions[3] (-want +got):\n%s", diff)
	}
	if p := ps.Parteds[1].Partitions[6]; !p.Configdrive || p.GUID != nil {
		t.Errorf("configdrive partition = %+v", p)
	}
}

func TestQuotesStripped(t *testing.T) {
	doc, err := Parse(readFixture(t, "provision_fuel90_ubuntu_1disk.json"))
	if err != nil {
		t.Fatal(err)
	}
	got := []string{doc.NameServers, doc.NameServersSearch, doc.KsMeta.AuthKey}
	got = append(got, doc.KsMeta.AuthorizedKeys...)
	want := []string{"10.20.0.2", "domain.tld", "", "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQ-REDACTED-EXAMPLE-KEY root@fuel.domain.tld"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}

	// Inner quotes of a key (an authorized_keys option) survive.
	m := generic(t, readFixture(t, "provision_fuel90_ubuntu_1disk.json"))
	obj(t, m, "ks_meta")["authorized_keys"] = []any{`"command="/bin/true" ssh-ed25519 AAAA x@y"`, "ssh-rsa BBBB plain"}
	obj(t, m, "ks_meta")["auth_key"] = `"ssh-rsa CCCC auth"`
	m["name_servers"] = `"10.0.0.1","10.0.0.2"`
	doc, err = Parse(encode(t, m))
	if err != nil {
		t.Fatal(err)
	}
	got = append([]string{doc.NameServers, doc.KsMeta.AuthKey}, doc.KsMeta.AuthorizedKeys...)
	want = []string{"10.0.0.1,10.0.0.2", "ssh-rsa CCCC auth", `command="/bin/true" ssh-ed25519 AAAA x@y`, "ssh-rsa BBBB plain"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// toYAML re-encodes a JSON fixture as YAML (block style, keys sorted).
func toYAML(t *testing.T, b []byte) []byte {
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	y, err := yaml.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return y
}

var ignorePos = cmpopts.IgnoreUnexported(Document{})

func TestYAMLEqualsJSON(t *testing.T) {
	for _, name := range fixtures {
		t.Run(name, func(t *testing.T) {
			j := readFixture(t, name)
			y := toYAML(t, j)
			if bytes.HasPrefix(bytes.TrimSpace(y), []byte("{")) {
				t.Fatal("YAML rendering is flow style; the test would not exercise the YAML path")
			}
			dj, err := Parse(j)
			if err != nil {
				t.Fatal(err)
			}
			dy, err := Parse(y)
			if err != nil {
				t.Fatalf("YAML: %v", err)
			}
			if diff := cmp.Diff(dj, dy, ignorePos); diff != "" {
				t.Errorf("JSON and YAML documents differ (-json +yaml):\n%s", diff)
			}
		})
	}
}

// A hand-written YAML document as an operator would write it: comments,
// an anchor, YAML 1.1 booleans (fuel-agent's PyYAML reads yes as true).
const handYAML = `# one disk, everything on plain partitions
hostname: node-9.example.test
interfaces:
  eth0: {mac_address: "52:54:00:12:34:56", ip_address: 10.0.2.15, netmask: 255.255.255.0}
kernel_options:
  netcfg/choose_interface: 52:54:00:12:34:56
name_servers: '"10.0.2.3"'
ks_meta:
  image_data:
    /: &img {uri: "http://10.0.2.2:8080/root.img.zst", format: ext4, container: zstd}
  user_accounts:
    - name: root
      password: r00tme
  pm_data:
    kernel_params: console=ttyS0
    ks_spaces:
      - type: disk
        id: disk/by-path/pci-0000:00:04.0
        name: vda
        extra: []
        size: 20480
        free_space: 0
        bootable: yes
        volumes:
          - {type: boot, size: 300}
          - {type: partition, mount: /, file_system: ext4, size: 16000, keep_data: no}
          - {type: partition, mount: swap, file_system: swap, size: 2048}
`

func TestHandWrittenYAML(t *testing.T) {
	doc, err := ParseAndValidate([]byte(handYAML))
	if err != nil {
		t.Fatal(err)
	}
	d := doc.KsMeta.PmData.KsSpaces[0]
	if !d.Bootable || d.Volumes[1].KeepData || d.Volumes[1].Size != 16000 {
		t.Errorf("disk = %+v", d)
	}
	if got := doc.KsMeta.ImageData["/"]; got.Container != "zstd" || got.Format != "ext4" {
		t.Errorf(`image_data["/"] = %+v`, got)
	}
	if doc.NameServers != "10.0.2.3" {
		t.Errorf("name_servers = %q", doc.NameServers)
	}
}

func TestUnknownKeysTolerated(t *testing.T) {
	m := generic(t, readFixture(t, "provision_fuel90_ubuntu_1disk.json"))
	m["vms_conf"] = []any{map[string]any{"id": 1}}
	m["fail_if_error"] = true
	obj(t, m, "ks_meta")["mlnx_vf_num"] = "16"
	obj(t, m, "ks_meta", "pm_data")["lvm_filter"] = "future"
	obj(t, m, "kernel_options")["netcfg/something_else"] = 7
	obj(t, m, "interfaces", "eth0")["driver"] = "virtio_net"
	disk := obj(t, m, "ks_meta", "pm_data", "ks_spaces", 0)
	disk["removable"] = "0"
	obj(t, disk, "volumes", 3)["comment"] = map[string]any{"x": 1}
	obj(t, m, "ks_meta", "pm_data", "ks_spaces", 1, "volumes", 0)["lv_tags"] = []any{"a"}

	doc, err := ParseAndValidate(encode(t, m))
	if err != nil {
		t.Fatalf("ParseAndValidate: %v", err)
	}
	want := map[string]json.RawMessage{
		"vms_conf":      json.RawMessage(`[{"id":1}]`),
		"fail_if_error": json.RawMessage(`true`),
	}
	if diff := cmp.Diff(want, doc.Extra); diff != "" {
		t.Errorf("Extra (-want +got):\n%s", diff)
	}
}

func TestSyntaxErrors(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want SyntaxError
	}{
		{"json bad value", "{\n  \"hostname\": \"a\",\n  \"uid\": x\n}", SyntaxError{Format: "json", Line: 3, Column: 10, Offset: 30}},
		{"json truncated", "{\n  \"hostname\": \"a\",\n", SyntaxError{Format: "json", Line: 3, Column: 1, Offset: 21}},
		{"json trailing", "{\"a\": 1} 2", SyntaxError{Format: "json", Line: 1, Column: 10, Offset: 9}},
		{"yaml bad indent", "hostname: a\nks_meta:\n  pm_data: [\n", SyntaxError{Format: "yaml", Line: 3, Offset: -1}},
		{"yaml tab", "hostname: a\n\tuid: 1\n", SyntaxError{Format: "yaml", Line: 2, Offset: -1}},
		{"empty", "", SyntaxError{Format: "yaml", Offset: -1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc, err := Parse([]byte(tt.in))
			var se *SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("Parse = %v, %v; want a *SyntaxError", doc, err)
			}
			got := *se
			got.Msg = ""
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s\nerror: %v", diff, err)
			}
			if se.Msg == "" || !strings.Contains(err.Error(), fmt.Sprintf("line %d", tt.want.Line)) && tt.want.Line > 0 {
				t.Errorf("error %q does not name line %d", err, tt.want.Line)
			}
		})
	}
	if _, err := Parse([]byte(`["not", "an", "object"]`)); err == nil || err.Error() != "document: must be an object, got array" {
		t.Errorf("array document: %v", err)
	}
}

func TestPVUsableMiB(t *testing.T) {
	// bareon's functional test on real LVM: 1000 MiB PV, lvm_meta_size 64 → PSize 940 MiB.
	if got := PVUsableMiB(1000, 64); got != 940 {
		t.Errorf("PVUsableMiB(1000, 64) = %d, want 940", got)
	}
	if got := PVMetadataSizeMiB(64); got != 28 {
		t.Errorf("PVMetadataSizeMiB(64) = %d, want 28", got)
	}
	if got := PVUsableMiB(50, 64); got != 0 {
		t.Errorf("PVUsableMiB(50, 64) = %d, want 0", got)
	}
}

func TestLVDevicePath(t *testing.T) {
	if got, want := LVDevicePath("my-vg", "lv-1"), "/dev/mapper/my--vg-lv--1"; got != want {
		t.Errorf("LVDevicePath = %q, want %q", got, want)
	}
}
