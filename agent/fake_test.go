package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/imprint-dev/imprint/api"
	"github.com/imprint-dev/imprint/internal/logtest"
	"github.com/imprint-dev/imprint/inventory"
	"github.com/imprint-dev/imprint/prepare"
)

// fakeInventory is a node with the fixture's disk (vda, 100 GiB).
var fakeInventory = api.InventoryFunc(func(context.Context) (*inventory.Inventory, error) {
	return &inventory.Inventory{
		Disks: []inventory.Disk{{Name: "vda", Path: "/dev/vda", SizeBytes: 100 << 30, LogicalSectorSize: 512, PhysicalSectorSize: 512}},
		NICs:  []inventory.NIC{{Name: "eth0", MAC: "52:54:00:16:ea:68", Link: true}},
		CPU:   inventory.CPU{Count: 2, Arch: "amd64"},
		DMI:   inventory.DMI{UUID: "0c7e1b9e-0000-4000-8000-000000000001"},
	}, nil
})

// fakeSteps records what each step was asked to do. block makes the named
// step wait for its context; fail makes it fail with failErr.
type fakeSteps struct {
	mu       sync.Mutex
	calls    []string
	block    string
	blocking chan struct{} // closed when the blocking step started
	fail     string
	failErr  error
}

func newFakeSteps() *fakeSteps { return &fakeSteps{blocking: make(chan struct{})} }

func (f *fakeSteps) record(step, what string) error {
	f.mu.Lock()
	f.calls = append(f.calls, step+" "+what)
	f.mu.Unlock()
	return nil
}

func (f *fakeSteps) act(ctx context.Context, step, what string) error {
	f.record(step, what)
	if f.block == step {
		close(f.blocking)
		<-ctx.Done()
		return ctx.Err()
	}
	if f.fail == step {
		return f.failErr
	}
	return nil
}

func (f *fakeSteps) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

type fakeDisks struct{ *fakeSteps }

// guarded records a device the job's guard refused: a recording step
// touches only what the prepared job allows.
func (f *fakeSteps) guarded(job *prepare.Job, step string, devs ...string) error {
	for _, d := range devs {
		if err := job.Devices.Check(d, step); err != nil {
			f.record(step, "REFUSED "+d)
			return err
		}
	}
	return nil
}

func (f fakeDisks) Apply(ctx context.Context, job *prepare.Job) error {
	var disks []string
	for _, d := range job.Plan.Disks {
		disks = append(disks, d.Device)
		if err := f.guarded(job, StepDisks, d.Device); err != nil {
			return err
		}
	}
	return f.act(ctx, StepDisks, joinS(disks))
}

type fakeImages struct{ *fakeSteps }

func (f fakeImages) Write(ctx context.Context, job *prepare.Job, img prepare.Image, progress ProgressFunc) (ImageResult, error) {
	const size = 3 << 20
	if err := f.guarded(job, StepImages, img.Device); err != nil {
		return ImageResult{}, err
	}
	progress(0, size)
	if err := f.act(ctx, StepImages, img.URI+" -> "+img.Device); err != nil {
		progress(1<<20, size)
		return ImageResult{}, err
	}
	progress(size, size)
	if img.SHA256 != "" {
		return ImageResult{VerifiedBy: []string{"sha256"}}, nil
	}
	return ImageResult{}, nil
}

type fakeConfigdrive struct{ *fakeSteps }

func (f fakeConfigdrive) Write(ctx context.Context, job *prepare.Job) error {
	if err := f.guarded(job, StepConfigdrive, job.Configdrive.Device); err != nil {
		return err
	}
	return f.act(ctx, StepConfigdrive, job.Doc.Hostname+" -> "+job.Configdrive.Device)
}

type fakeBootloader struct{ *fakeSteps }

func (f fakeBootloader) Install(ctx context.Context, job *prepare.Job) error {
	if err := f.guarded(job, StepBootloader, job.Plan.Bootloader...); err != nil {
		return err
	}
	return f.act(ctx, StepBootloader, joinS(job.Plan.Bootloader)+" "+job.Doc.KsMeta.PmData.KernelParams)
}

func joinS(s []string) string {
	var b bytes.Buffer
	for i, x := range s {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(x)
	}
	return b.String()
}

func (f *fakeSteps) steps() Steps {
	return Steps{
		Inventory:   fakeInventory,
		Disks:       fakeDisks{f},
		Configdrive: fakeConfigdrive{f},
		Images:      fakeImages{f},
		Bootloader:  fakeBootloader{f},
	}
}

// fakeReporter records callbacks.
type fakeReporter struct {
	mu       sync.Mutex
	results  []api.Status
	progress int
}

func (r *fakeReporter) Discovery(context.Context, api.Discovery) error { return nil }
func (r *fakeReporter) Progress(context.Context, api.Status) error {
	r.mu.Lock()
	r.progress++
	r.mu.Unlock()
	return nil
}
func (r *fakeReporter) Result(_ context.Context, st api.Status) error {
	r.mu.Lock()
	r.results = append(r.results, st)
	r.mu.Unlock()
	return nil
}

// testLogger logs text into buf and, on failure, to t.Log.
func testLogger(t *testing.T, buf *logtest.Buffer) *slog.Logger {
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(buf.String())
		}
	})
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// fixture is the Fuel 9.0 one-disk document with a sha256 for each image
// (the fake images step then reports them verified).
func fixture(t *testing.T) []byte {
	t.Helper()
	return editFixture(t, func(m map[string]any) {
		for _, img := range m["ks_meta"].(map[string]any)["image_data"].(map[string]any) {
			img.(map[string]any)["sha256"] = strings.Repeat("0f", 32)
		}
	})
}

// editFixture is the Fuel 9.0 one-disk document as it is, edited by f.
func editFixture(t *testing.T, f func(m map[string]any)) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/provision_fuel90_ubuntu_1disk.json")
	if err != nil {
		t.Fatal(err)
	}
	if f == nil {
		return b
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	f(m)
	out, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

var errBoom = errors.New("boom")
