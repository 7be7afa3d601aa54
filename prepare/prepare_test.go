package prepare

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/imprint-dev/imprint/configdrive"
	"github.com/imprint-dev/imprint/internal/devguard"
	"github.com/imprint-dev/imprint/inventory"
	"github.com/imprint-dev/imprint/provision"
)

const fuel90 = "../agent/testdata/provision_fuel90_ubuntu_1disk.json"

// twoDisks is a node with the document's disk (vda) and a bystander (vdb).
var twoDisks = &inventory.Inventory{Disks: []inventory.Disk{
	{Name: "vda", Path: "/dev/vda", SizeBytes: 100 << 30, LogicalSectorSize: 512, PhysicalSectorSize: 512},
	{Name: "vdb", Path: "/dev/vdb", SizeBytes: 100 << 30, LogicalSectorSize: 512, PhysicalSectorSize: 512},
}}

// noFS resolves nothing: the tables must not depend on this host's /dev.
type noFS struct{}

func (noFS) EvalSymlinks(p string) (string, error) { return p, nil }
func (noFS) Rdev(string) (uint64, bool)            { return 0, false }

// edit loads the Fuel 9.0 one-disk document and applies f to its generic
// JSON form.
func edit(t *testing.T, f func(m map[string]any)) []byte {
	t.Helper()
	b, err := os.ReadFile(fuel90)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if f != nil {
		f(m)
	}
	out, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func ksMeta(m map[string]any) map[string]any { return m["ks_meta"].(map[string]any) }
func images(m map[string]any) map[string]any {
	return ksMeta(m)["image_data"].(map[string]any)
}
func rootImage(m map[string]any) map[string]any { return images(m)["/"].(map[string]any) }

func TestPrepareValid(t *testing.T) {
	job, err := Prepare(context.Background(), edit(t, nil), twoDisks, Options{FS: noFS{}})
	if err != nil {
		t.Fatal(err)
	}
	for _, dev := range []string{"/dev/vda", "/dev/vda3", "/dev/mapper/os-root", "/dev/os/root"} {
		if !job.Devices.Contains(dev) {
			t.Errorf("device set lacks %s: %q", dev, job.Devices.Devices())
		}
	}
	if job.Devices.Contains("/dev/vdb") {
		t.Errorf("the bystander disk is in the device set: %q", job.Devices.Devices())
	}
	if job.Configdrive == nil || !strings.HasPrefix(job.Configdrive.Device, "/dev/vda") || job.Configdrive.Format != configdrive.DefaultFormat {
		t.Errorf("configdrive = %+v", job.Configdrive)
	}
	if len(job.Images) != 2 {
		t.Errorf("images = %+v", job.Images)
	}
	if job.Bootloader.Plan != job.Plan || len(job.Bootloader.Plan.Bootloader) == 0 {
		t.Errorf("bootloader request = %+v", job.Bootloader)
	}
}

// problems prepares doc and returns its problems ("path: msg"), failing
// the test when it was not refused.
func problems(t *testing.T, doc []byte, opts Options) []string {
	t.Helper()
	if opts.FS == nil {
		opts.FS = noFS{}
	}
	_, err := Prepare(context.Background(), doc, twoDisks, opts)
	var pe *Error
	if !errors.As(err, &pe) {
		t.Fatalf("Prepare = %v, want an *Error", err)
	}
	var out []string
	for _, p := range pe.Problems {
		out = append(out, p.String())
	}
	return out
}

func wantProblem(t *testing.T, got []string, path, msg string) {
	t.Helper()
	for _, g := range got {
		if strings.HasPrefix(g, path+": ") && strings.Contains(g, msg) {
			return
		}
	}
	t.Errorf("no problem at %s containing %q; got:\n  %s", path, msg, strings.Join(got, "\n  "))
}

func TestImageSourcePolicy(t *testing.T) {
	const root = `ks_meta.image_data["/"].uri`
	tok, err := os.CreateTemp(t.TempDir(), "token")
	if err != nil {
		t.Fatal(err)
	}
	tok.Close()
	tests := []struct {
		name, uri string
		pol       ImagePolicy
		want      string // "" = accepted
	}{
		{"http", "http://10.20.0.2:8080/root.img.gz", ImagePolicy{}, ""},
		{"https", "https://images.example.invalid/root.img.gz", ImagePolicy{}, ""},
		{"file refused by default", "file:///srv/root.img.gz", ImagePolicy{}, "file:// images are refused"},
		{"absolute path refused", "/srv/root.img.gz", ImagePolicy{}, "scheme must be"},
		{"file allowed", "file:///srv/root.img.gz", ImagePolicy{AllowFile: true}, ""},
		{"the node's own disk", "file:///dev/vda", ImagePolicy{AllowFile: true}, "reading /dev is never allowed"},
		{"dot-dot into /dev", "file:///srv/../dev/vda", ImagePolicy{AllowFile: true}, "reading /dev is never allowed"},
		{"proc", "file:///proc/self/environ", ImagePolicy{AllowFile: true}, "reading /proc is never allowed"},
		{"sys", "file:///sys/firmware/efi/efivars", ImagePolicy{AllowFile: true}, "reading /sys is never allowed"},
		{"token file", "file://" + tok.Name(), ImagePolicy{AllowFile: true, Forbidden: []string{tok.Name()}}, "is never allowed"},
		{"state dir", "file:///run/imprint/provisioned.json", ImagePolicy{AllowFile: true, Forbidden: []string{"/run/imprint"}}, "reading /run/imprint is never allowed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := edit(t, func(m map[string]any) { rootImage(m)["uri"] = tt.uri })
			_, err := Prepare(context.Background(), doc, twoDisks, Options{FS: noFS{}, Images: tt.pol})
			if tt.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			var pe *Error
			if !errors.As(err, &pe) {
				t.Fatalf("Prepare = %v, want a refusal", err)
			}
			var got []string
			for _, p := range pe.Problems {
				got = append(got, p.String())
			}
			wantProblem(t, got, root, tt.want)
		})
	}
}

func TestRequireDigest(t *testing.T) {
	pol := Options{Images: ImagePolicy{RequireDigest: true}}
	got := problems(t, edit(t, nil), pol)
	wantProblem(t, got, `ks_meta.image_data["/"]`, "requires a digest")
	wantProblem(t, got, `ks_meta.image_data["/boot"]`, "requires a digest")

	sum := strings.Repeat("ab", 32)
	doc := edit(t, func(m map[string]any) {
		rootImage(m)["sha256"] = sum
		images(m)["/boot"].(map[string]any)["sha512"] = strings.Repeat("cd", 64)
	})
	pol.FS = noFS{}
	job, err := Prepare(context.Background(), doc, twoDisks, pol)
	if err != nil {
		t.Fatal(err)
	}
	for _, img := range job.Images {
		if img.Mount == "/" && img.SHA256 != sum {
			t.Errorf("root image sha256 = %q, want the document's", img.SHA256)
		}
	}
	got = problems(t, edit(t, func(m map[string]any) { rootImage(m)["sha256"] = "xyz" }), Options{})
	wantProblem(t, got, `ks_meta.image_data["/"].sha256`, "64 hex digits")
}

// The phone-home URL of the document wins over the agent's default, and
// reaches the cloud-config prepare renders.
func TestConfigdrivePhoneHome(t *testing.T) {
	tests := []struct{ name, doc, dflt, want string }{
		{"none", "", "", ""},
		{"agent default", "", "http://10.0.2.2:1/default", "http://10.0.2.2:1/default"},
		{"document", "http://10.0.2.2:8080/ph/node-1", "", "http://10.0.2.2:8080/ph/node-1"},
		{"document wins", "http://10.0.2.2:8080/ph/node-1", "http://10.0.2.2:1/default", "http://10.0.2.2:8080/ph/node-1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := edit(t, func(m map[string]any) {
				if tt.doc != "" {
					ksMeta(m)["phone_home_url"] = tt.doc
				}
			})
			job, err := Prepare(context.Background(), doc, twoDisks, Options{FS: noFS{}, Configdrive: configdrive.Options{PhoneHomeURL: tt.dflt}})
			if err != nil {
				t.Fatal(err)
			}
			cc := string(job.Configdrive.Content.CloudConfig)
			if got := strings.Contains(cc, "phone_home:"); got != (tt.want != "") {
				t.Errorf("cloud-config has phone_home: %v, want %v:\n%s", got, tt.want != "", cc)
			}
			if tt.want != "" && !strings.Contains(cc, tt.want) {
				t.Errorf("cloud-config lacks %q:\n%s", tt.want, cc)
			}
		})
	}
}

// Document prepares an already parsed document the same way.
func TestDocument(t *testing.T) {
	doc, err := provision.ParseAndValidate(edit(t, nil))
	if err != nil {
		t.Fatal(err)
	}
	job, err := Document(context.Background(), doc, twoDisks, Options{FS: noFS{}})
	if err != nil {
		t.Fatal(err)
	}
	if err := job.Devices.Check("/dev/vdb", "test"); !errors.Is(err, devguard.ErrNotPlanned) {
		t.Errorf("Check(/dev/vdb) = %v, want ErrNotPlanned", err)
	}
}

// TestConfigdriveFormat: the document's ks_meta.configdrive_format, else the
// agent's setting, else config-2 on vfat; an unknown name, or a format the
// planned partition cannot hold (ISO9660 on a 4096-byte-sector disk), is
// refused at prepare.
func TestConfigdriveFormat(t *testing.T) {
	fourK := &inventory.Inventory{Disks: []inventory.Disk{
		{Name: "vda", Path: "/dev/vda", SizeBytes: 100 << 30, LogicalSectorSize: 4096, PhysicalSectorSize: 4096},
	}}
	tests := []struct {
		name, doc string
		agent     configdrive.Format
		inv       *inventory.Inventory
		want      configdrive.Format
		problem   string
	}{
		{"default", "", "", twoDisks, configdrive.Config2VFAT, ""},
		{"agent setting", "", configdrive.NoCloudVFAT, twoDisks, configdrive.NoCloudVFAT, ""},
		{"document", "nocloud-iso", "", twoDisks, configdrive.NoCloudISO, ""},
		{"document wins", "config2-iso", configdrive.NoCloudVFAT, twoDisks, configdrive.Config2ISO, ""},
		{"unknown", "nocloud-ext4", "", twoDisks, "", `ks_meta.configdrive_format: format "nocloud-ext4": unknown`},
		{"does not fit", "nocloud-iso", "", fourK, "", "4096-byte"},
		{"vfat fits 4Kn", "nocloud-vfat", "", fourK, configdrive.NoCloudVFAT, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := edit(t, func(m map[string]any) {
				if tt.doc != "" {
					ksMeta(m)["configdrive_format"] = tt.doc
				}
			})
			job, err := Prepare(context.Background(), doc, tt.inv, Options{FS: noFS{}, ConfigdriveFormat: tt.agent})
			if tt.problem != "" {
				var pe *Error
				if !errors.As(err, &pe) || !strings.Contains(pe.Error(), tt.problem) {
					t.Fatalf("Prepare: %v, want a problem with %q", err, tt.problem)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if job.Configdrive.Format != tt.want {
				t.Errorf("format %s, want %s", job.Configdrive.Format, tt.want)
			}
		})
	}
}

// TestMoves: the job carries the move of every nested filesystem the
// root image fills, and none into /boot (its own image).
func TestMoves(t *testing.T) {
	job, err := Prepare(context.Background(), edit(t, nil), twoDisks, Options{FS: noFS{}})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, m := range job.Moves {
		if m.FromMount != "/" || m.FromDevice != "/dev/mapper/os-root" || !job.Devices.Contains(m.ToDevice) {
			t.Errorf("move %s", m)
		}
		got[m.ToMount] = m.Path
	}
	for _, mnt := range []string{"/var/log", "/var/lib/mysql"} {
		if got[mnt] != mnt[1:] {
			t.Errorf("no move into %s: %v", mnt, got)
		}
	}
	if _, ok := got["/boot"]; ok {
		t.Errorf("/boot is an image target, moved into: %v", got)
	}
}
