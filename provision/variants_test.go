package provision

import (
	"encoding/json"
	"sort"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// ks_spaces_variants.json holds every *_KS_SPACES list of fuel-agent's
// tests/test_nailgun.py. Each is spliced into the Fuel 9.0 one-disk document
// (its image_data reduced to "/", which every real scheme provides; the
// /boot image would need a /boot volume that not every variant has) and
// must validate, or be rejected where fuel-agent rejects it.
func TestKsSpacesVariants(t *testing.T) {
	var variants map[string]json.RawMessage
	if err := json.Unmarshal(readFixture(t, "ks_spaces_variants.json"), &variants); err != nil {
		t.Fatal(err)
	}
	var extra map[string]any
	if err := json.Unmarshal(variants["_extra_volumes"], &extra); err != nil {
		t.Fatal(err)
	}
	delete(variants, "_extra_volumes")

	want := map[string][]string{
		"SINGLE_DISK_KS_SPACES":     nil, // keep_data on /
		"SECOND_DISK_OS_KS_SPACES":  nil, // first disk has only the boot reservation: left untouched
		"MPATH_DISK_KS_SPACES":      nil, // mapper/12312
		"NO_BOOT_KS_SPACES":         nil,
		"MD_RAID_KS_SPACES":         nil, // / on a one-member md, /boot raid as a plain partition
		"FIRST_DISK_HUGE_KS_SPACES": nil, // 2097153 MiB disk
		"ONLY_ROOTFS_IMAGE_SPACES":  nil, // Ironic: a single / partition
		"FIRST_DISK_NVME_KS_SPACES": nil,
		"ONLY_ONE_NVME_KS_SPACES":   nil,
		"MANY_HUGE_DISKS_KS_SPACES": nil,
		"LVM_META_POOL_KS_SPACES":   nil, // zero-size PVs and lvm_meta_pool on unallocated disks
		"FAKE_RAID_DISK_KS_SPACES":  nil, // md123 carries the os PV
		// fuel-agent's test feeds this list to the boot-disk selection
		// only. As a whole document it cannot be provisioned: its PVs name
		// VGs "os" and "vm" that are not declared (fuel-agent would create
		// empty VGs), so nothing is mounted at "/" and the "/" image has no
		// target; fuel-agent fails there (image_data without a file system:
		// AttributeError in the image scheme).
		"SINGLE_NVME_DISK_KS_SPACES": {
			`ks_meta.image_data["/"]: no volume is mounted at "/" to write this image to`,
			ks + `[0].volumes[3].vg: no volume group "os" is declared in ks_spaces`,
			ks + `[0].volumes[4].vg: no volume group "vm" is declared in ks_spaces`,
		},
	}
	names := make([]string, 0, len(variants))
	for n := range variants {
		names = append(names, n)
	}
	sort.Strings(names)
	if len(names) != len(want) {
		t.Errorf("%d variants in the fixture, %d expectations", len(names), len(want))
	}
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			w, ok := want[name]
			if !ok {
				t.Fatalf("no expectation for variant %s", name)
			}
			m := baseForVariants(t)
			var s []any
			if err := json.Unmarshal(variants[name], &s); err != nil {
				t.Fatal(err)
			}
			setSpaces(m, s)
			if diff := cmp.Diff(w, problemLines(t, encode(t, m))); diff != "" {
				t.Errorf("problems (-want +got):\n%s", diff)
			}
		})
	}

	// The SWIFT, CEPH_DATA and CEPH_JOURNAL volumes (disk_label null,
	// mount "none", type GUIDs, a zero-size journal) on a disk.
	t.Run("extra volumes", func(t *testing.T) {
		m := baseForVariants(t)
		var s []any
		if err := json.Unmarshal(variants["SINGLE_DISK_KS_SPACES"], &s); err != nil {
			t.Fatal(err)
		}
		disk := s[0].(map[string]any)
		disk["volumes"] = append(disk["volumes"].([]any), extra["SWIFT"], extra["CEPH_DATA"], extra["CEPH_JOURNAL"])
		setSpaces(m, s)
		if got := problemLines(t, encode(t, m)); got != nil {
			t.Errorf("problems: %q", got)
		}
	})
}

func baseForVariants(t *testing.T) map[string]any {
	m := generic(t, readFixture(t, "provision_fuel90_ubuntu_1disk.json"))
	delete(obj(t, m, "ks_meta", "image_data"), "/boot")
	return m
}
