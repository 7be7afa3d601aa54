//go:build vm

package agent_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/imprint-dev/imprint/api"
	"github.com/imprint-dev/imprint/internal/testenv"
	"github.com/imprint-dev/imprint/internal/vmtest"
)

// targetImage builds a gzip'd ext filesystem image of a minimal target
// tree: /etc/default/grub as Ubuntu ships it and fakegrub as grub-install
// and grub-mkconfig (a real grub needs a real OS image; fakegrub records
// its argv and checks the device exists inside the chroot).
func targetImage(t *testing.T, dir, name, fstype string, sizeMiB int, root bool) string {
	t.Helper()
	tree := filepath.Join(dir, name+".tree")
	if root {
		for _, d := range []string{"etc/default", "usr/sbin", "var/log", "boot"} {
			os.MkdirAll(filepath.Join(tree, d), 0o755)
		}
		os.WriteFile(filepath.Join(tree, "etc/default/grub"), []byte("GRUB_DEFAULT=0\nGRUB_HIDDEN_TIMEOUT=0\nGRUB_TIMEOUT=2\nGRUB_CMDLINE_LINUX_DEFAULT=\"quiet\"\nGRUB_CMDLINE_LINUX=\"\"\n"), 0o644)
		fg := filepath.Join(tree, "usr/sbin/grub-install")
		build := exec.Command("go", "build", "-o", fg, "./testdata/fakegrub")
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("build fakegrub: %v\n%s", err, out)
		}
		if err := os.Link(fg, filepath.Join(tree, "usr/sbin/grub-mkconfig")); err != nil {
			t.Fatal(err)
		}
	} else {
		os.MkdirAll(filepath.Join(tree, "grub"), 0o755)
		os.WriteFile(filepath.Join(tree, "vmlinuz-test"), []byte("not a kernel\n"), 0o644)
	}
	img := filepath.Join(dir, name+".img")
	if out, err := exec.Command("mke2fs", "-q", "-F", "-t", fstype, "-d", tree, img, fmt.Sprintf("%dM", sizeMiB)).CombinedOutput(); err != nil {
		t.Fatalf("mke2fs: %v\n%s", err, out)
	}
	raw, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(raw)
	zw.Close()
	out := filepath.Join(dir, name+".img.gz")
	os.WriteFile(out, gz.Bytes(), 0o644)
	return out
}

// TestVMProvision boots the real ramdisk, drives a whole provision through
// the agent's API (a bad image URL first, which must fail at images naming
// the device; then the good document), follows it over SSE, asks for a
// reboot, and inspects the disk from the host: GPT, the images grown to
// their partitions, fstab by UUID, grub's defaults and the grub calls made
// inside the target, the configdrive.
func TestVMProvision(t *testing.T) {
	testenv.RequireTool(t, "mke2fs", "debugfs", "blkid", "go")
	dir := t.TempDir()
	targetImage(t, dir, "root", "ext4", 48, true)
	targetImage(t, dir, "boot", "ext2", 16, false)

	// The image server: the guest reaches the host's loopback as 10.0.2.2.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// and the controller, failing the first answer of each callback
	ctl := &vmController{seen: map[string]int{}, bodies: map[string][][]byte{}}
	mux := http.NewServeMux()
	mux.Handle("/cb/", ctl)
	mux.Handle("/", http.FileServer(http.Dir(dir)))
	srv := &http.Server{Handler: mux}
	go srv.Serve(ln)
	defer srv.Close()
	port := ln.Addr().(*net.TCPAddr).Port

	doc := func(rootURI string) []byte {
		return vmDoc(t, rootURI, fmt.Sprintf("http://10.0.2.2:%d/boot.img.gz", port))
	}

	// vdb: a disk no document names; its bytes must never change.
	bystander := filepath.Join(dir, "bystander.img")
	pattern := bytes.Repeat([]byte("imprint bystander "), (4<<20)/18+1)[:4<<20]
	if err := os.WriteFile(bystander, bytes.Repeat(pattern, 16), 0o644); err != nil {
		t.Fatal(err)
	}
	bystanderSum := vmtest.FileSHA256(t, bystander)

	vm := vmtest.Start(t, vmtest.Options{
		Disks:       []vmtest.Disk{{Size: 2 << 30, Serial: "IMPRINT-VDA"}, {Path: bystander, Serial: "IMPRINT-VDB"}},
		Cmdline:     []string{fmt.Sprintf("imprint.controller=http://10.0.2.2:%d/cb", port), "imprint.heartbeat=2s", "imprint.node_id=vm-node-1"},
		BootTimeout: 300 * time.Second,
	})
	defer func() {
		if got := vmtest.FileSHA256(t, bystander); got != bystanderSum {
			t.Errorf("vdb, named by no document, changed: sha256 %s, was %s", got, bystanderSum)
		} else {
			t.Logf("vdb unchanged (sha256 %s)", got)
		}
	}()
	c := vm.Client
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()

	// plan through the API, against the guest's real disk
	plan, err := c.Plan(ctx, doc(fmt.Sprintf("http://10.0.2.2:%d/root.img.gz", port)))
	if err != nil {
		t.Fatalf("plan: %v", err)
	}
	if len(plan.Disks) != 1 || plan.Disks[0].Device != "/dev/vda" || plan.Configdrive != "/dev/vda5" {
		t.Fatalf("plan %+v", plan)
	}

	watch := func(id string) api.Status {
		t.Helper()
		var final api.Status
		sseCtx, stop := context.WithTimeout(ctx, 10*time.Minute)
		defer stop()
		steps := map[string]bool{}
		err := (&api.Client{URL: vm.BaseURL, Token: vm.Token}).Events(sseCtx, 0, func(ev api.Event) error {
			if ev.Job != id {
				return nil
			}
			if ev.Type == api.EventStepStart {
				steps[ev.Step] = true
			}
			if ev.Type == api.EventState && (ev.State == api.StateSucceeded || ev.State == api.StateFailed) {
				return api.ErrStopEvents
			}
			return nil
		})
		if err != nil {
			t.Fatalf("events: %v\n%s", err, vm.Tail(80))
		}
		st, err := c.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		final = *st
		t.Logf("job %s: %s; steps seen over SSE: %v", id, st.State, steps)
		return final
	}

	// 0. scheme-mode documents naming only vda that try to reach vdb:
	// each is 422 from plan and provision, naming vdb, and starts no job.
	good := doc(fmt.Sprintf("http://10.0.2.2:%d/root.img.gz", port))
	for name, edit := range vmSchemeAttacks("/dev/vdb") {
		attack := vmScheme(t, good, edit)
		for _, call := range []string{"plan", "provision"} {
			var err error
			if call == "plan" {
				_, err = c.Plan(ctx, attack)
			} else {
				_, err = c.Provision(ctx, attack, false)
			}
			var re *api.ResponseError
			if !errors.As(err, &re) || re.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(err.Error(), "/dev/vdb") {
				t.Errorf("%s: POST /v1/%s = %v, want 422 naming /dev/vdb", name, call, err)
			}
		}
	}
	if _, err := c.Plan(ctx, vmScheme(t, good, nil)); err != nil {
		t.Errorf("the same scheme naming only vda: %v", err)
	}
	if st, err := c.Status(ctx); err != nil || st.State != api.StateIdle {
		t.Errorf("after the refused documents: %+v %v, want idle", st, err)
	}

	// 1. a bad image URL: the job fails at images, naming the device
	r, err := c.Provision(ctx, doc(fmt.Sprintf("http://10.0.2.2:%d/missing.img.gz", port)), false)
	if err != nil {
		t.Fatalf("provision (bad URL): %v", err)
	}
	st := watch(r.ID)
	if st.State != api.StateFailed || st.Error == nil || st.Error.Step != "images" || st.Error.Device != "/dev/vda4" || st.Error.Reason != api.ReasonImageUnreachable || !strings.Contains(st.Error.Message, "missing.img.gz") {
		t.Fatalf("bad URL: status %+v error %+v", st, st.Error)
	}

	// 2. the good document, the root image with its sha256 (imprint's
	// extension), /boot's with none
	t0 := time.Now()
	r, err = c.Provision(ctx, withSHA256(t, good, "/", vmtest.FileSHA256(t, filepath.Join(dir, "root.img.gz"))), false)
	if err != nil {
		t.Fatalf("provision: %v", err)
	}
	st = watch(r.ID)
	if st.State != api.StateSucceeded {
		t.Fatalf("provision failed: %+v\n%s", st.Error, vm.Tail(120))
	}
	t.Logf("provisioned in %v; steps %+v", time.Since(t0).Round(time.Millisecond), st.Steps)
	for _, img := range st.Images {
		want := img.Mount == "/"
		if img.Verified == nil || *img.Verified != want {
			t.Errorf("image %s: verified %v by %v, want %v", img.Mount, img.Verified, img.VerifiedBy, want)
		}
	}
	unverified := 0
	for _, w := range st.Warnings {
		if strings.Contains(w.Msg, "verified: false") {
			unverified++
		}
	}
	if unverified != 1 {
		t.Errorf("warnings %+v: want one verified: false (/boot's image)", st.Warnings)
	}
	for _, s := range st.Steps {
		if s.State != "succeeded" && s.Name != "report" {
			t.Errorf("step %s: %s", s.Name, s.State)
		}
	}
	// locked now
	var re *api.ResponseError
	if _, err := c.Provision(ctx, doc("http://10.0.2.2:1/x.img.gz"), false); !errors.As(err, &re) || re.StatusCode != 409 {
		t.Errorf("second provision: %v, want 409", err)
	}

	// the controller got discovery, heartbeats and both results, each
	// retried after its first refusal
	waitUntil(t, 60*time.Second, func() bool { return ctl.count("result") >= 2 })
	ctl.mu.Lock()
	var disc struct {
		NodeID    string `json:"node_id"`
		Scheme    string `json:"scheme"`
		Inventory struct {
			Disks []struct{ Name, Serial string }
			NICs  []struct{ MAC string } `json:"nics"`
		}
	}
	if len(ctl.bodies["discovery"]) != 1 || ctl.seen["discovery"] != 2 {
		t.Errorf("discovery: %d acknowledged after %d posts", len(ctl.bodies["discovery"]), ctl.seen["discovery"])
	} else if json.Unmarshal(ctl.bodies["discovery"][0], &disc); disc.NodeID != "vm-node-1" || len(disc.Inventory.Disks) != 2 || disc.Inventory.Disks[0].Serial != "IMPRINT-VDA" || len(disc.Inventory.NICs) == 0 {
		t.Errorf("discovery body %+v", disc)
	}
	var results []string
	for _, b := range ctl.bodies["result"] {
		var cb struct{ Status api.Status }
		json.Unmarshal(b, &cb)
		results = append(results, cb.Status.State)
	}
	if strings.Join(results, ",") != "failed,succeeded" {
		t.Errorf("results acknowledged: %v", results)
	}
	if ctl.auth != "Bearer "+vm.Token {
		t.Errorf("callbacks carried Authorization %q", ctl.auth)
	}
	t.Logf("controller: %v posts, %d heartbeats acknowledged", ctl.seen, len(ctl.bodies["progress"]))
	ctl.mu.Unlock()

	// 3. reboot: the guest runs with -no-reboot, so QEMU exits
	if err := c.Reboot(ctx); err != nil {
		t.Fatalf("reboot: %v", err)
	}
	if err := vm.WaitExit(90 * time.Second); err != nil {
		t.Fatalf("guest did not reboot: %v\n%s", err, vm.Tail(40))
	}
	console := vm.Console()
	for _, line := range []string{"--- Provisioning (do_provisioning) ---", "--- Partitioning disks (do_partitioning) ---",
		"--- Creating configdrive (do_configdrive) ---", "--- Installing bootloader (do_bootloader) ---", "--- Provisioning END (do_provisioning) ---"} {
		if !strings.Contains(console, line) {
			t.Errorf("console lacks %q", line)
		}
	}

	// 4. the disk, from the host
	disk := vm.Disks[0]
	parts, err := vmtest.Partitions(disk)
	if err != nil {
		t.Fatal(err)
	}
	if len(parts) != 5 {
		t.Fatalf("partitions %+v", parts)
	}
	offset := func(n int) int64 { return parts[n-1].StartBytes }
	uuid := func(n int) string {
		p, err := vmtest.Probe(disk, offset(n))
		if err != nil {
			t.Fatal(err)
		}
		return p["UUID"]
	}
	cat := func(n int, file string) string {
		out, err := exec.Command("debugfs", "-R", "cat "+file, fmt.Sprintf("%s?offset=%d", disk, offset(n))).Output()
		if err != nil {
			t.Fatalf("debugfs cat %s: %v", file, err)
		}
		return string(out)
	}
	fstab := cat(4, "/etc/fstab")
	for _, want := range []string{"UUID=" + uuid(4) + " / ext4 defaults,errors=panic 0 0", "UUID=" + uuid(3) + " /boot ext2 defaults 0 0"} {
		if !strings.Contains(fstab, want) {
			t.Errorf("fstab lacks %q:\n%s", want, fstab)
		}
	}
	grub := cat(4, "/etc/default/grub")
	if !strings.Contains(grub, `GRUB_CMDLINE_LINUX='console=tty0 net.ifnames=1 biosdevname=0 rootdelay=90 nomodeset'`) || !strings.Contains(grub, "GRUB_TIMEOUT=10") || strings.Contains(grub, "HIDDEN") {
		t.Errorf("/etc/default/grub:\n%s", grub)
	}
	if log := cat(4, "/var/log/fakegrub.log"); log != "grub-mkconfig -o /boot/grub/grub.cfg\ngrub-install --target=i386-pc /dev/vda\n" {
		t.Errorf("grub calls in the chroot:\n%s", log)
	}
	// grub.cfg went to the separate /boot filesystem (mounted by depth)
	if cfg := cat(3, "/grub/grub.cfg"); !strings.Contains(cfg, "written by fakegrub") {
		t.Errorf("/boot/grub/grub.cfg on the boot partition: %q", cfg)
	}
	if rules := cat(4, "/etc/udev/rules.d/70-persistent-net.rules"); !strings.Contains(rules, `ATTR{address}=="52:54:00:16:ea:68"`) {
		t.Errorf("udev rules:\n%s", rules)
	}
	// the root filesystem was grown to its 1200 MiB partition
	sb, err := vmtest.Dumpe2fs(disk, offset(4))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(sb, "Block count:              307200") && !strings.Contains(sb, "Block count:              1228800") {
		t.Errorf("root filesystem not grown to 1200 MiB:\n%s", sb)
	}
	if p, err := vmtest.Probe(disk, offset(5)); err != nil || !strings.EqualFold(p["LABEL"], "config-2") {
		t.Errorf("configdrive partition: %v %v", p, err)
	}
}

// vmController is the test's controller: it refuses the first post of each
// callback with 503 and acknowledges the rest.
type vmController struct {
	mu     sync.Mutex
	seen   map[string]int
	bodies map[string][][]byte
	auth   string
}

func (c *vmController) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	kind := strings.TrimPrefix(r.URL.Path, "/cb/")
	body, _ := io.ReadAll(r.Body)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seen[kind]++
	c.auth = r.Header.Get("Authorization")
	if c.seen[kind] == 1 && kind != "progress" {
		http.Error(w, "controller starting", http.StatusServiceUnavailable)
		return
	}
	c.bodies[kind] = append(c.bodies[kind], body)
	w.WriteHeader(http.StatusNoContent)
}

func (c *vmController) count(kind string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.bodies[kind])
}

func waitUntil(t *testing.T, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v", d)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// vmDoc is the fixture document with one 2 GiB disk: /boot and / on plain
// partitions (readable from the host with debugfs), the given image URIs.
func vmDoc(t *testing.T, rootURI, bootURI string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/provision_fuel90_ubuntu_1disk.json")
	if err != nil {
		t.Fatal(err)
	}
	var d map[string]any
	json.Unmarshal(b, &d)
	ks := d["ks_meta"].(map[string]any)
	ks["pm_data"].(map[string]any)["ks_spaces"] = []any{map[string]any{
		"type": "disk", "id": "vda", "name": "vda", "size": 2048, "free_space": 1500, "extra": []any{},
		"volumes": []any{
			map[string]any{"type": "boot", "size": 300},
			map[string]any{"type": "partition", "mount": "/boot", "size": 200, "file_system": "ext2"},
			map[string]any{"type": "partition", "mount": "/", "size": 1200, "file_system": "ext4"},
			map[string]any{"type": "lvm_meta_pool", "size": 0},
		},
	}}
	ks["image_data"] = map[string]any{
		"/":     map[string]any{"uri": rootURI, "format": "ext4", "container": "gzip"},
		"/boot": map[string]any{"uri": bootURI, "format": "ext2", "container": "gzip"},
	}
	out, _ := json.Marshal(d)
	return out
}

// TestVMProvisionCommand runs `imprint provision` inside the guest, the way
// Astute does (a document in a file, the exit status as the verdict): the
// test's initramfs adds an /inito (testdata/vminito), which u-root's init
// runs before the ramdisk's own uinit, with the documents and images baked
// in (file:// URLs). A document with a missing image must exit 20 (image_unreachable) naming the
// step and the device; the good one must exit 0 and leave a bootable
// layout on the disk.
func TestVMProvisionCommand(t *testing.T) {
	testenv.RequireTool(t, "mke2fs", "debugfs", "cpio", "gzip", "go")
	base, err := vmtest.FindImage()
	if err != nil {
		testenv.Skipf(t, "no VM image: %v", err)
	}
	dir := t.TempDir()
	stage := filepath.Join(dir, "stage")
	os.MkdirAll(filepath.Join(stage, "vmtest"), 0o755)
	for _, name := range []string{"root", "boot"} {
		gz := targetImage(t, dir, name, map[string]string{"root": "ext4", "boot": "ext2"}[name], map[string]int{"root": 48, "boot": 16}[name], name == "root")
		if err := os.Rename(gz, filepath.Join(stage, "vmtest", name+".img.gz")); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(stage, "vmtest", "bad.json"), vmDoc(t, "file:///vmtest/missing.img.gz", "file:///vmtest/boot.img.gz"), 0o644)
	os.WriteFile(filepath.Join(stage, "vmtest", "good.json"), vmDoc(t, "file:///vmtest/root.img.gz", "file:///vmtest/boot.img.gz"), 0o644)
	os.WriteFile(filepath.Join(stage, "vmtest", "docs"), []byte("bad.json good.json\n"), 0o644)
	build := exec.Command("go", "build", "-o", filepath.Join(stage, "inito"), "./testdata/vminito")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build vminito: %v\n%s", err, out)
	}
	initrd := filepath.Join(dir, "initramfs.cpio.gz")
	pack := exec.Command("sh", "-c", `set -e; cp "$1" "$3"; cd "$2"; find . -mindepth 1 | sed 's|^\./||' | cpio -o -H newc -R 0:0 --quiet | gzip -1 >>"$3"`, "sh", base.Initrd, stage, initrd)
	if out, err := pack.CombinedOutput(); err != nil {
		t.Fatalf("pack initramfs: %v\n%s", err, out)
	}

	vm := vmtest.Start(t, vmtest.Options{
		Disks:       []vmtest.Disk{{Size: 2 << 30, Serial: "IMPRINT-VDA"}},
		Image:       &vmtest.Image{Kernel: base.Kernel, Initrd: initrd},
		BootTimeout: 420 * time.Second,
	})
	console := vm.Console()
	if err := vm.Stop(); err != nil {
		t.Errorf("Stop: %v", err)
	}
	for _, want := range []string{
		`provision: failed at step images on "/dev/vda4"`,
		"missing.img.gz",
		"(reason image_unreachable)",
		"vmtest-provision bad.json exit=20",
		"--- Provisioning END (do_provisioning) ---",
		"provision: succeeded",
		"vmtest-provision good.json exit=0",
	} {
		if !strings.Contains(console, want) {
			t.Errorf("console lacks %q", want)
		}
	}
	if i, j := strings.Index(console, "vmtest-provision bad.json"), strings.Index(console, "Next chunk"); j < 0 || j < i {
		t.Errorf("no fuel-agent \"Next chunk\" line for the good image")
	}
	disk := vm.Disks[0]
	parts, err := vmtest.Partitions(disk)
	if err != nil || len(parts) != 5 {
		t.Fatalf("partitions %+v %v", parts, err)
	}
	p, err := vmtest.Probe(disk, parts[3].StartBytes)
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("debugfs", "-R", "cat /etc/fstab", fmt.Sprintf("%s?offset=%d", disk, parts[3].StartBytes)).Output()
	if err != nil || !strings.Contains(string(out), "UUID="+p["UUID"]+" / ext4 defaults,errors=panic 0 0") {
		t.Errorf("fstab written by imprint provision:\n%s (%v)", out, err)
	}
}

// withSHA256 sets image_data[mount].sha256 of a document.
func withSHA256(t *testing.T, doc []byte, mount, sum string) []byte {
	t.Helper()
	var d map[string]any
	if err := json.Unmarshal(doc, &d); err != nil {
		t.Fatal(err)
	}
	d["ks_meta"].(map[string]any)["image_data"].(map[string]any)[mount].(map[string]any)["sha256"] = sum
	out, _ := json.Marshal(d)
	return out
}

// vmScheme turns vmDoc's document into nailgun_simple's scheme mode on vda
// alone (bios_grub, /boot, /, the configdrive), edited by edit.
func vmScheme(t *testing.T, doc []byte, edit func(p map[string]any)) []byte {
	t.Helper()
	var d map[string]any
	if err := json.Unmarshal(doc, &d); err != nil {
		t.Fatal(err)
	}
	part := func(n, begin, end int, flags []any, cd bool) map[string]any {
		return map[string]any{"name": fmt.Sprintf("/dev/vda%d", n), "count": n, "device": "/dev/vda", "begin": begin, "end": end,
			"partition_type": "primary", "flags": flags, "guid": nil, "configdrive": cd}
	}
	p := map[string]any{
		"parteds": []any{map[string]any{"name": "/dev/vda", "label": "gpt", "install_bootloader": true, "partitions": []any{
			part(1, 1, 25, []any{"bios_grub"}, false),
			part(2, 25, 225, []any{}, false),
			part(3, 225, 1425, []any{}, false),
			part(4, 1425, 1445, []any{}, true),
		}}},
		"pvs": []any{}, "vgs": []any{}, "lvs": []any{}, "mds": []any{},
		"fss": []any{
			map[string]any{"device": "/dev/vda2", "fs_type": "ext2", "mount": "/boot", "fs_label": "", "fs_options": ""},
			map[string]any{"device": "/dev/vda3", "fs_type": "ext4", "mount": "/", "fs_label": "", "fs_options": ""},
		},
	}
	if edit != nil {
		edit(p)
	}
	d["partitioning"] = p
	out, _ := json.Marshal(d)
	return out
}

// vmSchemeAttacks edit vmScheme's scheme to reach victim: a filesystem on
// it, the root image on it, a PV on it, a partition of vda named on it,
// the configdrive on it, fs_options naming it.
func vmSchemeAttacks(victim string) map[string]func(p map[string]any) {
	fss := func(p map[string]any, i int) map[string]any { return p["fss"].([]any)[i].(map[string]any) }
	parts := func(p map[string]any) []any {
		return p["parteds"].([]any)[0].(map[string]any)["partitions"].([]any)
	}
	return map[string]func(p map[string]any){
		"filesystem": func(p map[string]any) {
			p["fss"] = append(p["fss"].([]any), map[string]any{"device": victim + "1", "fs_type": "ext4", "mount": "/srv", "fs_label": "", "fs_options": ""})
		},
		"root image": func(p map[string]any) { fss(p, 1)["device"] = victim },
		"pv": func(p map[string]any) {
			p["pvs"] = []any{map[string]any{"name": victim + "1", "metadatasize": 28, "metadatacopies": 2}}
			p["vgs"] = []any{map[string]any{"name": "data", "pvnames": []any{victim + "1"}}}
		},
		"partition named on it": func(p map[string]any) {
			parts(p)[1].(map[string]any)["name"] = victim + "2"
			fss(p, 0)["device"] = victim + "2"
		},
		"configdrive":          func(p map[string]any) { parts(p)[3].(map[string]any)["name"] = victim + "4" },
		"fs_options logdev":    func(p map[string]any) { fss(p, 0)["fs_options"] = "-l logdev=" + victim },
		"fs_options -Jdevice=": func(p map[string]any) { fss(p, 0)["fs_options"] = "-Jdevice=" + victim },
	}
}
