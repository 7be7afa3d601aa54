package agent

import (
	"bytes"
	"compress/gzip"
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/imprint-dev/imprint/api"
	"github.com/imprint-dev/imprint/imagewriter"
	"github.com/imprint-dev/imprint/internal/logtest"
	"github.com/imprint-dev/imprint/internal/promscrape"
	"github.com/imprint-dev/imprint/prepare"
)

// fileImages is the images step writing each image with the real image
// writer into a file of the test (not the job's device), counted by the
// agent's metrics as ImageWriter counts them.
type fileImages struct {
	*fakeSteps
	dir     string
	metrics *Metrics
}

func (f fileImages) Write(ctx context.Context, job *prepare.Job, img prepare.Image, progress ProgressFunc) (ImageResult, error) {
	f.record(StepImages, img.URI)
	counter := f.metrics.ImageCounter()
	res, err := imagewriter.Write(ctx, imagewriter.Request{URL: img.URI, Device: filepath.Join(f.dir, strings.Trim(img.Mount, "/")+"root.img")},
		imagewriter.Options{AllowRegularFile: true, RetryBackoff: time.Millisecond, Progress: func(p imagewriter.Progress) {
			counter.Progress(p)
			progress(p.BytesWritten, p.TotalWritten)
		}})
	if err != nil {
		return ImageResult{}, err
	}
	counter.Done(res)
	return ImageResult{VerifiedBy: res.Verified}, nil
}

// TestAgentMetrics provisions through the agent's API with the real image
// writer (its first connection cut mid-stream) and a controller that
// refuses the first result callback, and scrapes /v1/metrics over HTTP:
// bytes read and written, step durations, the download and callback
// retries and the finished job move; /v1/metrics needs the token.
func TestAgentMetrics(t *testing.T) {
	raw := bytes.Repeat([]byte("imprint agent metrics "), 200000) // 4.4 MB
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(raw)
	zw.Close()
	var gets atomic.Int32
	imgSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if gets.Add(1) == 1 {
			w.Header().Set("Content-Length", strconv.Itoa(gz.Len()))
			w.Write(gz.Bytes()[:gz.Len()/2])
			panic(http.ErrAbortHandler) // the connection breaks mid-download
		}
		http.ServeContent(w, r, "", time.Unix(0, 0), bytes.NewReader(gz.Bytes()))
	}))
	defer imgSrv.Close()
	var results atomic.Int32
	ctrl := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/result") && results.Add(1) == 1 {
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer ctrl.Close()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	buf := &logtest.Buffer{}
	log := testLogger(t, buf)
	m := NewMetrics(nil)
	f := newFakeSteps()
	steps := f.steps()
	steps.Images = fileImages{fakeSteps: f, dir: t.TempDir(), metrics: m}
	rep := &CallbackClient{URL: ctrl.URL, Token: "t", Logger: log, Metrics: m, Sleep: func(context.Context, time.Duration) error { return nil }}
	jobs, err := NewJobs(ctx, steps, JobsOptions{Logger: log, AllowDestructive: true, Reporter: rep, Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api.NewRouter(api.Deps{Logger: log, Token: testToken, Inventory: fakeInventory, Jobs: jobs, Metrics: m.Handler()}))
	defer func() { srv.Close(); jobs.Wait() }()
	h := &apiHarness{srv: srv, jobs: jobs, steps: f}

	if resp, err := http.Get(srv.URL + "/v1/metrics"); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("GET /v1/metrics without the token: %v %v", resp.Status, err)
	}
	scrape := func() promscrape.Families {
		t.Helper()
		fam, err := promscrape.Scrape(ctx, nil, srv.URL+"/v1/metrics", testToken)
		if err != nil {
			t.Fatal(err)
		}
		return fam
	}
	fam := scrape()
	if v := fam.Value("imprint_agent_image_written_bytes_total", nil); v != 0 {
		t.Errorf("before the job: %v bytes written", v)
	}

	doc := editFixture(t, func(m map[string]any) {
		for mnt, img := range m["ks_meta"].(map[string]any)["image_data"].(map[string]any) {
			img.(map[string]any)["uri"] = imgSrv.URL + "/img" + strings.ReplaceAll(mnt, "/", "_") + ".gz"
		}
	})
	if code, body := h.do(t, "POST", "/v1/provision", string(doc)); code != http.StatusAccepted {
		t.Fatalf("provision: %d %s", code, body)
	}
	h.waitState(t, api.StateSucceeded)
	deadline := time.Now().Add(10 * time.Second)
	for results.Load() < 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	jobs.Wait()

	fam = scrape()
	images := 0
	for _, c := range f.Calls() {
		if strings.HasPrefix(c, StepImages+" ") {
			images++
		}
	}
	if v := fam.Value("imprint_agent_image_written_bytes_total", nil); v != float64(images*len(raw)) {
		t.Errorf("bytes written = %v, want %d images × %d", v, images, len(raw))
	}
	if v := fam.Value("imprint_agent_image_read_bytes_total", nil); v != float64(images*gz.Len()) {
		t.Errorf("bytes read = %v, want %d images × %d (a resumed download counts each byte once)", v, images, gz.Len())
	}
	if v := fam.Value("imprint_agent_retries_total", map[string]string{"kind": RetryDownload}); v < 1 {
		t.Errorf("download retries = %v, want ≥ 1 (the first connection broke)", v)
	}
	if v := fam.Value("imprint_agent_retries_total", map[string]string{"kind": RetryCallback}); v != 1 {
		t.Errorf("callback retries = %v, want 1 (the first result was refused)", v)
	}
	for _, step := range []string{StepDisks, StepConfigdrive, StepImages, StepBootloader} {
		if n := fam.Histogram("imprint_agent_step_duration_seconds", map[string]string{"step": step, "state": "succeeded"}).Count; n != 1 {
			t.Errorf("step %s: %d durations, want 1", step, n)
		}
	}
	if v := fam.Value("imprint_agent_jobs_total", map[string]string{"state": api.StateSucceeded}); v != 1 {
		t.Errorf("jobs succeeded = %v, want 1", v)
	}
}
