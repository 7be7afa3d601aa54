//go:build vm

package agent_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/imprint-dev/imprint/internal/testenv"
	"github.com/imprint-dev/imprint/internal/vmtest"
)

// fuelSampleHost is the node's host name in TestVMFuelSample.
const fuelSampleHost = "fuel-sample-1.domain.tld"

// fuelSampleDoc is examples/provision.json (Fuel 9.0's single-disk
// controller: /boot, os/root, os/swap, logs/log on /var/log, image/glance,
// mysql/root on /var/lib/mysql, horizon on /var/lib/horizon, disk 81920
// MiB) as it is, storage untouched, with the QEMU node's NIC, the test's
// images and key, a serial console, and the configdrive as NoCloud.
func fuelSampleDoc(t *testing.T, rootURI, rootSHA256, bootURI, authKey, phoneHome string) []byte {
	t.Helper()
	b, err := os.ReadFile("../examples/provision.json")
	if err != nil {
		t.Fatal(err)
	}
	var d map[string]any
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	const mac = "52:54:00:12:34:56" // QEMU's default
	d["hostname"], d["name"], d["slave_name"] = fuelSampleHost, "fuel-sample-1", "fuel-sample-1"
	d["interfaces"] = map[string]any{"eth0": map[string]any{"mac_address": mac, "ip_address": "10.0.2.15",
		"netmask": "255.255.255.0", "dns_name": fuelSampleHost, "static": "0"}}
	d["interfaces_extra"] = map[string]any{"eth0": map[string]any{"onboot": "yes", "peerdns": "no"}}
	d["kernel_options"] = map[string]any{"udevrules": mac + "_eth0", "netcfg/choose_interface": mac}
	d["name_servers"] = `"10.0.2.3"`
	ks := d["ks_meta"].(map[string]any)
	ks["gw"], ks["master_ip"], ks["admin_net"] = "10.0.2.2", "10.0.2.2", "10.0.2.0/24"
	ks["auth_key"] = `"` + authKey + `"`
	ks["authorized_keys"] = []any{}
	ks["phone_home_url"] = phoneHome
	ks["configdrive_format"] = "nocloud-vfat"
	ks["pm_data"].(map[string]any)["kernel_params"] = "console=tty0 console=ttyS0,115200n8 ignore_loglevel net.ifnames=0 biosdevname=0 nomodeset"
	root := map[string]any{"uri": rootURI, "format": "ext4", "container": "gzip"}
	if rootSHA256 != "" {
		root["sha256"] = rootSHA256
	}
	ks["image_data"] = map[string]any{
		"/":     root,
		"/boot": map[string]any{"uri": bootURI, "format": "ext2", "container": "gzip"},
	}
	out, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// withMySQLDatadir is the real root image with a MySQL data directory
// added (the bookworm image has no MySQL): /var/lib/mysql mode 0700
// holding ibdata1, so that the move into the mysql/root LV is seen with
// content and mode. It returns the gzipped image and its sha256.
func withMySQLDatadir(t *testing.T, dir, rootGz string) (string, string) {
	t.Helper()
	raw := filepath.Join(dir, "root.img")
	sh := func(script string, args ...string) {
		t.Helper()
		c := exec.Command("sh", append([]string{"-ec", script, "sh"}, args...)...)
		if out, err := c.CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", script, err, out)
		}
	}
	sh(`gzip -dc "$1" >"$2"`, rootGz, raw)
	data := filepath.Join(dir, "ibdata1")
	os.WriteFile(data, []byte("imprint mysql datadir marker\n"), 0o600)
	cmds := filepath.Join(dir, "debugfs.cmds")
	os.WriteFile(cmds, []byte("mkdir /var/lib/mysql\ncd /var/lib/mysql\nwrite "+data+" ibdata1\nsif /var/lib/mysql mode 040700\n"), 0o644)
	sh(`debugfs -w -f "$1" "$2" >/dev/null 2>&1; e2fsck -fn "$2" >/dev/null`, cmds, raw)
	gz := raw + ".gz"
	sh(`gzip -1 -c "$1" >"$2"; rm -f "$1"`, raw, gz)
	return gz, vmtest.FileSHA256(t, gz)
}

// lvOffset finds LV lv of the VG whose PV starts at pvStart in disk from
// the LVM text metadata (the copy with the highest seqno) and returns the
// byte offset of its first extent: the host has no device-mapper.
func lvOffset(t *testing.T, disk string, pvStart int64, lv string) int64 {
	t.Helper()
	f, err := os.Open(disk)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 8<<20)
	n, _ := f.ReadAt(buf, pvStart)
	best, bestSeq := "", -1
	for _, chunk := range bytes.Split(buf[:n], []byte{0}) {
		m := regexp.MustCompile(`seqno = (\d+)`).FindSubmatch(chunk)
		if m == nil {
			continue
		}
		if s, _ := strconv.Atoi(string(m[1])); s > bestSeq {
			best, bestSeq = string(chunk), s
		}
	}
	num := func(re string) int64 {
		m := regexp.MustCompile(re).FindStringSubmatch(best)
		if m == nil {
			t.Fatalf("LVM metadata at %d lacks %s:\n%s", pvStart, re, best)
		}
		v, _ := strconv.ParseInt(m[1], 10, 64)
		return v
	}
	ext := num(`extent_size = (\d+)`)
	pe := num(`pe_start = (\d+)`)
	first := num(`(?s)\n\s*` + lv + ` \{.*?stripes = \[\s*"pv0", (\d+)`)
	return pvStart + pe*512 + first*ext*512
}

// TestVMFuelSample provisions Fuel 9.0's sample document (every
// filesystem it declares, its 81920 MiB disk) with the real bookworm image
// the way Astute drives fuel-agent: the test's /inito uploads
// /tmp/provision.json and runs "flock -n /var/lock/provision.lock
// provision" from the ramdisk's PATH, tailing /var/log/fuel-agent.log for
// Astute's patterns — first a document whose image URL is wrong
// (fuel-agent's exit 255 and the failing step in the log), then the good
// one as fuel-agent's single steps (fa_partition, fa_copyimage,
// fa_bootloader on /tmp/provision.json), then the good one whole. The disk then boots on its own: over ssh /var/log is the logs LV
// holding the image's /var/log (apt/), /var/lib/mysql the mysql LV
// holding the datadir the image had, cloud-init finished from the NoCloud
// configdrive; from the host, the root LV's copies under those mount
// points are gone.
func TestVMFuelSample(t *testing.T) {
	if os.Getenv("IMPRINT_VM_SLOW") == "" {
		t.Skip("set IMPRINT_VM_SLOW=1 (make test-slow) to provision Fuel's 9.0 sample on its 80 GiB disk the way Astute runs provision, and boot it (about 11 min)")
	}
	testenv.RequireTool(t, "debugfs", "e2fsck", "cpio", "gzip", "go")
	base, err := vmtest.FindImage()
	if err != nil {
		testenv.Skipf(t, "no VM image: %v", err)
	}
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	t0 := time.Now()
	ti := vmtest.RequireTargetImage(t, log)
	dir := t.TempDir()
	rootGz, rootSum := withMySQLDatadir(t, dir, ti.Root)
	t.Logf("phase image: %s", time.Since(t0).Round(time.Second))

	srv := vmtest.NewHostServer(t)
	srv.File("/images/root.img.gz", rootGz)
	srv.File("/images/boot.img.gz", ti.Boot)
	ph := srv.PhoneHome("/phone-home")
	key, pub, err := vmtest.NewSSHKey(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	good := fuelSampleDoc(t, srv.GuestURL("/images/root.img.gz"), rootSum, srv.GuestURL("/images/boot.img.gz"), pub, srv.GuestURL("/phone-home"))
	bad := fuelSampleDoc(t, srv.GuestURL("/images/no-such-root.img.gz"), "", srv.GuestURL("/images/boot.img.gz"), pub, srv.GuestURL("/phone-home"))

	stage := filepath.Join(dir, "stage")
	os.MkdirAll(filepath.Join(stage, "vmtest"), 0o755)
	os.WriteFile(filepath.Join(stage, "vmtest", "bad.json"), bad, 0o644)
	os.WriteFile(filepath.Join(stage, "vmtest", "good.json"), good, 0o644)
	os.WriteFile(filepath.Join(stage, "vmtest", "steps.json"), good, 0o644)
	// bad.json, then fuel-agent's single steps on the good document, then the good one whole
	os.WriteFile(filepath.Join(stage, "vmtest", "docs"), []byte("bad.json steps:steps.json good.json\n"), 0o644)
	build := exec.Command("go", "build", "-o", filepath.Join(stage, "inito"), "./testdata/astuteinito")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build astuteinito: %v\n%s", err, out)
	}
	initrd := filepath.Join(dir, "initramfs.cpio.gz")
	pack := exec.Command("sh", "-c", `set -e; cp "$1" "$3"; cd "$2"; find . -mindepth 1 | sed 's|^\./||' | cpio -o -H newc -R 0:0 --quiet | gzip -1 >>"$3"`, "sh", base.Initrd, stage, initrd)
	if out, err := pack.CombinedOutput(); err != nil {
		t.Fatalf("pack initramfs: %v\n%s", err, out)
	}

	// 1. Astute's way, in the bootstrap VM: bad.json, then good.json
	t1 := time.Now()
	vm := vmtest.Start(t, vmtest.Options{
		Disks:       []vmtest.Disk{{Size: 81920 << 20, Serial: "IMPRINT-VDA"}},
		Image:       &vmtest.Image{Kernel: base.Kernel, Initrd: initrd},
		MemoryMiB:   1536,
		BootTimeout: 60 * time.Minute,
	})
	console := vm.Console()
	if err := vm.Stop(); err != nil {
		t.Errorf("Stop: %v", err)
	}
	t.Logf("phase astute (both documents): %s", time.Since(t1).Round(time.Second))
	var astute []string
	for _, l := range strings.Split(console, "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), "astute") {
			astute = append(astute, strings.TrimSpace(l))
		}
	}
	t.Logf("astute's view:\n%s", strings.Join(astute, "\n"))
	has := func(s string) bool {
		for _, l := range astute {
			if strings.Contains(l, s) {
				return true
			}
		}
		return false
	}
	for _, want := range []string{
		"astute bad.json exit=255",
		`astute bad.json pattern "--- Partitioning disks (do_partitioning) ---"`,
		"astute-log bad.json provision: failed at step images",
		"no-such-root.img.gz",
		`astute steps.json fa_partition step "--- Partitioning disks (do_partitioning) ---"`,
		"astute steps.json fa_partition exit=0",
		`astute steps.json fa_copyimage step "--- Copying images (do_copyimage) ---"`,
		"astute steps.json fa_copyimage exit=0",
		`astute steps.json fa_bootloader step "--- Installing bootloader (do_bootloader) ---"`,
		"astute steps.json fa_bootloader exit=0",
		"astute good.json exit=0",
		`astute good.json pattern "--- Provisioning (do_provisioning) ---" progress 0.81`,
		`astute good.json pattern "--- Partitioning disks (do_partitioning) ---" progress 0.82`,
		`astute good.json pattern "--- Creating configdrive (do_configdrive) ---" progress 0.92`,
		`astute good.json pattern "--- Installing bootloader (do_bootloader) ---" progress 0.99`,
		`astute good.json pattern "--- Provisioning END (do_provisioning) ---" progress 1.00`,
	} {
		if !has(want) {
			t.Errorf("astute's view lacks %q", want)
		}
	}
	if has(`astute bad.json pattern "--- Provisioning END`) {
		t.Errorf("the failed run logged the END pattern")
	}
	for _, l := range astute {
		if m := regexp.MustCompile(`^astute (good.json|steps.json fa_copyimage) chunks (\d+)$`).FindStringSubmatch(l); m != nil {
			if n, _ := strconv.Atoi(m[2]); n < 700 {
				t.Errorf("%s: %d \"Next chunk\" lines, want one per MiB of the 714+36 MiB images", m[1], n)
			}
		}
	}
	if t.Failed() {
		t.Fatalf("console tail:\n%s", vmtest.TailLines(console, 120))
	}

	// 2. the disk boots on its own; inside, over ssh
	disk := vm.Disks[0]
	t2 := time.Now()
	node := vmtest.BootDisk(t, disk, 300*time.Second)
	if _, err := node.WaitPhoneHome(ph, 20*time.Minute); err != nil {
		t.Fatalf("phone-home: %v\n%s", err, node.Tail(60))
	}
	t.Logf("phase disk boot to phone-home: %s", time.Since(t2).Round(time.Second))
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	var out string
	for deadline := time.Now().Add(3 * time.Minute); ; {
		sctx, scancel := context.WithTimeout(ctx, 10*time.Minute)
		out, err = node.SSH(sctx, key, "echo src-log=$(findmnt -n -o SOURCE /var/log); echo src-mysql=$(findmnt -n -o SOURCE /var/lib/mysql); "+
			"echo src-root=$(findmnt -n -o SOURCE /); ls /var/log/apt | sed 's/^/apt=/'; stat -c 'mysql-mode=%a' /var/lib/mysql; "+
			"sed 's/^/ibdata=/' /var/lib/mysql/ibdata1; echo ci=$(cloud-init status --wait | tail -1); "+
			"grep -o '\"datasource\": *\"[^\"]*\"' /run/cloud-init/status.json | sed 's/^/ds=/'")
		scancel()
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Second)
	}
	if err != nil {
		t.Fatalf("ssh: %v\n%s", err, node.Tail(40))
	}
	t.Logf("the provisioned OS:\n%s", out)
	for _, want := range []string{"src-log=/dev/mapper/logs-log\n", "src-mysql=/dev/mapper/mysql-root\n", "src-root=/dev/mapper/os-root\n",
		"apt=history.log\n", "apt=term.log\n", "mysql-mode=700\n", "ibdata=imprint mysql datadir marker\n", "ci=status: done\n", "DataSourceNoCloud"} {
		if !strings.Contains(out, want) {
			t.Errorf("the OS's state lacks %q", want)
		}
	}
	sctx, scancel := context.WithTimeout(ctx, 2*time.Minute)
	node.SSH(sctx, key, "systemctl poweroff")
	scancel()
	node.WaitExit(2 * time.Minute)
	node.Stop()

	// 3. from the host: the root LV's copies under the mount points are gone
	parts, err := vmtest.Partitions(disk)
	if err != nil || len(parts) < 4 {
		t.Fatalf("partitions %+v %v", parts, err)
	}
	rootAt := lvOffset(t, disk, parts[3].StartBytes, "root")
	for _, dirPath := range []string{"/var/log", "/var/lib/mysql"} {
		ls, err := exec.Command("debugfs", "-R", "ls "+dirPath, fmt.Sprintf("%s?offset=%d", disk, rootAt)).Output()
		if err != nil {
			t.Fatalf("debugfs ls %s on the root LV: %v\n%s", dirPath, err, ls)
		}
		names := strings.Fields(regexp.MustCompile(`\(\d+\)`).ReplaceAllString(string(ls), " "))
		var left []string
		for _, n := range names {
			if n != "." && n != ".." && !regexp.MustCompile(`^\d+$`).MatchString(n) && !strings.HasPrefix(n, "debugfs") {
				left = append(left, n)
			}
		}
		if len(left) > 0 {
			t.Errorf("the root LV still holds %v under %s:\n%s", left, dirPath, ls)
		}
	}
	t.Logf("total: %s", time.Since(t0).Round(time.Second))
}
