//go:build vm

package agent_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/imprint-dev/imprint/api"
	"github.com/imprint-dev/imprint/internal/testenv"
	"github.com/imprint-dev/imprint/internal/vmtest"
)

// TestVMMultipath: one 2 GiB image presented to the guest over two paths
// (two virtio-scsi disks on the same file, same serial and WWN,
// share-rw=on). The ramdisk makes one dm-multipath map of them; the
// inventory lists that map (mapper/mpatha, the two paths as its slaves)
// and neither path; a document naming mapper/mpatha provisions through
// /dev/mapper/mpatha and its kpartx partition maps (-part3 for /boot,
// -part4 for /), and the image file carries the document's GPT and the
// root image.
func TestVMMultipath(t *testing.T) {
	testenv.RequireTool(t, "mke2fs", "debugfs", "blkid", "go")
	dir := t.TempDir()
	targetImage(t, dir, "root", "ext4", 48, true)
	targetImage(t, dir, "boot", "ext2", 16, false)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.FileServer(http.Dir(dir))}
	go srv.Serve(ln)
	defer srv.Close()
	port := ln.Addr().(*net.TCPAddr).Port

	img := filepath.Join(dir, "lun.img")
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	f.Truncate(2 << 30)
	f.Close()
	path := vmtest.Disk{Path: img, Bus: vmtest.BusSCSI, Serial: "IMPRINT-MPATH", WWN: "0x5000c50015ea71ac", Shared: true}
	vm := vmtest.Start(t, vmtest.Options{Disks: []vmtest.Disk{path, path}, BootTimeout: 300 * time.Second})
	c := &api.Client{URL: vm.BaseURL, Token: vm.Token, HTTP: &http.Client{Timeout: 60 * time.Second}}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()

	inv, err := c.Inventory(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, d := range inv.Disks {
		names = append(names, d.Name)
	}
	if len(inv.Disks) != 1 || inv.Disks[0].Kind != "multipath" || !strings.HasPrefix(inv.Disks[0].Name, "mapper/") ||
		strings.Join(inv.Disks[0].Slaves, ",") != "sda,sdb" {
		t.Fatalf("inventory disks %v (%+v), want one multipath map over sda and sdb\n%s", names, inv.Disks, vm.Tail(60))
	}
	mp := inv.Disks[0]
	for _, l := range strings.Split(vm.Console(), "\n") {
		if strings.Contains(l, "multipath") {
			t.Logf("console: %s", l) // which made the map: multipath, or the dmsetup grouping
		}
	}
	t.Logf("inventory: %s (%s), WWID %s, paths %v, by-id %v", mp.Name, mp.Path, mp.WWN, mp.Slaves, mp.ByID)

	doc := vmDoc(t, fmt.Sprintf("http://10.0.2.2:%d/root.img.gz", port), fmt.Sprintf("http://10.0.2.2:%d/boot.img.gz", port))
	var d map[string]any
	json.Unmarshal(doc, &d)
	disk := d["ks_meta"].(map[string]any)["pm_data"].(map[string]any)["ks_spaces"].([]any)[0].(map[string]any)
	disk["name"], disk["id"] = mp.Name, mp.Name
	doc, _ = json.Marshal(d)

	plan, err := c.Plan(ctx, doc)
	if err != nil {
		t.Fatalf("plan: %v", err)
	}
	dev := "/dev/" + mp.Name
	if plan.Disks[0].Device != dev || strings.Join(plan.Disks[0].Paths, ",") != "/dev/sda,/dev/sdb" {
		t.Fatalf("plan disk %+v, want %s with paths /dev/sda,/dev/sdb", plan.Disks[0], dev)
	}
	fss := map[string]string{}
	for _, fs := range plan.FSs {
		fss[fs.Mount] = fs.Device
	}
	if fss["/boot"] != dev+"-part3" || fss["/"] != dev+"-part4" {
		t.Errorf("filesystems %v, want /boot on %s-part3 and / on %s-part4", fss, dev, dev)
	}
	r, err := c.Provision(ctx, doc, false)
	if err != nil {
		t.Fatalf("provision: %v", err)
	}
	var st *api.Status
	for t1 := time.Now(); ; time.Sleep(3 * time.Second) {
		st, err = c.Status(ctx)
		if err != nil {
			t.Fatalf("status: %v", err)
		}
		if st.ID == r.ID && (st.State == api.StateSucceeded || st.State == api.StateFailed) {
			break
		}
		if time.Since(t1) > 10*time.Minute {
			t.Fatalf("provision still %s at %s\n%s", st.State, st.Step, vm.Tail(60))
		}
	}
	if st.State != api.StateSucceeded {
		t.Fatalf("provision: %+v\n%s", st.Error, vm.Tail(120))
	}
	t.Logf("provisioned through %s; steps %+v", dev, st.Steps)
	if !strings.Contains(vm.Console(), dev+"-part4") {
		t.Errorf("the agent's log never names %s-part4", dev)
	}
	vm.Stop()

	parts, err := vmtest.Partitions(img)
	if err != nil {
		t.Fatal(err)
	}
	if len(parts) != 5 {
		t.Fatalf("partitions on the LUN image %+v, want 5", parts)
	}
	root, err := vmtest.Probe(img, parts[3].StartBytes)
	if err != nil {
		t.Fatal(err)
	}
	cd, err := vmtest.Probe(img, parts[4].StartBytes)
	if err != nil {
		t.Fatal(err)
	}
	if root["TYPE"] != "ext4" || !strings.EqualFold(cd["LABEL"], "config-2") {
		t.Errorf("LUN image: root %v, configdrive %v", root, cd)
	}
	fstab, err := vmtest.DebugfsCat(img, parts[3].StartBytes, "/etc/fstab")
	if err != nil || !strings.Contains(fstab, "UUID="+root["UUID"]) {
		t.Errorf("fstab on the root: %q %v", fstab, err)
	}
}
