package bootstrap

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestGroupMultipath(t *testing.T) {
	paths := []MPPath{
		{Name: "sdb", Dev: "8:16", WWID: "naa.5000C50015EA71AC", Sectors: 4194304},
		{Name: "sda", Dev: "8:0", WWID: "naa.5000c50015ea71ac", Sectors: 4194304},
		{Name: "sdc", Dev: "8:32", WWID: "naa.5000c500aaaaaaaa", Sectors: 100}, // one path: stays a disk
		{Name: "vda", Dev: "252:0", Sectors: 100},                              // no WWID
		{Name: "sdd", Dev: "8:48", WWID: "eui.0011", Sectors: 10, Held: true},  // already a map
		{Name: "sde", Dev: "8:64", WWID: "eui.0011", Sectors: 10, Held: true},
	}
	got, err := GroupMultipath(paths, map[string]bool{"mpatha": true})
	if err != nil {
		t.Fatal(err)
	}
	want := []MPMap{{Name: "mpathb", UUID: "mpath-35000c50015ea71ac", Table: "0 4194304 multipath 0 0 1 1 round-robin 0 2 1 8:0 1 8:16 1", Paths: []string{"sda", "sdb"}}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("maps (-want +got):\n%s", diff)
	}
	paths[0].Sectors = 8
	if _, err := GroupMultipath(paths, nil); err == nil || !strings.Contains(err.Error(), "differ in size") {
		t.Errorf("paths of different sizes: %v", err)
	}
	for n, want := range map[int]string{0: "a", 25: "z", 26: "aa", 27: "ab", 52: "ba"} {
		if got := suffix(n); got != want {
			t.Errorf("suffix(%d) = %q, want %q", n, got, want)
		}
	}
}
