//go:build vm

package partition_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/imprint-dev/imprint/internal/testenv"
	"github.com/imprint-dev/imprint/internal/vmtest"
	"github.com/imprint-dev/imprint/partition"
)

// Host-side checks of the disk images a VM test's guest laid a plan onto:
// the GPT (go-diskfs and sgdisk -v), md superblocks (mdadm --examine), LVM
// (the host's lvm reading the PVs through read-only offset loop devices)
// and every filesystem at its byte offset in the image (blkid -p -O,
// dumpe2fs). No host md, dm or partition scan is needed.

func vmRequireHostTools(t *testing.T) {
	t.Helper()
	testenv.RequireTool(t, "sgdisk", "blkid", "mdadm", "lvm", "losetup", "dumpe2fs", "dd")
}

// vmRegion is where a planned device's bytes start in a disk image.
type vmRegion struct {
	img       string
	off, size int64
}

// vmCheckHost checks the images (imgs[i] is plan.Disks[i]) hold exactly
// the plan.
func vmCheckHost(t *testing.T, plan *partition.Plan, imgs []string) {
	t.Helper()
	if len(imgs) != len(plan.Disks) {
		t.Fatalf("%d images for %d planned disks", len(imgs), len(plan.Disks))
	}
	regions := vmCheckGPT(t, plan, imgs)
	for _, md := range plan.MDs {
		regions[md.Device] = vmCheckMD(t, md, regions)
	}
	for dev, r := range vmCheckLVM(t, plan, regions) {
		regions[dev] = r
	}
	vmCheckFSs(t, plan, regions)
}

// vmCheckGPT compares each image's GPT with the plan, to the sector, type
// GUIDs included, and has sgdisk verify both tables. It returns where
// every planned partition lies.
func vmCheckGPT(t *testing.T, plan *partition.Plan, imgs []string) map[string]vmRegion {
	t.Helper()
	regions := map[string]vmRegion{}
	for i, d := range plan.Disks {
		parts, err := vmtest.Partitions(imgs[i])
		if err != nil {
			t.Fatal(err)
		}
		if len(parts) != len(d.Partitions) {
			t.Fatalf("%s: %d partitions on disk, plan has %d", d.Device, len(parts), len(d.Partitions))
		}
		for j, p := range d.Partitions {
			got := parts[j]
			if got.Number != p.Number || got.StartBytes != p.BeginMiB<<20 || got.StartBytes+got.SizeBytes != p.EndMiB<<20 {
				t.Errorf("%s: partition %d on disk: #%d [%d, %d) bytes; plan [%d, %d) MiB", d.Device, p.Number, got.Number, got.StartBytes, got.StartBytes+got.SizeBytes, p.BeginMiB, p.EndMiB)
			}
			if !strings.EqualFold(got.Type, p.TypeGUID) {
				t.Errorf("%s: type GUID %s, plan %s", p.Device, got.Type, p.TypeGUID)
			}
			regions[p.Device] = vmRegion{imgs[i], p.BeginMiB << 20, (p.EndMiB - p.BeginMiB) << 20}
		}
		out, err := exec.Command("sgdisk", "-v", imgs[i]).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "No problems found") {
			t.Errorf("sgdisk -v %s (%s): %v\n%s", imgs[i], d.Device, err, out)
		}
	}
	t.Logf("GPT: %d disks exact to the sector, sgdisk -v clean", len(plan.Disks))
	return regions
}

var vmDataOffset = regexp.MustCompile(`Data Offset : (\d+) sectors`)

// vmCheckMD checks each member carries the md superblock (level, metadata)
// and returns where the array's data starts on its first member.
func vmCheckMD(t *testing.T, md partition.MD, regions map[string]vmRegion) vmRegion {
	t.Helper()
	var data vmRegion
	for i, m := range md.Members {
		r, ok := regions[m]
		if !ok {
			t.Fatalf("md %s: member %s is not a planned partition", md.Device, m)
		}
		slice := filepath.Join(t.TempDir(), "member.img")
		if out, err := exec.Command("dd", "if="+r.img, "of="+slice, "bs=1M", "skip="+strconv.FormatInt(r.off>>20, 10),
			"count="+strconv.FormatInt(r.size>>20, 10), "status=none").CombinedOutput(); err != nil {
			t.Fatalf("dd: %v %s", err, out)
		}
		out, err := exec.Command("mdadm", "--examine", slice).CombinedOutput()
		os.Remove(slice)
		version := "1.2"
		if md.Metadata == "0.90" {
			version = "0.90"
		}
		if err != nil || !strings.Contains(string(out), "Raid Level : raid1") || !strings.Contains(string(out), "Version : "+version) ||
			!strings.Contains(string(out), fmt.Sprintf("Raid Devices : %d", len(md.Members))) {
			t.Errorf("mdadm --examine %s: %v\n%s", m, err, out)
			continue
		}
		mo := vmDataOffset.FindStringSubmatch(string(out))
		if mo == nil {
			t.Errorf("%s: no data offset in\n%s", m, out)
			continue
		}
		do, _ := strconv.ParseInt(mo[1], 10, 64)
		if i == 0 {
			data = vmRegion{r.img, r.off + do*512, r.size - do*512}
		}
	}
	t.Logf("md %s: %d raid1 members", md.Device, len(md.Members))
	return data
}

// vmLVMReport runs an lvm report command and returns its rows.
func vmLVMReport(t *testing.T, conf string, args ...string) []map[string]string {
	t.Helper()
	argv := append([]string{args[0], "--config", conf, "--reportformat", "json", "--units", "b", "--nosuffix"}, args[1:]...)
	out, err := exec.Command("lvm", argv...).Output()
	if err != nil {
		stderr := ""
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("lvm %s: %v\n%s", strings.Join(argv, " "), err, stderr)
	}
	var rep struct {
		Report []map[string][]map[string]string `json:"report"`
	}
	if err := json.Unmarshal(out, &rep); err != nil {
		t.Fatalf("lvm %s: %v\n%s", args[0], err, out)
	}
	var rows []map[string]string
	for _, r := range rep.Report {
		for _, list := range r {
			rows = append(rows, list...)
		}
	}
	return rows
}

func vmInt(t *testing.T, s string) int64 {
	t.Helper()
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil {
		t.Fatalf("lvm report number %q: %v", s, err)
	}
	return n
}

// vmCheckLVM reads the PVs with the host's lvm (read-only loop devices over
// the PV partitions of the images, nothing else scanned): every planned PV
// belongs to its VG with 2 metadata areas of at least the planned size,
// every VG has exactly its planned PVs and LVs, every LV its planned size
// (rounded up to whole extents). It returns where each LV's first extent
// lies in the images.
func vmCheckLVM(t *testing.T, plan *partition.Plan, regions map[string]vmRegion) map[string]vmRegion {
	t.Helper()
	if len(plan.PVs) == 0 {
		return nil
	}
	loopPart := map[string]string{} // loop device → planned PV partition
	var filter []string
	for _, pv := range plan.PVs {
		r := regions[pv.Device]
		out, err := exec.Command("losetup", "--find", "--show", "--read-only", "--offset", strconv.FormatInt(r.off, 10),
			"--sizelimit", strconv.FormatInt(r.size, 10), r.img).Output()
		if err != nil {
			t.Fatalf("losetup %s: %v", pv.Device, err)
		}
		dev := strings.TrimSpace(string(out))
		t.Cleanup(func() { exec.Command("losetup", "-d", dev).Run() })
		loopPart[dev] = pv.Device
		filter = append(filter, fmt.Sprintf(`"a|^%s$|"`, dev))
	}
	filter = append(filter, `"r|.*|"`)
	f := "[ " + strings.Join(filter, ", ") + " ]"
	conf := `devices { obtain_device_list_from_udev = 0 external_device_info_source = "none" use_devicesfile = 0 ` +
		`filter = ` + f + ` global_filter = ` + f + ` } global { event_activation = 0 } ` +
		`activation { udev_rules = 0 udev_sync = 0 monitoring = 0 }`

	pvStart := map[string]int64{} // PV partition → first extent's offset in it
	unseen := map[string]string{}
	for dev, part := range loopPart {
		unseen[dev] = part
	}
	for _, row := range vmLVMReport(t, conf, "pvs", "-o", "pv_name,vg_name,pe_start,pv_mda_count,pv_mda_size") {
		part, ok := loopPart[row["pv_name"]]
		if !ok {
			t.Errorf("pvs: unexpected PV %v", row)
			continue
		}
		var want partition.PV
		for _, pv := range plan.PVs {
			if pv.Device == part {
				want = pv
			}
		}
		if row["vg_name"] != want.VG || vmInt(t, row["pv_mda_count"]) != int64(want.MetadataCopies) || vmInt(t, row["pv_mda_size"]) < want.MetadataSizeMiB<<20 {
			t.Errorf("pv %s: %v; plan vg %s, %d metadata areas of %d MiB", part, row, want.VG, want.MetadataCopies, want.MetadataSizeMiB)
		}
		pvStart[part] = vmInt(t, row["pe_start"])
		delete(unseen, row["pv_name"])
	}
	for dev, part := range unseen {
		t.Errorf("pvs does not list %s (%s)", part, dev)
	}
	vgPVs := map[string]int{}
	for _, row := range vmLVMReport(t, conf, "vgs", "-o", "vg_name,pv_count") {
		vgPVs[row["vg_name"]] = int(vmInt(t, row["pv_count"]))
	}
	for _, vg := range plan.VGs {
		if vgPVs[vg.Name] != len(vg.PVs) {
			t.Errorf("vg %s: %d PVs, plan %d (%v)", vg.Name, vgPVs[vg.Name], len(vg.PVs), vg.PVs)
		}
		delete(vgPVs, vg.Name)
	}
	for vg := range vgPVs {
		t.Errorf("vg %s is not planned", vg)
	}

	// Segments: where each LV's first extent is.
	lvSize := map[string]int64{}
	lvRegions := map[string]vmRegion{}
	for _, row := range vmLVMReport(t, conf, "lvs", "--segments", "-o", "vg_name,lv_name,lv_size,vg_extent_size,seg_start_pe,seg_pe_ranges") {
		key := row["vg_name"] + "/" + row["lv_name"]
		lvSize[key] = vmInt(t, row["lv_size"])
		ext := vmInt(t, row["vg_extent_size"])
		if vmInt(t, row["seg_start_pe"]) != 0 {
			continue
		}
		// seg_pe_ranges: "/dev/loop5:0-3839"
		rng := strings.Fields(row["seg_pe_ranges"])
		if len(rng) == 0 {
			t.Errorf("lv %s: no PE ranges in %v", key, row)
			continue
		}
		dev, pes, _ := strings.Cut(rng[0], ":")
		first, _, _ := strings.Cut(pes, "-")
		part, ok := loopPart[dev]
		if !ok {
			t.Errorf("lv %s: first segment on %s, not a planned PV", key, dev)
			continue
		}
		r := regions[part]
		lvRegions[key] = vmRegion{r.img, r.off + pvStart[part] + vmInt(t, first)*ext, lvSize[key]}
	}
	byDevice := map[string]vmRegion{}
	for _, lv := range plan.LVs {
		key := lv.VG + "/" + lv.Name
		got, ok := lvSize[key]
		if !ok {
			t.Errorf("lv %s missing", key)
			continue
		}
		const extent = 4 << 20 // lvm's default extent size
		if want := (lv.SizeMiB<<20 + extent - 1) / extent * extent; got != want {
			t.Errorf("lv %s: %d bytes, plan %d MiB (%d bytes in 4 MiB extents)", key, got, lv.SizeMiB, want)
		}
		byDevice[lv.Device] = lvRegions[key]
		delete(lvSize, key)
	}
	for key := range lvSize {
		t.Errorf("lv %s is not planned", key)
	}
	t.Logf("LVM: %d PVs, %d VGs, %d LVs as planned", len(plan.PVs), len(plan.VGs), len(plan.LVs))
	return byDevice
}

// vmCheckFSs probes each planned filesystem at its offset: made ones have
// the planned type (and label; ext ones fill their device), image targets
// have none (no mkfs, the image fills them).
func vmCheckFSs(t *testing.T, plan *partition.Plan, regions map[string]vmRegion) {
	t.Helper()
	blockCount := regexp.MustCompile(`(?m)^Block count:\s+(\d+)`)
	blockSize := regexp.MustCompile(`(?m)^Block size:\s+(\d+)`)
	for _, fs := range plan.FSs {
		r, ok := regions[fs.Device]
		if !ok || r.img == "" {
			t.Errorf("fs %s (%s): device not located in the images", fs.Device, fs.Mount)
			continue
		}
		p, err := vmtest.Probe(r.img, r.off)
		if err != nil {
			t.Errorf("fs %s: %v", fs.Device, err)
			continue
		}
		if fs.Image {
			if p["TYPE"] != "" {
				t.Errorf("fs %s (%s) is an image target but carries %v", fs.Device, fs.Mount, p)
			} else {
				t.Logf("fs %s (%s): image target, no filesystem made", fs.Device, fs.Mount)
			}
			continue
		}
		if p["TYPE"] != fs.Type || fs.Label != "" && p["LABEL"] != fs.Label {
			t.Errorf("fs %s (%s): blkid %v, plan %s label %q", fs.Device, fs.Mount, p, fs.Type, fs.Label)
			continue
		}
		if strings.HasPrefix(fs.Type, "ext") {
			out, err := vmtest.Dumpe2fs(r.img, r.off)
			bc, bs := blockCount.FindStringSubmatch(out), blockSize.FindStringSubmatch(out)
			if err != nil || bc == nil || bs == nil {
				t.Errorf("dumpe2fs %s: %v\n%s", fs.Device, err, out)
				continue
			}
			if size := vmInt(t, bc[1]) * vmInt(t, bs[1]); size != r.size {
				t.Errorf("fs %s: %d bytes, its device has %d", fs.Device, size, r.size)
			}
		}
		t.Logf("fs %s (%s): %s at %s+%d", fs.Device, fs.Mount, p["TYPE"], filepath.Base(r.img), r.off)
	}
}
