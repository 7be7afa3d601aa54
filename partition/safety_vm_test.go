//go:build vm

package partition_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imprint-dev/imprint/api"
)

// vmSchemeDoc is nailgun_simple's document with a pre-computed scheme on
// disk alone (bios_grub, /boot, a PV of VG os with root, the configdrive),
// its images at imageURL; edit changes the generic "partitioning" object.
func vmSchemeDoc(t *testing.T, disk, imageURL string, edit func(p map[string]any)) []byte {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", "simple_nailgun_driver.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	for _, im := range m["ks_meta"].(map[string]any)["image_data"].(map[string]any) {
		im.(map[string]any)["uri"] = imageURL
	}
	part := func(n, begin, end int, flags []any, cd bool) map[string]any {
		return map[string]any{"name": disk + string(rune('0'+n)), "count": n, "device": disk, "begin": begin, "end": end,
			"partition_type": "primary", "flags": flags, "guid": nil, "configdrive": cd}
	}
	p := map[string]any{
		"parteds": []any{map[string]any{"name": disk, "label": "gpt", "install_bootloader": true, "partitions": []any{
			part(1, 1, 25, []any{"bios_grub"}, false),
			part(2, 25, 225, []any{}, false),
			part(3, 225, 4225, []any{}, false),
			part(4, 4225, 4245, []any{}, true),
		}}},
		"pvs": []any{map[string]any{"name": disk + "3", "metadatasize": 28, "metadatacopies": 2}},
		"vgs": []any{map[string]any{"name": "os", "pvnames": []any{disk + "3"}}},
		"lvs": []any{map[string]any{"name": "root", "vgname": "os", "size": 3000}},
		"mds": []any{},
		"fss": []any{
			map[string]any{"device": disk + "2", "fs_type": "ext2", "mount": "/boot", "fs_label": "", "fs_options": ""},
			map[string]any{"device": "/dev/mapper/os-root", "fs_type": "ext4", "mount": "/", "fs_label": "", "fs_options": ""},
		},
	}
	if edit != nil {
		edit(p)
	}
	m["partitioning"] = p
	out, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// vmSchemeAttacks posts, to the agent of a node whose document names only
// disk, scheme-mode documents trying each way to reach victim (a
// filesystem, the root image, a PV, an md member, a partition named on it,
// the configdrive, fs_options in several spellings, the whole disk): each
// must get 422 from POST /v1/plan and POST /v1/provision naming victim,
// and start no job. The caller checks victim's bytes afterwards.
func vmSchemeAttacks(t *testing.T, r *vmRig, disk, victim string) {
	t.Helper()
	fss := func(p map[string]any, i int) map[string]any { return p["fss"].([]any)[i].(map[string]any) }
	parts := func(p map[string]any) []any {
		return p["parteds"].([]any)[0].(map[string]any)["partitions"].([]any)
	}
	add := func(p map[string]any, key string, v any) { p[key] = append(p[key].([]any), v) }
	attacks := map[string]func(p map[string]any){
		"filesystem": func(p map[string]any) {
			add(p, "fss", map[string]any{"device": victim + "1", "fs_type": "ext4", "mount": "/srv", "fs_label": "", "fs_options": ""})
		},
		"root image": func(p map[string]any) { fss(p, 1)["device"] = victim + "1" },
		"whole disk": func(p map[string]any) {
			add(p, "fss", map[string]any{"device": victim, "fs_type": "xfs", "mount": "/data", "fs_label": "", "fs_options": ""})
		},
		"pv": func(p map[string]any) {
			add(p, "pvs", map[string]any{"name": victim + "1", "metadatasize": 28, "metadatacopies": 2})
		},
		"md member": func(p map[string]any) {
			add(p, "mds", map[string]any{"name": "/dev/md0", "level": "mirror", "devices": []any{disk + "2", victim + "2"}, "spares": []any{}})
			fss(p, 0)["device"] = "/dev/md0"
		},
		"partition named on victim": func(p map[string]any) {
			parts(p)[1].(map[string]any)["name"] = victim + "2"
			fss(p, 0)["device"] = victim + "2"
		},
		"configdrive":          func(p map[string]any) { parts(p)[3].(map[string]any)["name"] = victim + "4" },
		"fs_options logdev":    func(p map[string]any) { fss(p, 0)["fs_options"] = "-l logdev=" + victim },
		"fs_options -J device": func(p map[string]any) { fss(p, 0)["fs_options"] = "-J device=" + victim },
		"fs_options glued":     func(p map[string]any) { fss(p, 0)["fs_options"] = "-Ejournal_device=" + victim + ",stride=4" },
	}
	// The valid scheme itself is accepted (POST /v1/plan only).
	if _, err := r.c.Plan(r.ctx, vmSchemeDoc(t, disk, r.imageURL, nil)); err != nil {
		t.Fatalf("the valid scheme document was refused: %v", err)
	}
	for name, edit := range attacks {
		doc := vmSchemeDoc(t, disk, r.imageURL, edit)
		for _, call := range []string{"plan", "provision"} {
			var err error
			if call == "plan" {
				_, err = r.c.Plan(r.ctx, doc)
			} else {
				_, err = r.c.Provision(r.ctx, doc, true)
			}
			var re *api.ResponseError
			if !errors.As(err, &re) || re.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(err.Error(), victim) {
				t.Errorf("%s: POST /v1/%s = %v, want 422 naming %s", name, call, err, victim)
			}
		}
	}
	st, err := r.c.Status(r.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.State != api.StateIdle {
		t.Errorf("after the refused documents the agent's job is %q, want idle (no job started)", st.State)
	}
	t.Logf("%d scheme-mode documents reaching %s: each 422 on plan and provision, no job started", len(attacks), victim)
}
