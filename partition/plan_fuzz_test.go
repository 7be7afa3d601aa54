package partition

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/imprint-dev/imprint/internal/membudget"
	"github.com/imprint-dev/imprint/provision"
)

// FuzzParseValidatePlan: parse → validate → plan never panics, whatever the
// bytes; and every plan computed from a valid document is consistent (see
// planConsistent) and survives Scheme → "partitioning" → NewPlan unchanged.
// The seed corpus is the fuel-agent fixtures, each ks_spaces variant, and
// testdata/fuzz/FuzzParseValidatePlan.
func FuzzParseValidatePlan(f *testing.F) {
	// Seeds are compact documents (only what planning reads, which is
	// enough to validate): the fuzzer minimizes every new input, and
	// minimizing the 10 KiB fixtures would take most of its time.
	compact := func(src map[string]any, spaces any) []byte {
		ks := src["ks_meta"].(map[string]any)
		pm := ks["pm_data"].(map[string]any)
		if spaces == nil {
			spaces = pm["ks_spaces"]
		}
		doc := map[string]any{
			"hostname": "node-1", "profile": src["profile"],
			"ks_meta": map[string]any{
				"pm_data":    map[string]any{"kernel_params": "", "ks_spaces": spaces},
				"image_data": ks["image_data"],
			},
		}
		if part, ok := src["partitioning"]; ok {
			doc["partitioning"] = part
		}
		out, err := json.Marshal(doc)
		if err != nil {
			f.Fatal(err)
		}
		return out
	}
	load := func(name string) map[string]any {
		data, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(data, &m); err != nil {
			f.Fatal(err)
		}
		return m
	}
	base := load("provision_sample_nailgun_3disks.json")
	f.Add(compact(base, nil))
	f.Add(compact(load("provision_fuel90_ubuntu_1disk.json"), nil))
	f.Add(compact(load("simple_nailgun_driver.json"), nil))
	variants := load("ks_spaces_variants.json")
	for name, spaces := range variants {
		if name != "_extra_volumes" {
			f.Add(compact(base, spaces))
		}
	}
	f.Add([]byte("hostname: n\nks_meta:\n  pm_data:\n    kernel_params: ''\n    ks_spaces:\n    - {type: disk, id: vda, name: vda, extra: [], size: 2000, free_space: 0,\n       volumes: [{type: partition, mount: /, size: 1000}]}\n  image_data: {/: {uri: 'file:///i', format: ext4, container: raw}}\n"))

	// Structured seeds: 0x01 then bytes driving planFuzzGenerate.
	f.Add([]byte{1, 0, 2, 3, 2, 4, 1, 2, 3, 4, 5, 6, 7, 8})
	f.Add([]byte{1, 3, 1, 2, 4, 4, 3, 2, 1, 0, 9, 8, 7, 6, 5, 4, 3, 2, 1, 1, 2, 3})
	f.Add([]byte("\x01 the quick brown fox jumps over the lazy dog 0123456789"))

	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 0 && data[0] == 1 {
			data = planFuzzGenerate(data[1:])
		}
		// Parsing and the four plans below stay within the per-input
		// memory budget: planning must not amplify a small document.
		membudget.Check(t, fmt.Sprintf("parse, validate and plan %d bytes", len(data)), membudget.ForInput(len(data)), func() {
			planFuzzOne(t, data)
		})
	})
}

// planFuzzOne is one FuzzParseValidatePlan input.
func planFuzzOne(t *testing.T, data []byte) {
	doc, verr := provision.ParseAndValidate(data)
	if doc == nil {
		return
	}
	// Plan invalid documents too: NewPlan must not trust validation.
	for _, inv := range [][]Device{nil, planFuzzInventory(doc)} {
		for _, opts := range []PlanOptions{DefaultPlanOptions(), {}} {
			p, err := NewPlan(doc, inv, opts)
			if err != nil {
				if p != nil {
					t.Fatalf("NewPlan returned a plan and an error: %v", err)
				}
				continue
			}
			_ = p.Scheme()
			if verr != nil || doc.Partitioning != nil {
				continue
			}
			if err := planConsistent(p, inv != nil); err != nil {
				t.Fatalf("inconsistent plan: %v", err)
			}
			planFuzzRoundTrip(t, doc, p, opts)
		}
	}
}

// planFuzzInventory makes an inventory holding every ks_spaces disk: big
// enough, found by its first by-id link, else by name.
func planFuzzInventory(doc *provision.Document) []Device {
	var inv []Device
	for _, s := range doc.KsMeta.PmData.KsSpaces {
		if s.Type != provision.SpaceDisk {
			continue
		}
		d := Device{Name: s.Name, Path: "/dev/" + s.Name, SizeMiB: provision.MaxSizeMiB * 4}
		for _, e := range s.Extra {
			d.Links = append(d.Links, "/dev/"+e)
		}
		inv = append(inv, d)
	}
	return inv
}

func planFuzzRoundTrip(t *testing.T, doc *provision.Document, p *Plan, opts PlanOptions) {
	data, err := json.Marshal(p.Scheme())
	if err != nil {
		t.Fatalf("marshal scheme: %v", err)
	}
	var s provision.PartitionScheme
	if err := json.Unmarshal(data, &s); err != nil {
		t.Fatalf("unmarshal scheme: %v", err)
	}
	cp := *doc
	cp.Partitioning = &s
	q, err := NewPlan(&cp, nil, opts)
	if err != nil {
		t.Fatalf("plan of the plan's own scheme: %v\n%s", err, data)
	}
	a, b := *p, *q
	for _, x := range []*Plan{&a, &b} {
		x.Warnings = nil
		disks := make([]Disk, len(x.Disks))
		copy(disks, x.Disks)
		for i := range disks {
			disks[i].SizeMiB, disks[i].LogicalSectorSize = 0, 0
			parts := make([]Partition, len(disks[i].Partitions))
			copy(parts, disks[i].Partitions)
			for j := range parts {
				parts[j].Name = ""
				// A journal's purpose is only known from ks_spaces; a
				// scheme has just its type GUID.
				if parts[j].Purpose == PurposeCephJournal {
					parts[j].Purpose = PurposeNone
				}
			}
			disks[i].Partitions = parts
		}
		x.Disks = disks
	}
	if !reflect.DeepEqual(a, b) {
		t.Fatalf("round trip changed the plan:\n%+v\n%+v", a, b)
	}
}

// planConsistent checks what every computed plan must satisfy.
func planConsistent(p *Plan, fit bool) error {
	parts := map[string]bool{}
	disks := map[string]bool{}
	for _, d := range p.Disks {
		if disks[d.Device] {
			return fmt.Errorf("disk %s twice", d.Device)
		}
		disks[d.Device] = true
		var prevEnd int64
		for i, part := range d.Partitions {
			if part.Number != i+1 || part.BeginMiB < 1 || part.BeginMiB >= part.EndMiB || (i > 0 && part.BeginMiB <= prevEnd) {
				return fmt.Errorf("disk %s: partition %d [%d, %d) after %d", d.Device, part.Number, part.BeginMiB, part.EndMiB, prevEnd)
			}
			if parts[part.Device] {
				return fmt.Errorf("partition %s twice", part.Device)
			}
			parts[part.Device] = true
			prevEnd = part.EndMiB
		}
		if fit && prevEnd+planBackupGPTMiB > d.SizeMiB {
			return fmt.Errorf("disk %s: ends at %d, size %d", d.Device, prevEnd, d.SizeMiB)
		}
	}
	mds := map[string]bool{}
	for _, md := range p.MDs {
		mds[md.Device] = true
		for _, m := range md.Members {
			if !parts[m] {
				return fmt.Errorf("md %s: member %s is no planned partition", md.Device, m)
			}
		}
	}
	pvs := map[string]string{}
	for _, pv := range p.PVs {
		if !parts[pv.Device] {
			return fmt.Errorf("pv %s is no planned partition", pv.Device)
		}
		if pv.MetadataSizeMiB < 1 || pv.MetadataCopies != 2 {
			return fmt.Errorf("pv %s: metadata %d × %d", pv.Device, pv.MetadataSizeMiB, pv.MetadataCopies)
		}
		pvs[pv.Device] = pv.VG
	}
	vgs := map[string]bool{}
	for _, vg := range p.VGs {
		if len(vg.PVs) == 0 {
			return fmt.Errorf("vg %s without pv", vg.Name)
		}
		for _, pv := range vg.PVs {
			if pvs[pv] != vg.Name {
				return fmt.Errorf("vg %s: pv %s belongs to %q", vg.Name, pv, pvs[pv])
			}
		}
		vgs[vg.Name] = true
	}
	lvs := map[string]bool{}
	for _, lv := range p.LVs {
		if !vgs[lv.VG] || lv.SizeMiB <= 0 {
			return fmt.Errorf("lv %s/%s (%d MiB): no such vg", lv.VG, lv.Name, lv.SizeMiB)
		}
		lvs[lv.Device] = true
	}
	fss := map[string]bool{}
	for _, fs := range p.FSs {
		if !parts[fs.Device] && !mds[fs.Device] && !lvs[fs.Device] {
			return fmt.Errorf("fs on %s: no such device", fs.Device)
		}
		fss[fs.Device] = true
	}
	for _, img := range p.Images {
		if !fss[img.Device] {
			return fmt.Errorf("image %s → %s: no filesystem there", img.Mount, img.Device)
		}
	}
	if p.Configdrive != "" && !parts[p.Configdrive] {
		return fmt.Errorf("configdrive %s is no planned partition", p.Configdrive)
	}
	for _, b := range p.Bootloader {
		if !disks[b] {
			return fmt.Errorf("bootloader on %s, not a planned disk", b)
		}
	}
	return nil
}

// planFuzzGenerate turns fuzz bytes into a provision document built from
// small vocabularies (names, sizes, mounts, volume types), mostly valid, so
// that the fuzzer explores layouts rather than JSON syntax.
func planFuzzGenerate(b []byte) []byte {
	next := func() int {
		if len(b) == 0 {
			return 0
		}
		c := int(b[0])
		b = b[1:]
		return c
	}
	pick := func(xs ...string) string { return xs[next()%len(xs)] }
	// take picks from a pool without replacement ("" once empty).
	take := func(pool *[]string) string {
		if len(*pool) == 0 {
			return ""
		}
		i := next() % len(*pool)
		x := (*pool)[i]
		*pool = append((*pool)[:i:i], (*pool)[i+1:]...)
		return x
	}
	sizes := []int64{0, 1, 24, 200, 1000, 20000, 65535}
	size := func() int64 { return sizes[next()%len(sizes)] }
	type obj = map[string]any

	var vgs []string
	for _, vg := range []string{"os", "image", "vm"} {
		if next()%3 != 0 {
			vgs = append(vgs, vg)
		}
	}
	names := []string{"sda", "sdb", "vda", "nvme0n1", "nvme1n1", "md123", "mapper/mpatha", "cciss/c0d0", "loop0"}
	mounts := []string{"/", "/boot", "/tmp", "/var", "/var/lib/glance", "/srv"}
	hasRoot := false
	spaces := []any{}
	for i := range 1 + next()%4 {
		name := take(&names)
		vols := []any{}
		var sum int64
		for range next() % 7 {
			v := obj{"type": pick("partition", "raid", "pv", "boot", "lvm_meta_pool", "pv", "partition"), "size": size()}
			switch v["type"] {
			case "pv":
				if len(vgs) == 0 {
					continue
				}
				v["vg"] = vgs[next()%len(vgs)]
				v["lvm_meta_size"] = []int{64, 64, 64, 10, 8}[next()%5]
			case "partition", "raid":
				m := pick("mount", "mount", "mount", "swap", "none")
				if m == "mount" {
					if m = take(&mounts); m == "" {
						m = "none"
					}
				}
				if m == "/" {
					hasRoot = true
				}
				v["mount"] = m
				if fs := pick("", "ext2", "ext4", "xfs", "swap", "none"); fs != "" {
					v["file_system"] = fs
				}
				if n := pick("", "", "", "Boot", "ceph", "cephjournal"); n != "" {
					v["name"] = n
				}
				if next()%5 == 0 {
					v["disk_label"] = pick("a", "a-very-long-label")
				}
			}
			if next()%9 == 0 {
				v["keep_data"] = true
			}
			sum += v["size"].(int64)
			vols = append(vols, v)
		}
		if i == 0 && !hasRoot && next()%4 != 0 {
			for k, m := range mounts {
				if m == "/" {
					mounts = append(mounts[:k:k], mounts[k+1:]...)
					break
				}
			}
			vols = append(vols, obj{"type": "partition", "mount": "/", "file_system": "ext4", "size": int64(5000)})
			sum += 5000
			hasRoot = true
		}
		dsize := sum + []int64{0, 300, 5000, 70000}[next()%4]
		if next()%10 == 0 {
			dsize = 0
		}
		d := obj{"type": "disk", "id": name, "name": name, "size": dsize, "free_space": 0, "extra": []string{}, "volumes": vols}
		if next()%2 == 0 {
			d["extra"] = []string{"disk/by-id/wwn-" + name}
		}
		if next()%6 == 0 {
			d["bootable"] = true
		}
		spaces = append(spaces, d)
	}
	for _, vg := range vgs {
		lvs := []any{}
		for range next() % 3 {
			lv := obj{"type": "lv", "name": pick("root", "swap", "glance", "my-lv"), "size": []int64{0, 4, 100, 1000}[next()%4]}
			m := pick("swap", "none", "", "mount", "mount")
			if m == "mount" {
				m = take(&mounts)
			}
			if m == "/" {
				hasRoot = true
			}
			if m != "" {
				lv["mount"] = m
			}
			lvs = append(lvs, lv)
		}
		spaces = append(spaces, obj{"type": "vg", "id": vg, "volumes": lvs})
	}
	images := obj{"/": obj{"uri": "http://10.20.0.2/r.img.gz", "format": "ext4", "container": "gzip"}}
	if next()%4 == 1 {
		images["/boot"] = obj{"uri": "http://10.20.0.2/b.img.gz", "format": "ext2", "container": "gzip"}
	}
	doc := obj{
		"hostname": "node-1",
		"profile":  pick("ubuntu_1404_x86_64", "centos-x86_64", "centos7-x86_64"),
		"ks_meta":  obj{"pm_data": obj{"kernel_params": "", "ks_spaces": spaces}, "image_data": images},
	}
	out, _ := json.Marshal(doc)
	return out
}
