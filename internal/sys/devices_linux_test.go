package sys

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/imprint-dev/imprint/internal/testenv"
	"github.com/imprint-dev/imprint/partition"
)

// fixtureTree writes files (path → content) under a temp root.
func fixtureTree(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for p, c := range files {
		full := filepath.Join(root, p)
		if strings.HasSuffix(p, "/") {
			if err := os.MkdirAll(full, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// A disk sda with two partitions; sda2 is an md member, md0 holds an LVM
// PV whose LV dm-0 is mounted; sdb is free.
func sampleSys(t *testing.T) *Devices {
	root := fixtureTree(t, map[string]string{
		"sys/class/block/sda/dev":                      "8:0\n",
		"sys/class/block/sda/size":                     "8388608\n",
		"sys/class/block/sda/queue/logical_block_size": "512\n",
		"sys/class/block/sda/holders/":                 "",
		"sys/class/block/sda/sda1/partition":           "1\n",
		"sys/class/block/sda/sda1/start":               "2048\n",
		"sys/class/block/sda/sda1/size":                "49152\n",
		"sys/class/block/sda/sda1/dev":                 "8:1\n",
		"sys/class/block/sda/sda1/holders/":            "",
		"sys/class/block/sda/sda2/partition":           "2\n",
		"sys/class/block/sda/sda2/start":               "53248\n",
		"sys/class/block/sda/sda2/size":                "409600\n",
		"sys/class/block/sda/sda2/dev":                 "8:2\n",
		"sys/class/block/sda/sda2/holders/md0":         "",
		"sys/class/block/sda/queue/rotational":         "0\n",
		"sys/class/block/sda1/dev":                     "8:1\n",
		"sys/class/block/sda2/dev":                     "8:2\n",
		"sys/class/block/sda2/holders/md0":             "",
		"sys/class/block/md0/dev":                      "9:0\n",
		"sys/class/block/md0/holders/dm-0":             "",
		"sys/class/block/dm-0/dev":                     "253:0\n",
		"sys/class/block/dm-0/holders/":                "",
		"sys/class/block/sdb/dev":                      "8:16\n",
		"sys/class/block/sdb/holders/":                 "",
		"sys/class/block/sdb/queue/logical_block_size": "4096\n",
		"proc/self/mountinfo": "22 1 0:21 / / rw - tmpfs rootfs rw\n" +
			"30 22 253:0 / /srv\\040data rw,relatime - ext4 /dev/mapper/vg-srv rw\n",
		"proc/mounts": "rootfs / tmpfs rw 0 0\n",
		"proc/swaps":  "Filename\tType\tSize\tUsed\tPriority\n",
	})
	return &Devices{SysRoot: filepath.Join(root, "sys"), ProcRoot: filepath.Join(root, "proc"), DevRoot: filepath.Join(root, "dev")}
}

func TestPartitionsOf(t *testing.T) {
	d := sampleSys(t)
	got, err := d.partitionsOf("sda")
	if err != nil {
		t.Fatal(err)
	}
	want := []partition.ExistingPartition{
		{Name: "sda1", Number: 1, StartBytes: 1 << 20, SizeBytes: 24 << 20},
		{Name: "sda2", Number: 2, StartBytes: 26 << 20, SizeBytes: 200 << 20},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("partitionsOf(sda) (-want +got):\n%s", diff)
	}
}

func TestHoldersOf(t *testing.T) {
	d := sampleSys(t)
	for _, tt := range []struct {
		name string
		want []string
	}{
		{"sda", []string{"dm-0", "md0"}},
		{"sdb", []string{}},
	} {
		got, err := d.holdersOf(tt.name)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("holdersOf(%s) (-want +got):\n%s", tt.name, diff)
		}
	}
}

func TestMountsOf(t *testing.T) {
	d := sampleSys(t)
	got, err := d.mountsOf("sda")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"dm-0 mounted on /srv data"}, got); diff != "" {
		t.Errorf("mountsOf(sda) (-want +got):\n%s", diff)
	}
	got, err = d.mountsOf("sdb")
	if err != nil || len(got) != 0 {
		t.Errorf("mountsOf(sdb) = %v, %v; want free", got, err)
	}
}

func TestMDStatMissingIsEmpty(t *testing.T) {
	d := &Devices{ProcRoot: t.TempDir()}
	if s, err := d.MDStat(); s != "" || err != nil {
		t.Errorf("MDStat without md = %q, %v", s, err)
	}
}

func TestNodeCreatesMissingNode(t *testing.T) {
	testenv.RequireRoot(t, "mknod")
	d := sampleSys(t)
	if err := os.MkdirAll(d.DevRoot, 0o755); err != nil {
		t.Fatal(err)
	}
	p, err := d.Node("sda2")
	if err != nil {
		t.Fatal(err)
	}
	got, err := rdev(p)
	if err != nil {
		t.Fatal(err)
	}
	if got != 8<<8|2 {
		t.Errorf("%s is %#x, want 8:2", p, got)
	}
	// Again: the node exists and matches.
	if _, err := d.Node("sda2"); err != nil {
		t.Errorf("second Node: %v", err)
	}
	// A node with another number is reported, not reused.
	if _, err := d.ensureNode("sda2", "8:3"); err == nil || !strings.Contains(err.Error(), "is device 8:2") {
		t.Errorf("ensureNode with a wrong number = %v", err)
	}
}
