//go:build loop

package partition_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/imprint-dev/imprint/internal/sys"
	"github.com/imprint-dev/imprint/internal/vmtest"
	"github.com/imprint-dev/imprint/partition"
)

// gptDevices is sys.Devices whose partition listing is the GPT read from
// the disk's image: this host's kernel parses no partition tables, so the
// loop device of a whole disk has no partitions in sysfs.
type gptDevices struct {
	*sys.Devices
	files map[string]string
}

func (g gptDevices) Partitions(dev string) ([]partition.ExistingPartition, error) {
	img, ok := g.files[dev]
	if !ok {
		return g.Devices.Partitions(dev)
	}
	parts, err := vmtest.Partitions(img)
	if err != nil {
		return nil, nil // no table yet
	}
	var out []partition.ExistingPartition
	for _, p := range parts {
		out = append(out, partition.ExistingPartition{Name: "p" + strconv.Itoa(p.Number), Number: p.Number, StartBytes: p.StartBytes, SizeBytes: p.SizeBytes})
	}
	return out, nil
}

// TestLoopKeepDataPartition: a loop disk laid out, a marker written into
// its /var ext4; the same layout with /var kept applies again on the real
// device: /var keeps its marker and UUID, the other filesystems are made
// anew (new UUIDs), the table stays; a plan that would move /var is
// refused and the image's bytes do not change.
func TestLoopKeepDataPartition(t *testing.T) {
	loopRequire(t)
	ctx := context.Background()
	img, dev := loopDisk(t, 1200)
	nodes := &offsetLoops{t: t, files: map[string]string{dev: img}, nodes: map[string]string{}}
	deps := partition.ApplyDeps{
		Logger:  loopLogger(t),
		Runner:  &sys.Exec{},
		Devices: gptDevices{Devices: &sys.Devices{Nodes: nodes}, files: map[string]string{dev: img}},
	}
	plan := loopPlan(dev)
	if err := partition.Apply(ctx, plan, deps); err != nil {
		t.Fatalf("first Apply: %v", err)
	}
	parts := plan.Disks[0].Partitions
	varOff, srvOff, swapOff := parts[5].BeginMiB*loopMiB, parts[1].BeginMiB*loopMiB, parts[3].BeginMiB*loopMiB
	if err := vmtest.DebugfsWrite(img, varOff, "/imprint-marker", "kept\n"); err != nil {
		t.Fatal(err)
	}
	uuid := func(off int64) string {
		p, err := vmtest.Probe(img, off)
		if err != nil {
			t.Fatal(err)
		}
		return p["UUID"]
	}
	varUUID, srvUUID, swapUUID := uuid(varOff), uuid(srvOff), uuid(swapOff)

	keep := loopPlan(dev)
	keep.FSs[4].KeepData = true // /var
	keep.KeepData = true
	if err := partition.Apply(ctx, keep, deps); err != nil {
		t.Fatalf("keep_data Apply: %v", err)
	}
	if got, err := vmtest.DebugfsCat(img, varOff, "/imprint-marker"); err != nil || got != "kept\n" || uuid(varOff) != varUUID {
		t.Errorf("kept /var: marker %q (%v), UUID %s (was %s)", got, err, uuid(varOff), varUUID)
	}
	if uuid(srvOff) == srvUUID || uuid(swapOff) == swapUUID || uuid(srvOff) == "" || uuid(swapOff) == "" {
		t.Errorf("/srv (UUID %s, was %s) and swap (%s, was %s) must be made anew", uuid(srvOff), srvUUID, uuid(swapOff), swapUUID)
	}
	loopCheckLayout(t, img, keep, nodes)

	moved := loopPlan(dev)
	moved.FSs[4].KeepData = true
	moved.KeepData = true
	moved.Disks[0].Partitions[5].BeginMiB++
	sum := vmtest.FileSHA256(t, img)
	err := partition.Apply(ctx, moved, deps)
	var se *partition.StepError
	if !errors.As(err, &se) || se.Step != partition.StepSafety || !strings.Contains(err.Error(), "would move") {
		t.Fatalf("moving the kept /var: Apply = %v, want a safety refusal", err)
	}
	if got := vmtest.FileSHA256(t, img); got != sum {
		t.Errorf("the refused plan changed the disk: sha256 %s, was %s", got, sum)
	}
}
