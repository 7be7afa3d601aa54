//go:build loop

package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imprint-dev/imprint/internal/testenv"
)

// `imprint partition` on a loop device the document names by kernel name
// (the inventory leaves loop devices out): --dry-run lists the operations;
// the real run wipes and writes the exact GPT, then stops at the partition
// nodes, which this host's kernel does not make (no partition table
// support), with an error naming the step and the device.
func TestLoopPartitionCommand(t *testing.T) {
	testenv.RequireRoot(t, "loop devices")
	testenv.RequireTool(t, "losetup", "sgdisk", "lvm")
	img := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(img, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, 1200<<20); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("losetup", "--find", "--show", img).Output()
	if err != nil {
		t.Fatal(err)
	}
	dev := strings.TrimSpace(string(out))
	t.Cleanup(func() { _ = exec.Command("losetup", "-d", dev).Run() })
	name := filepath.Base(dev)
	doc := partitionDoc(t, name)

	// The host is not the bootstrap ramdisk: the test says it may write
	// the loop device it made (and nothing else: the plan names only it).
	t.Setenv("IMPRINT_DESTRUCTIVE", "yes")
	code, stdout, stderr := partitionRun(t, "--dry-run", doc)
	if code != 0 {
		t.Fatalf("--dry-run: exit %d\n%s", code, stderr)
	}
	for _, want := range []string{
		"wipe: zero " + dev + " [0 MiB, 3 MiB)",
		"gpt: write-gpt " + dev,
		"mkfs: mke2fs -t ext4 -F -q " + dev + "p5",
		"wipe: zero " + dev + "p6 [0 MiB, 1 MiB)",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("--dry-run output lacks %q:\n%s", want, stdout)
		}
	}
	if strings.Contains(stdout, "mke2fs -t ext4 -F -q "+dev+"p4") {
		t.Errorf("--dry-run makes a filesystem on the image target %sp4:\n%s", dev, stdout)
	}
	if b, _ := exec.Command("sgdisk", "-p", img).CombinedOutput(); strings.Contains(string(b), "Number  Start") && strings.Contains(string(b), "\n   1 ") {
		t.Fatalf("--dry-run wrote a GPT:\n%s", b)
	}

	code, _, stderr = partitionRun(t, "--node-timeout", "300ms", doc)
	if code != 1 || !strings.Contains(stderr, `gpt "`+dev+`"`) || !strings.Contains(stderr, "BLKRRPART") {
		t.Fatalf("real run on a host without partition support: exit %d, stderr:\n%s", code, stderr)
	}
	b, err := exec.Command("sgdisk", "-p", img).CombinedOutput()
	if err != nil {
		t.Fatalf("sgdisk -p: %v\n%s", err, b)
	}
	for _, row := range [][]string{
		{"1", "2048", "51199", "EF02"},
		{"2", "53248", "462847", "8300"},
		{"3", "464896", "874495", "8300"},
		{"4", "876544", "1695743", "8300"},
		{"5", "1697792", "2107391", "8300"},
		{"6", "2109440", "2150399", "8300"},
	} {
		found := false
		for _, l := range strings.Split(string(b), "\n") {
			f := strings.Fields(l)
			if len(f) >= 6 && f[0] == row[0] && f[1] == row[1] && f[2] == row[2] && f[5] == row[3] {
				found = true
			}
		}
		if !found {
			t.Errorf("sgdisk -p lacks partition %v:\n%s", row, b)
		}
	}
}
