package agent

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"sync"
	"testing"

	"github.com/imprint-dev/imprint/api"
	"github.com/imprint-dev/imprint/inventory"
	"github.com/imprint-dev/imprint/partition"
	"github.com/imprint-dev/imprint/provision"
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

func (f fakeDisks) Apply(ctx context.Context, p *partition.Plan) error {
	var disks []string
	for _, d := range p.Disks {
		disks = append(disks, d.Device)
	}
	return f.act(ctx, StepDisks, joinS(disks))
}

type fakeImages struct{ *fakeSteps }

func (f fakeImages) Write(ctx context.Context, img partition.Image, progress ProgressFunc) error {
	const size = 3 << 20
	progress(0, size)
	if err := f.act(ctx, StepImages, img.URI+" -> "+img.Device); err != nil {
		progress(1<<20, size)
		return err
	}
	progress(size, size)
	return nil
}

type fakeConfigdrive struct{ *fakeSteps }

func (f fakeConfigdrive) Write(ctx context.Context, doc *provision.Document, dev string) error {
	return f.act(ctx, StepConfigdrive, doc.Hostname+" -> "+dev)
}

type fakeBootloader struct{ *fakeSteps }

func (f fakeBootloader) Install(ctx context.Context, doc *provision.Document, p *partition.Plan) error {
	return f.act(ctx, StepBootloader, joinS(p.Bootloader)+" "+doc.KsMeta.PmData.KernelParams)
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
		Parser:      DefaultParser(),
		Planner:     DefaultPlanner(),
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

func (r *fakeReporter) Discovery(context.Context, Discovery) error { return nil }
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

// syncBuffer is a bytes.Buffer safe for concurrent log writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// testLogger logs text into buf and, on failure, to t.Log.
func testLogger(t *testing.T, buf *syncBuffer) *slog.Logger {
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(buf.String())
		}
	})
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func fixture(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/provision_fuel90_ubuntu_1disk.json")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var errBoom = errors.New("boom")
