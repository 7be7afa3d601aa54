package prepare

import (
	"context"
	"testing"

	"github.com/imprint-dev/imprint/inventory"
)

// keep_data at prepare: the mysql VG's PV carries keep_data; on a node
// whose vda has the plan's table the document prepares, on one where the
// kept PV partition sits elsewhere it is refused (the API's 422) naming
// the partition and both places.
func TestPrepareKeepData(t *testing.T) {
	doc := edit(t, func(m map[string]any) {
		disk := ksMeta(m)["pm_data"].(map[string]any)["ks_spaces"].([]any)[0].(map[string]any)
		for _, v := range disk["volumes"].([]any) {
			if v := v.(map[string]any); v["vg"] == "mysql" {
				v["keep_data"] = true
			}
		}
	})
	// The table a first provision left: the plan's own.
	fresh, err := Prepare(context.Background(), edit(t, nil), twoDisks, Options{FS: noFS{}})
	if err != nil {
		t.Fatal(err)
	}
	inv := &inventory.Inventory{Disks: append([]inventory.Disk{}, twoDisks.Disks...)}
	var parts []inventory.Partition
	for _, p := range fresh.Plan.Disks[0].Partitions {
		parts = append(parts, inventory.Partition{Name: p.Device[len("/dev/"):], Number: p.Number, StartBytes: p.BeginMiB << 20, SizeBytes: (p.EndMiB - p.BeginMiB) << 20})
	}
	inv.Disks[0].Partitions = parts
	job, err := Prepare(context.Background(), doc, inv, Options{FS: noFS{}})
	if err != nil {
		t.Fatalf("same table: %v", err)
	}
	if !job.Plan.KeepData {
		t.Fatal("plan does not keep data")
	}

	// The mysql PV (partition 5) one MiB further on disk.
	moved := append([]inventory.Partition{}, parts...)
	moved[5].StartBytes += 1 << 20
	inv.Disks[0].Partitions = moved
	_, err = Prepare(context.Background(), doc, inv, Options{FS: noFS{}})
	pe, ok := err.(*Error)
	if !ok {
		t.Fatalf("moved: Prepare = %v, want an *Error", err)
	}
	var got []string
	for _, p := range pe.Problems {
		got = append(got, p.String())
	}
	wantProblem(t, got, "ks_meta.pm_data.ks_spaces", `partition /dev/vda6 (kept: a PV of the kept volume group "mysql") would move`)
}
