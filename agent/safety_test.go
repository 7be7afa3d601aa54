package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/imprint-dev/imprint/api"
	"github.com/imprint-dev/imprint/internal/logtest"
	"github.com/imprint-dev/imprint/inventory"
	"github.com/imprint-dev/imprint/partition"
)

// A scheme-mode document whose PV lives on a disk its parteds do not list
// (nailgun_simple's own sample: /dev/sdc3) is refused before any step runs,
// on a node that has that disk.
func TestRefusedDocumentRunsNoStep(t *testing.T) {
	b, err := os.ReadFile("../partition/testdata/simple_nailgun_driver.json")
	if err != nil {
		t.Fatal(err)
	}
	// Without the sample's other mistake (a type GUID "fake_guid"), which
	// stops the planner before the devices are checked.
	b = []byte(strings.ReplaceAll(string(b), `"fake_guid"`, "null"))
	f := newFakeSteps()
	steps := f.steps()
	steps.Inventory = api.InventoryFunc(func(context.Context) (*inventory.Inventory, error) {
		var inv inventory.Inventory
		for _, n := range []string{"sda", "sdb", "sdc"} {
			inv.Disks = append(inv.Disks, inventory.Disk{Name: n, Path: "/dev/" + n, SizeBytes: 500 << 30, LogicalSectorSize: 512, PhysicalSectorSize: 512})
		}
		return &inv, nil
	})
	j, err := NewJobs(context.Background(), steps, JobsOptions{AllowDestructive: true, Logger: testLogger(t, &logtest.Buffer{})})
	if err != nil {
		t.Fatal(err)
	}
	_, err = j.Start(context.Background(), b, false)
	var ve *api.ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("Start = %v, want a ValidationError", err)
	}
	if !strings.Contains(ve.Error(), "/dev/sdc3") {
		t.Errorf("the refusal does not name /dev/sdc3: %v", ve)
	}
	if calls := f.Calls(); len(calls) != 0 {
		t.Errorf("steps ran for a refused document: %q", calls)
	}
	if st := j.Status(); st.State != api.StateIdle {
		t.Errorf("state %q, want idle", st.State)
	}
}

// An image written with no digest and no metadata is reported: verified
// false on the image, a warning in the status the result callback carries.
func TestUnverifiedImageIsReported(t *testing.T) {
	rep := &fakeReporter{}
	j, _ := newTestJobs(t, context.Background(), newFakeSteps(), JobsOptions{Reporter: rep})
	st, err := j.Run(context.Background(), editFixture(t, nil), false)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Images) != 2 {
		t.Fatalf("images %+v", st.Images)
	}
	for _, img := range st.Images {
		if img.Verified == nil || *img.Verified {
			t.Errorf("image %s verified = %v, want false", img.URI, img.Verified)
		}
	}
	n := 0
	for _, w := range st.Warnings {
		if strings.Contains(w.Msg, "verified: false") {
			n++
		}
	}
	if n != 2 {
		t.Errorf("warnings %+v: want one 'verified: false' per image", st.Warnings)
	}
	rep.mu.Lock()
	results := append([]api.Status(nil), rep.results...)
	rep.mu.Unlock()
	if len(results) != 1 || len(results[0].Warnings) < 2 {
		t.Errorf("the result callback lacks the warnings: %+v", results)
	}

	// With a digest, the fake writer reports it verified: no warning.
	st, err = j.Run(context.Background(), fixture(t), true)
	if err != nil {
		t.Fatal(err)
	}
	for _, img := range st.Images {
		if img.Verified == nil || !*img.Verified {
			t.Errorf("image %s with a digest: verified = %v", img.URI, img.Verified)
		}
	}
}

// A step's failure keeps its facts: the reason, the device, and the
// original error for errors.As.
func TestFailureKeepsReasonAndDevice(t *testing.T) {
	tests := []struct {
		step   string
		err    error
		reason string
		device string
	}{
		{StepDisks, &partition.StepError{Step: "safety", Device: "/dev/vda", Err: fmt.Errorf("%w: vda3 mounted on /mnt", partition.ErrInUse)}, api.ReasonDeviceInUse, "/dev/vda"},
		{StepDisks, &partition.StepError{Step: "mkfs", Device: "/dev/vda9", Err: fmt.Errorf("%w: refusing mkfs", partition.ErrNotPlanned)}, api.ReasonNotPlanned, "/dev/vda9"},
		{StepImages, context.Canceled, api.ReasonCancelled, "/dev/mapper/os-root"},
		{StepBootloader, errors.New("grub-install: exit status 1"), api.ReasonInternal, ""},
	}
	for _, tt := range tests {
		t.Run(tt.reason, func(t *testing.T) {
			f := newFakeSteps()
			f.fail, f.failErr = tt.step, tt.err
			j, _ := newTestJobs(t, context.Background(), f, JobsOptions{})
			st, err := j.Run(context.Background(), fixture(t), false)
			if st.Error == nil || st.Error.Reason != tt.reason || st.Error.Step != tt.step {
				t.Fatalf("error %+v, want step %s reason %s", st.Error, tt.step, tt.reason)
			}
			if tt.device != "" && st.Error.Device != tt.device {
				t.Errorf("device %q, want %q", st.Error.Device, tt.device)
			}
			if !errors.Is(err, tt.err) {
				t.Errorf("Run's error %v does not wrap the step's own error", err)
			}
			var se *StepError
			if !errors.As(err, &se) || se.Reason != tt.reason {
				t.Errorf("Run's error %v: no StepError with the reason", err)
			}
		})
	}
}

// The documents that used to fail only after the wipe (class 5 of issue
// 15: a timezone, an IP that is not one, an unclean LV mount, kernel_params
// that would run as root) get 422 from POST /v1/plan and POST /v1/provision
// naming the field, and start nothing.
func TestAPIRefusesLateFailures(t *testing.T) {
	ksMeta := func(m map[string]any) map[string]any { return m["ks_meta"].(map[string]any) }
	pm := func(m map[string]any) map[string]any { return ksMeta(m)["pm_data"].(map[string]any) }
	lv := func(m map[string]any, space int) map[string]any {
		return pm(m)["ks_spaces"].([]any)[space].(map[string]any)["volumes"].([]any)[0].(map[string]any)
	}
	f := newFakeSteps()
	h := newAPIHarness(t, context.Background(), f)
	for _, tt := range []struct {
		name   string
		mutate func(m map[string]any)
		path   string
	}{
		{"timezone", func(m map[string]any) { ksMeta(m)["timezone"] = "Mars/Olympus_Mons" }, "ks_meta.timezone"},
		{"master_ip", func(m map[string]any) { ksMeta(m)["master_ip"] = "fuel-master" }, "ks_meta.master_ip"},
		{"gw", func(m map[string]any) { ksMeta(m)["gw"] = "10.20.0" }, "ks_meta.gw"},
		{"lv mount /tmp/", func(m map[string]any) { lv(m, 2)["mount"] = "/tmp/" }, "ks_meta.pm_data.ks_spaces[2].volumes[0].mount"},
		{"lv mount /var/./log", func(m map[string]any) { lv(m, 2)["mount"] = "/var/./log" }, "ks_meta.pm_data.ks_spaces[2].volumes[0].mount"},
		{"kernel_params $()", func(m map[string]any) { pm(m)["kernel_params"] = "console=tty0 $(touch /tmp/pwned)" }, "ks_meta.pm_data.kernel_params"},
		{"kernel_params backquotes", func(m map[string]any) { pm(m)["kernel_params"] = "console=tty0 `touch /tmp/pwned`" }, "ks_meta.pm_data.kernel_params"},
		{"file image", func(m map[string]any) {
			ksMeta(m)["image_data"].(map[string]any)["/"].(map[string]any)["uri"] = "file:///dev/vda"
		}, `ks_meta.image_data["/"].uri`},
	} {
		doc := string(editFixture(t, tt.mutate))
		for _, path := range []string{"/v1/plan", "/v1/provision"} {
			code, body := h.do(t, "POST", path, doc)
			var e api.Error
			json.Unmarshal([]byte(body), &e)
			found := false
			for _, p := range e.Problems {
				found = found || p.Path == tt.path
			}
			if code != http.StatusUnprocessableEntity || !found {
				t.Errorf("%s: POST %s = %d %s, want 422 naming %s", tt.name, path, code, body, tt.path)
			}
		}
	}
	if calls := f.Calls(); len(calls) != 0 {
		t.Errorf("steps ran: %q", calls)
	}
}

// Outside the ramdisk (the destructive setting not yes) a provision is
// 403 and nothing runs; planning still works.
func TestAPIRefusesOutsideRamdisk(t *testing.T) {
	f := newFakeSteps()
	j, err := NewJobs(context.Background(), f.steps(), JobsOptions{AllowDestructive: true, Refuse: ErrNotDestructive, Logger: testLogger(t, &logtest.Buffer{})})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := j.Start(context.Background(), fixture(t), false); !errors.Is(err, api.ErrRefused) {
		t.Fatalf("Start = %v, want ErrRefused", err)
	}
	if _, err := j.Plan(context.Background(), fixture(t)); err != nil {
		t.Errorf("Plan = %v", err)
	}
	srv := httptest.NewServer(api.NewRouter(api.Deps{Jobs: j, Token: testToken}))
	defer srv.Close()
	req, _ := http.NewRequest("POST", srv.URL+"/v1/provision", strings.NewReader(string(fixture(t))))
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("POST /v1/provision = %d, want 403", resp.StatusCode)
	}
	if calls := f.Calls(); len(calls) != 0 {
		t.Errorf("steps ran: %q", calls)
	}
}

// A step's duration while it runs counts from its start: the report step,
// started through setStep, is not dated from the zero time.
func TestRunningStepDuration(t *testing.T) {
	rep := &blockingReporter{release: make(chan struct{}), started: make(chan struct{})}
	j, _ := newTestJobs(t, context.Background(), newFakeSteps(), JobsOptions{Reporter: rep})
	if _, err := j.Start(context.Background(), fixture(t), false); err != nil {
		t.Fatal(err)
	}
	<-rep.started
	for _, s := range j.Status().Steps {
		if s.Name == StepReport && (s.State != api.StepRunning || s.DurationSeconds > 60) {
			t.Errorf("report step %+v while the result is being delivered", s)
		}
	}
	close(rep.release)
	j.Wait()
}

// blockingReporter holds the result callback until released.
type blockingReporter struct {
	fakeReporter
	started, release chan struct{}
}

func (r *blockingReporter) Result(ctx context.Context, st api.Status) error {
	close(r.started)
	<-r.release
	return nil
}
