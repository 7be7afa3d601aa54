package agent

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/imprint-dev/imprint/api"
	"github.com/imprint-dev/imprint/internal/logtest"
)

func newTestJobs(t *testing.T, ctx context.Context, f *fakeSteps, opts JobsOptions) (*Jobs, *logtest.Buffer) {
	t.Helper()
	buf := &logtest.Buffer{}
	opts.Logger = testLogger(t, buf)
	opts.AllowDestructive = true
	j, err := NewJobs(ctx, f.steps(), opts)
	if err != nil {
		t.Fatal(err)
	}
	return j, buf
}

func stepStates(st api.Status) map[string]string {
	m := map[string]string{}
	for _, s := range st.Steps {
		m[s.Name] = string(s.State)
	}
	return m
}

func TestJobSucceeds(t *testing.T) {
	f := newFakeSteps()
	rep := &fakeReporter{}
	j, logs := newTestJobs(t, context.Background(), f, JobsOptions{Reporter: rep, StateDir: t.TempDir()})
	st, err := j.Run(context.Background(), fixture(t), false)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if st.State != api.StateSucceeded || !st.Locked || st.Error != nil {
		t.Errorf("status %+v, want succeeded and locked", st)
	}
	want := []string{
		"disks /dev/vda",
		"configdrive node-4.domain.tld -> /dev/vda9",
		"images http://10.20.0.2:8080/targetimages/env_1_ubuntu_1404_amd64.img.gz -> /dev/mapper/os-root",
		"images http://10.20.0.2:8080/targetimages/env_1_ubuntu_1404_amd64-boot.img.gz -> /dev/vda3",
		"bootloader /dev/vda console=tty0 net.ifnames=1 biosdevname=0 rootdelay=90 nomodeset",
	}
	if d := cmp.Diff(want, f.Calls()); d != "" {
		t.Errorf("steps (-want +got):\n%s", d)
	}
	wantStates := map[string]string{"prepare": "succeeded", "disks": "succeeded", "configdrive": "succeeded",
		"images": "succeeded", "bootloader": "succeeded", "report": "succeeded"}
	if d := cmp.Diff(wantStates, stepStates(j.Status())); d != "" {
		t.Errorf("step states (-want +got):\n%s", d)
	}
	if st.BytesDone != 6<<20 || st.BytesTotal != 6<<20 {
		t.Errorf("bytes %d/%d, want %d/%d", st.BytesDone, st.BytesTotal, 6<<20, 6<<20)
	}
	if len(rep.results) != 1 || rep.results[0].State != api.StateSucceeded {
		t.Errorf("results reported: %+v", rep.results)
	}
	// fuel-agent's step lines, in the order Astute's parser expects
	out := logs.String()
	last := -1
	for _, line := range []string{lineProvisioning, linePartitioning, lineConfigdrive, lineCopyimage, lineBootloader, lineProvisioningEnd} {
		i := strings.Index(out, line)
		if i < 0 || i < last {
			t.Errorf("log line %q missing or out of order", line)
		}
		last = i
	}

	// locked: a second job needs force
	if _, err := j.Start(context.Background(), fixture(t), false); !errors.Is(err, api.ErrLocked) {
		t.Errorf("second Start without force: %v, want ErrLocked", err)
	}
	// the lock survives a restart (lock file in StateDir)
	j2, _ := newTestJobs(t, context.Background(), newFakeSteps(), JobsOptions{StateDir: j.opts.StateDir})
	if !j2.Status().Locked {
		t.Error("a new agent over the same state dir is not locked")
	}
	if _, err := j.Run(context.Background(), fixture(t), true); err != nil {
		t.Errorf("forced Run: %v", err)
	}
}

func TestJobFailsWithStepAndDevice(t *testing.T) {
	f := newFakeSteps()
	f.fail, f.failErr = StepImages, errBoom
	j, logs := newTestJobs(t, context.Background(), f, JobsOptions{})
	st, err := j.Run(context.Background(), fixture(t), false)
	var se *StepError
	if !errors.As(err, &se) || se.Step != StepImages || se.Device != "/dev/mapper/os-root" {
		t.Fatalf("Run error = %v, want a StepError for images on /dev/mapper/os-root", err)
	}
	if st.State != api.StateFailed || st.Step != StepImages || st.Error == nil || !strings.Contains(st.Error.Message, "boom") || st.Locked {
		t.Errorf("status %+v", st)
	}
	want := map[string]string{"prepare": "succeeded", "disks": "succeeded", "configdrive": "succeeded",
		"images": "failed", "bootloader": "skipped", "report": "skipped"}
	if d := cmp.Diff(want, stepStates(st)); d != "" {
		t.Errorf("step states (-want +got):\n%s", d)
	}
	if st.BytesDone != 1<<20 || st.BytesTotal != -1 {
		t.Errorf("bytes %d/%d, want 1 MiB of an unknown total (second image never started)", st.BytesDone, st.BytesTotal)
	}
	if strings.Contains(logs.String(), lineProvisioningEnd) {
		t.Error("END line logged for a failed job")
	}
	// a failed job does not lock: the next one may run
	f.fail = ""
	if _, err := j.Run(context.Background(), fixture(t), false); err != nil {
		t.Errorf("Run after failure: %v", err)
	}
}

func TestInvalidDocumentIsNotAJob(t *testing.T) {
	j, _ := newTestJobs(t, context.Background(), newFakeSteps(), JobsOptions{})
	doc := strings.Replace(string(editFixture(t, nil)), `"kernel_params"`, `"kernel_paramz"`, 1)
	doc = strings.Replace(doc, `"size": 81920`, `"size": -5`, 1)
	_, err := j.Start(context.Background(), []byte(doc), false)
	var ve *api.ValidationError
	if !errors.As(err, &ve) || len(ve.Problems) < 2 {
		t.Fatalf("Start error = %v, want a ValidationError with every problem", err)
	}
	paths := map[string]bool{}
	for _, p := range ve.Problems {
		paths[p.Path] = true
	}
	if !paths["ks_meta.pm_data.kernel_params"] {
		t.Errorf("problems %+v do not name ks_meta.pm_data.kernel_params", ve.Problems)
	}
	if st := j.Status(); st.State != api.StateIdle {
		t.Errorf("status after a refused document: %+v, want idle", st)
	}
	// plan errors (a disk the node does not have) are 422 too
	doc = strings.Replace(string(editFixture(t, nil)), `"name": "vda"`, `"name": "sdz"`, 1)
	doc = strings.Replace(doc, `"id": "vda"`, `"id": "sdz"`, 1)
	if _, err := j.Plan(context.Background(), []byte(doc)); !errors.As(err, &ve) || !strings.Contains(ve.Error(), "ks_spaces") {
		t.Errorf("Plan with an unknown disk: %v", err)
	}
}

func TestCancelLeavesFailedState(t *testing.T) {
	ctx, cancel := context.WithCancelCause(context.Background())
	f := newFakeSteps()
	f.block = StepImages
	j, _ := newTestJobs(t, ctx, f, JobsOptions{})
	if _, err := j.Start(context.Background(), fixture(t), false); err != nil {
		t.Fatal(err)
	}
	<-f.blocking
	if st := j.Status(); st.State != api.StateRunning || st.Step != StepImages {
		t.Errorf("status while blocked: %+v", st)
	}
	cancel(errors.New("terminated signal received"))
	j.Wait()
	st := j.Status()
	if st.State != api.StateFailed || st.Error == nil || st.Error.Step != StepImages || !strings.Contains(st.Error.Message, "terminated signal received") {
		t.Errorf("status after cancel: %+v (error %+v)", st, st.Error)
	}
	if strings.Contains(strings.Join(f.Calls(), "\n"), "bootloader") {
		t.Error("bootloader ran after cancel")
	}
}

func TestNoDestructiveWithoutPermission(t *testing.T) {
	f := newFakeSteps()
	j, err := NewJobs(context.Background(), f.steps(), JobsOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := j.Start(context.Background(), fixture(t), false); !errors.Is(err, api.ErrNoToken) {
		t.Errorf("Start without AllowDestructive: %v", err)
	}
	if _, err := j.Plan(context.Background(), fixture(t)); err != nil {
		t.Errorf("Plan (touches nothing) refused: %v", err)
	}
	if len(f.Calls()) != 0 {
		t.Errorf("steps ran: %v", f.Calls())
	}
}

func TestSubscribeReplaysAndFollows(t *testing.T) {
	f := newFakeSteps()
	f.block = StepBootloader
	j, _ := newTestJobs(t, context.Background(), f, JobsOptions{})
	if _, err := j.Start(context.Background(), fixture(t), false); err != nil {
		t.Fatal(err)
	}
	<-f.blocking
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch := j.Subscribe(ctx, 0)
	var got []string
	for ev := range ch {
		got = append(got, ev.Type+":"+ev.Step+ev.State)
		if ev.Type == api.EventStepStart && ev.Step == StepBootloader {
			break
		}
	}
	want := []string{"state:pending", "state:running", "step_start:disks", "step_end:diskssucceeded",
		"step_start:configdrive", "step_end:configdrivesucceeded", "step_start:images", "progress:images",
		"progress:images", "step_end:imagessucceeded", "step_start:bootloader"}
	if d := cmp.Diff(want, dedupeProgress(got)); d != "" {
		t.Errorf("replayed events (-want +got):\n%s", d)
	}
}

// dedupeProgress keeps at most two progress events in a row (their count
// depends on the throttle).
func dedupeProgress(evs []string) []string {
	var out []string
	run := 0
	for _, e := range evs {
		if strings.HasPrefix(e, "progress:") {
			run++
			if run > 2 {
				continue
			}
		} else {
			run = 0
		}
		out = append(out, e)
	}
	return out
}

func TestHeartbeatsWhileRunning(t *testing.T) {
	f := newFakeSteps()
	f.block = StepImages
	ctx, cancel := context.WithCancel(context.Background())
	rep := &fakeReporter{}
	j, _ := newTestJobs(t, ctx, f, JobsOptions{Reporter: rep, Heartbeat: 2 * time.Millisecond})
	if _, err := j.Start(context.Background(), fixture(t), false); err != nil {
		t.Fatal(err)
	}
	<-f.blocking
	deadline := time.Now().Add(10 * time.Second)
	for {
		rep.mu.Lock()
		n := rep.progress
		rep.mu.Unlock()
		if n >= 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d heartbeats", n)
		}
		time.Sleep(2 * time.Millisecond)
	}
	cancel()
	j.Wait()
	rep.mu.Lock()
	defer rep.mu.Unlock()
	if len(rep.results) != 1 || rep.results[0].State != api.StateFailed || rep.results[0].Error.Step != StepImages {
		t.Errorf("result after cancel: %+v", rep.results)
	}
}
