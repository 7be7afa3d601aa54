//go:build vm

package partition_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/imprint-dev/imprint/api"
	"github.com/imprint-dev/imprint/internal/vmtest"
	"github.com/imprint-dev/imprint/partition"
)

// vmDoc is the Fuel 9.0 fixture with two 2 GiB disks: /boot on vda, an md
// mirror for /srv (xfs) across both, VG os on a PV of each disk with root
// (ext4, an image target) and swap. The image URL answers 404, so each job
// stops at the images step, after the disks step laid the plan out.
func vmDoc(t *testing.T, imageURL string) []byte {
	t.Helper()
	raw, err := os.ReadFile("testdata/provision_fuel90_ubuntu_1disk.json")
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	disk := func(name string, boot bool) map[string]any {
		vols := []any{map[string]any{"type": "boot", "size": 300}}
		if boot {
			vols = append(vols, map[string]any{"type": "partition", "mount": "/boot", "file_system": "ext2", "size": 200})
		}
		vols = append(vols,
			map[string]any{"type": "raid", "mount": "/srv", "file_system": "xfs", "size": 400},
			map[string]any{"type": "lvm_meta_pool", "size": 0},
			map[string]any{"type": "pv", "vg": "os", "lvm_meta_size": 64, "size": 900},
		)
		return map[string]any{"type": "disk", "id": name, "name": name, "extra": []any{}, "size": 2048, "free_space": 1500, "volumes": vols}
	}
	ks := doc["ks_meta"].(map[string]any)
	ks["pm_data"].(map[string]any)["ks_spaces"] = []any{
		disk("vda", true), disk("vdb", false),
		map[string]any{"type": "vg", "id": "os", "label": "Base System", "min_size": 1200, "_allocate_size": "min", "volumes": []any{
			map[string]any{"type": "lv", "name": "root", "mount": "/", "file_system": "ext4", "size": 1100},
			map[string]any{"type": "lv", "name": "swap", "mount": "swap", "file_system": "swap", "size": 300},
		}},
	}
	ks["image_data"] = map[string]any{"/": map[string]any{"uri": imageURL, "format": "ext4", "container": "gzip"}}
	out, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestVMApplyMDLVM applies a two-disk plan with md and LVM in the real
// ramdisk (BLKRRPART and kernel partition nodes, mdadm, lvm without udev,
// mkfs), twice (the second run tears the first one's active md and LVM
// down), then checks the disks from the host.
func TestVMApplyMDLVM(t *testing.T) {
	for _, tool := range []string{"sgdisk", "blkid", "mdadm", "lvm", "losetup", "dumpe2fs"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not found", tool)
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.NotFoundHandler()}
	go srv.Serve(ln)
	defer srv.Close()
	doc := vmDoc(t, fmt.Sprintf("http://10.0.2.2:%d/root.img.gz", ln.Addr().(*net.TCPAddr).Port))

	vm := vmtest.Start(t, vmtest.Options{Disks: []vmtest.Disk{{Size: 2 << 30, Serial: "IMPRINT-VDA"}, {Size: 2 << 30, Serial: "IMPRINT-VDB"}}, BootTimeout: 300 * time.Second})
	c := &api.Client{URL: vm.BaseURL, Token: vm.Token, HTTP: &http.Client{Timeout: 60 * time.Second}}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	plan, err := c.Plan(ctx, doc)
	if err != nil {
		t.Fatalf("plan: %v", err)
	}
	if len(plan.Disks) != 2 || len(plan.MDs) != 1 || len(plan.VGs) != 1 {
		t.Fatalf("plan: %+v", plan)
	}

	for round := 1; round <= 2; round++ {
		r, err := c.Provision(ctx, doc, false)
		if err != nil {
			t.Fatalf("round %d: provision: %v", round, err)
		}
		var st *api.Status
		for {
			st, err = c.Status(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if st.ID == r.ID && (st.State == api.StateSucceeded || st.State == api.StateFailed) {
				break
			}
			select {
			case <-ctx.Done():
				t.Fatalf("round %d: job did not finish\n%s", round, vm.Tail(80))
			case <-time.After(2 * time.Second):
			}
		}
		disks := ""
		for _, s := range st.Steps {
			if s.Name == "disks" {
				disks = s.State
			}
		}
		if disks != "succeeded" || st.Error == nil || st.Error.Step != "images" {
			t.Fatalf("round %d: disks step %q, error %+v\n%s", round, disks, st.Error, vm.Tail(150))
		}
		t.Logf("round %d: disks laid out; job stopped at images as intended: %s", round, st.Error.Message)
	}
	// The second run tore the first one's live stack down.
	logs, err := c.Logs(ctx)
	if err != nil {
		t.Fatalf("logs: %v", err)
	}
	for _, want := range []string{"teardown: lvm lvremove", "teardown: lvm vgremove", "teardown: lvm pvremove", "teardown: mdadm --stop /dev/md0", "teardown: mdadm --zero-superblock --force", "teardown: check-free /dev/vdb", "nodes: wait-nodes /dev/vda"} {
		if !strings.Contains(string(logs), want) {
			t.Errorf("agent log lacks %q", want)
		}
	}
	if err := vm.Stop(); err != nil {
		t.Logf("stop: %v", err)
	}

	// From the host: GPTs exact to the sector.
	for i, d := range plan.Disks {
		parts, err := vmtest.Partitions(vm.Disks[i])
		if err != nil {
			t.Fatal(err)
		}
		if len(parts) != len(d.Partitions) {
			t.Fatalf("%s: %d partitions on disk, plan has %d", d.Device, len(parts), len(d.Partitions))
		}
		for j, p := range d.Partitions {
			if parts[j].StartBytes != p.BeginMiB<<20 || parts[j].StartBytes+parts[j].SizeBytes != p.EndMiB<<20 {
				t.Errorf("%s: partition %d on disk %+v, plan [%d, %d) MiB", d.Device, p.Number, parts[j], p.BeginMiB, p.EndMiB)
			}
		}
	}
	offset := func(dev string) (img string, off, size int64) {
		for i, d := range plan.Disks {
			for _, p := range d.Partitions {
				if p.Device == dev {
					return vm.Disks[i], p.BeginMiB << 20, p.SizeMiB() << 20
				}
			}
		}
		t.Fatalf("%s not in the plan", dev)
		return "", 0, 0
	}
	// /boot: ext2 straight on its partition.
	for _, fs := range plan.FSs {
		if fs.Mount == "/boot" {
			img, off, _ := offset(fs.Device)
			if p, err := vmtest.Probe(img, off); err != nil || p["TYPE"] != "ext2" {
				t.Errorf("/boot %s: %v %v", fs.Device, p, err)
			}
		}
	}
	// md: each member carries a raid1 1.2 superblock; xfs at its data offset.
	dataOff := regexp.MustCompile(`Data Offset : (\d+) sectors`)
	for _, m := range plan.MDs[0].Members {
		img, off, size := offset(m)
		slice := filepath.Join(t.TempDir(), "member.img")
		if out, err := exec.Command("dd", "if="+img, "of="+slice, "bs=1M", "skip="+strconv.FormatInt(off>>20, 10), "count="+strconv.FormatInt(size>>20, 10), "status=none").CombinedOutput(); err != nil {
			t.Fatalf("dd: %v %s", err, out)
		}
		out, err := exec.Command("mdadm", "--examine", slice).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "Raid Level : raid1") || !strings.Contains(string(out), "Version : 1.2") {
			t.Errorf("mdadm --examine %s: %v\n%s", m, err, out)
			continue
		}
		mo := dataOff.FindStringSubmatch(string(out))
		if mo == nil {
			t.Errorf("%s: no data offset in\n%s", m, out)
			continue
		}
		do, _ := strconv.ParseInt(mo[1], 10, 64)
		if p, err := vmtest.Probe(img, off+do*512); err != nil || p["TYPE"] != "xfs" {
			t.Errorf("md member %s at data offset: %v %v", m, p, err)
		}
	}
	// LVM: the PVs carry VG os with root and swap, read by the host's lvm
	// through offset loop devices.
	for _, pv := range plan.PVs {
		img, off, size := offset(pv.Device)
		out, err := exec.Command("losetup", "--find", "--show", "--read-only", "--offset", strconv.FormatInt(off, 10), "--sizelimit", strconv.FormatInt(size, 10), img).Output()
		if err != nil {
			t.Fatal(err)
		}
		dev := strings.TrimSpace(string(out))
		t.Cleanup(func() { exec.Command("losetup", "-d", dev).Run() })
	}
	out, err := exec.Command("lvm", "lvs", "--config", partition.DefaultLVMConfig, "--noheadings", "-o", "vg_name,lv_name,lv_size", "--units", "m", "os").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "root") || !strings.Contains(string(out), "swap") {
		t.Errorf("lvm lvs os: %v\n%s", err, out)
	} else {
		t.Logf("host lvs:\n%s", out)
	}
}
