package movefiles

import (
	"encoding/json"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/imprint-dev/imprint/partition"
)

func fs(dev, mount, typ string, image bool) partition.FS {
	return partition.FS{Device: dev, Mount: mount, Type: typ, Image: image}
}

// short renders a plan as "from:path->to" steps.
func short(ms []Move) []string {
	out := []string{}
	for _, m := range ms {
		out = append(out, m.FromMount+":"+m.Path+"->"+m.ToMount)
	}
	return out
}

func TestPlan(t *testing.T) {
	for _, tc := range []struct {
		name string
		fss  []partition.FS
		want []string
	}{
		{"nothing below the root", []partition.FS{fs("/dev/os/root", "/", "ext4", true), fs("/dev/os/swap", "swap", "swap", false)}, []string{}},
		{"fuel 9.0 controller: deepest first, /boot is an image",
			[]partition.FS{
				fs("/dev/vda3", "/boot", "ext2", true),
				fs("/dev/mapper/os-root", "/", "ext4", true),
				fs("/dev/mapper/os-swap", "swap", "swap", false),
				fs("/dev/mapper/logs-log", "/var/log", "ext4", false),
				fs("/dev/mapper/mysql-root", "/var/lib/mysql", "xfs", false),
				fs("/dev/mapper/horizon-horizonstore", "/var/lib/horizon", "xfs", false),
				fs("/dev/mapper/image-glance", "/var/lib/glance", "xfs", false),
			},
			[]string{"/:var/lib/glance->/var/lib/glance", "/:var/lib/horizon->/var/lib/horizon", "/:var/lib/mysql->/var/lib/mysql", "/:var/log->/var/log"}},
		{"nested children of children through plain filesystems: each byte copied once",
			[]partition.FS{
				fs("r", "/", "ext4", true),
				fs("v", "/var", "xfs", false),
				fs("l", "/var/log", "ext4", false),
				fs("a", "/var/log/audit", "ext4", false),
			},
			[]string{"/:var/log/audit->/var/log/audit", "/:var/log->/var/log", "/:var->/var"}},
		{"an image-filled filesystem in between is the source below it, and never a destination",
			[]partition.FS{
				fs("r", "/", "ext4", true),
				fs("v", "/var", "ext4", true),
				fs("l", "/var/log", "ext4", false),
				fs("a", "/var/log/audit", "ext4", false),
			},
			[]string{"/var:log/audit->/var/log/audit", "/var:log->/var/log"}},
		{"a kept filesystem is never written", []partition.FS{fs("r", "/", "ext4", true), {Device: "m", Mount: "/var/lib/mysql", Type: "xfs", KeepData: true}, fs("l", "/var/log", "ext4", false)},
			[]string{"/:var/log->/var/log"}},
		{"no image above: nothing to move", []partition.FS{fs("r", "/", "ext4", false), fs("v", "/var", "ext4", false)}, []string{}},
		{"unclean mount points, unmounted and swap volumes take no part",
			[]partition.FS{fs("r", "/", "ext4", true), fs("t", "/tmp/", "ext2", false), fs("n", "", "xfs", false), fs("s", "swap", "swap", false)},
			[]string{"/:tmp->/tmp"}},
		{"siblings at one depth by name", []partition.FS{fs("r", "/", "ext4", true), fs("b", "/srv/b", "ext4", false), fs("a", "/srv/a", "ext4", false), fs("h", "/home", "ext4", false)},
			[]string{"/:srv/a->/srv/a", "/:srv/b->/srv/b", "/:home->/home"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := short(Plan(tc.fss)); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Plan =\n %q\nwant\n %q", got, tc.want)
			}
		})
	}
}

// TestPlanFuel90Sample plans examples/provision.json (Fuel 9.0's
// single-disk controller) and checks which devices each move reads and
// writes.
func TestPlanFuel90Sample(t *testing.T) {
	b, err := os.ReadFile("../examples/provision.json")
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		KsMeta struct {
			PmData struct {
				KsSpaces []struct {
					Type    string `json:"type"`
					ID      string `json:"id"`
					Volumes []struct {
						Name  string `json:"name"`
						Mount string `json:"mount"`
						Size  int    `json:"size"`
					} `json:"volumes"`
				} `json:"ks_spaces"`
			} `json:"pm_data"`
			ImageData map[string]json.RawMessage `json:"image_data"`
		} `json:"ks_meta"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	var fss []partition.FS
	for _, s := range d.KsMeta.PmData.KsSpaces {
		if s.Type != "vg" {
			continue
		}
		for _, v := range s.Volumes {
			if v.Size <= 0 || !strings.HasPrefix(v.Mount, "/") {
				continue
			}
			_, img := d.KsMeta.ImageData[v.Mount]
			fss = append(fss, fs("/dev/mapper/"+s.ID+"-"+v.Name, v.Mount, "ext4", img))
		}
	}
	got := Plan(fss)
	want := map[string]string{"/var/log": "/dev/mapper/logs-log", "/var/lib/mysql": "/dev/mapper/mysql-root"}
	for mount, dev := range want {
		found := false
		for _, m := range got {
			if m.ToMount == mount {
				found = true
				if m.ToDevice != dev || m.FromDevice != "/dev/mapper/os-root" || m.FromMount != "/" || m.Path != mount[1:] {
					t.Errorf("move to %s: %+v", mount, m)
				}
			}
		}
		if !found {
			t.Errorf("no move into %s; plan %v", mount, short(got))
		}
	}
}
