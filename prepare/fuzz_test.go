package prepare

import (
	"context"
	"os"
	"runtime"
	"strings"
	"testing"
)

// prepareAllocBudget bounds what preparing one input may allocate. A
// document is at most 16 MiB (api.MaxDocumentBytes); the configdrive image
// built in memory is at most its partition. Anything near this is an
// amplification (YAML aliases, sizes that make the planner loop).
const prepareAllocBudget = 512 << 20

// FuzzPrepare: prepare never panics, stays within its allocation budget,
// and every job it accepts holds the invariant the steps rely on: every
// device the plan's filesystems, PVs, md members, images, configdrive and
// grub name is in the job's device set, the bootloader request validates,
// and every image source is http(s) under the default policy.
func FuzzPrepare(f *testing.F) {
	for _, p := range []string{
		"../agent/testdata/provision_fuel90_ubuntu_1disk.json",
		"../partition/testdata/simple_nailgun_driver.json",
		"../partition/testdata/provision_sample_nailgun_3disks.json",
		"../examples/provision.json",
	} {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("a: &a [x, x, x]\nb: &b [*a, *a, *a]\nc: [*b, *b, *b]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		job, err := Prepare(context.Background(), data, twoDisks, Options{FS: noFS{}})
		runtime.ReadMemStats(&after)
		if d := after.TotalAlloc - before.TotalAlloc; d > prepareAllocBudget {
			t.Fatalf("prepare allocated %d MiB for a %d-byte input (budget %d MiB)", d>>20, len(data), prepareAllocBudget>>20)
		}
		if err != nil {
			return
		}
		p := job.Plan
		for _, fs := range p.FSs {
			if !job.Devices.Contains(fs.Device) {
				t.Fatalf("filesystem device %s outside the device set", fs.Device)
			}
		}
		for _, pv := range p.PVs {
			if !job.Devices.Contains(pv.Device) {
				t.Fatalf("PV %s outside the device set", pv.Device)
			}
		}
		for _, md := range p.MDs {
			for _, m := range md.Members {
				if !job.Devices.Contains(m) {
					t.Fatalf("md member %s outside the device set", m)
				}
			}
		}
		for _, img := range job.Images {
			if !job.Devices.Contains(img.Device) {
				t.Fatalf("image target %s outside the device set", img.Device)
			}
			if !strings.HasPrefix(img.URI, "http://") && !strings.HasPrefix(img.URI, "https://") {
				t.Fatalf("image source %q accepted under the default policy", img.URI)
			}
		}
		if job.Configdrive != nil && !job.Devices.Contains(job.Configdrive.Device) {
			t.Fatalf("configdrive %s outside the device set", job.Configdrive.Device)
		}
		for _, d := range p.Bootloader {
			if !job.Devices.Contains(d) {
				t.Fatalf("grub target %s outside the device set", d)
			}
		}
		if err := job.Bootloader.Validate(); err != nil {
			t.Fatalf("an accepted job's bootloader request is invalid: %v", err)
		}
		if job.Devices.Contains("/dev/vdb") {
			for _, d := range p.Disks {
				if d.Device == "/dev/vdb" {
					return
				}
			}
			t.Fatalf("/dev/vdb in the device set but no planned disk")
		}
	})
}
