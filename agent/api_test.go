package agent

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/imprint-dev/imprint/api"
	"github.com/imprint-dev/imprint/internal/logtest"
)

const testToken = "s3cret-token"

type apiHarness struct {
	srv   *httptest.Server
	jobs  *Jobs
	steps *fakeSteps
	power []string
	mu    sync.Mutex
}

func newAPIHarness(t *testing.T, ctx context.Context, f *fakeSteps) *apiHarness {
	t.Helper()
	h := &apiHarness{steps: f}
	buf := &logtest.Buffer{}
	log := testLogger(t, buf)
	jobs, err := NewJobs(ctx, f.steps(), JobsOptions{Logger: log, AllowDestructive: true})
	if err != nil {
		t.Fatal(err)
	}
	h.jobs = jobs
	logs := &LogBuffer{}
	logs.Write([]byte("line one\nline two\n"))
	power := &Power{Enabled: true, Busy: func() bool { return jobs.Status().State == api.StateRunning }, Delay: time.Millisecond,
		Do: func(a string) error { h.mu.Lock(); h.power = append(h.power, a); h.mu.Unlock(); return nil }}
	h.srv = httptest.NewServer(api.NewRouter(api.Deps{Logger: log, Token: testToken, Inventory: fakeInventory, Jobs: jobs, Power: power, Logs: logs}))
	t.Cleanup(func() { h.srv.Close(); jobs.Wait() })
	return h
}

func (h *apiHarness) do(t *testing.T, method, path, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, h.srv.URL+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := h.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (h *apiHarness) waitState(t *testing.T, want string) api.Status {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		_, body := h.do(t, "GET", "/v1/provision", "")
		var st api.Status
		json.Unmarshal([]byte(body), &st)
		if st.State == want {
			return st
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("job never reached %s", want)
	return api.Status{}
}

func TestAPIStatusCodes(t *testing.T) {
	f := newFakeSteps()
	f.block = StepImages
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	h := newAPIHarness(t, ctx, f)
	doc := string(fixture(t))
	bad := strings.Replace(doc, `"kernel_params"`, `"kernel_paramz"`, 1)

	check := func(name, method, path, body string, want int, contains string) string {
		t.Helper()
		code, got := h.do(t, method, path, body)
		if code != want || !strings.Contains(got, contains) {
			t.Errorf("%s: %s %s = %d %s, want %d containing %q", name, method, path, code, got, want, contains)
		}
		return got
	}
	check("idle status", "GET", "/v1/provision", "", 200, `"state": "idle"`)
	check("plan", "POST", "/v1/plan", doc, 200, `"/dev/mapper/os-root"`)
	check("invalid plan", "POST", "/v1/plan", bad, 422, `"path": "ks_meta.pm_data.kernel_params"`)
	check("empty body", "POST", "/v1/provision", "", 422, "empty provision document")
	check("syntax error", "POST", "/v1/provision", "{not json", 422, "syntax")
	check("invalid provision", "POST", "/v1/provision", bad, 422, `"msg": "required"`)
	check("bad force", "POST", "/v1/provision?force=maybe", doc, 422, `"?force"`)
	check("too large", "POST", "/v1/plan", strings.Repeat(" ", api.MaxDocumentBytes+1), 413, "larger than")
	if len(f.Calls()) != 0 {
		t.Fatalf("plan or refused provisions touched something: %v", f.Calls())
	}
	body := check("provision", "POST", "/v1/provision", doc, 202, `"state": "pending"`)
	var start api.StartResponse
	json.Unmarshal([]byte(body), &start)
	<-f.blocking
	st := h.waitState(t, api.StateRunning)
	if st.ID != start.ID || st.Step != StepImages {
		t.Errorf("running status %+v, want job %s at images", st, start.ID)
	}
	check("busy", "POST", "/v1/provision", doc, 409, "already running")
	check("busy even with force", "POST", "/v1/provision?force=true", doc, 409, "already running")
	check("reboot while running", "POST", "/v1/reboot", "", 409, "reboot refused")
	check("logs", "GET", "/v1/logs", "", 200, "line two")
	check("not found", "GET", "/v1/nothing", "", 404, "no such resource")
	check("method", "DELETE", "/v1/inventory", "", 405, "not allowed")

	cancel() // SIGTERM
	st = h.waitState(t, api.StateFailed)
	if st.Error == nil || st.Error.Step != StepImages || st.Error.Device != "/dev/mapper/os-root" {
		t.Errorf("cancelled status %+v", st)
	}
}

func TestAPILockAndForce(t *testing.T) {
	h := newAPIHarness(t, context.Background(), newFakeSteps())
	doc := string(fixture(t))
	if code, body := h.do(t, "POST", "/v1/provision", doc); code != 202 {
		t.Fatalf("provision = %d %s", code, body)
	}
	h.waitState(t, api.StateSucceeded)
	if code, body := h.do(t, "POST", "/v1/provision", doc); code != 409 || !strings.Contains(body, "locked") {
		t.Errorf("provision of a locked node = %d %s, want 409 locked", code, body)
	}
	if code, body := h.do(t, "POST", "/v1/provision?force=true", doc); code != 202 {
		t.Errorf("forced (query) = %d %s", code, body)
	}
	h.jobs.Wait()
	forced := `{"force": true, ` + strings.TrimPrefix(strings.TrimSpace(doc), "{")
	if code, body := h.do(t, "POST", "/v1/provision", forced); code != 202 {
		t.Errorf("forced (body) = %d %s", code, body)
	}
	h.jobs.Wait()
	if st := h.jobs.Status(); !st.Force || st.State != api.StateSucceeded {
		t.Errorf("forced job status %+v", st)
	}
	// power after the job
	if code, body := h.do(t, "POST", "/v1/reboot", ""); code != 202 || !strings.Contains(body, "reboot") {
		t.Errorf("reboot = %d %s", code, body)
	}
	if code, _ := h.do(t, "POST", "/v1/poweroff", ""); code != 202 {
		t.Errorf("poweroff = %d", code)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		h.mu.Lock()
		n := len(h.power)
		h.mu.Unlock()
		if n == 2 || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if strings.Join(h.power, ",") != "reboot,poweroff" && strings.Join(h.power, ",") != "poweroff,reboot" {
		t.Errorf("power actions carried out: %v", h.power)
	}
}

func TestAPIPowerDisabled(t *testing.T) {
	srv := httptest.NewServer(api.NewRouter(api.Deps{Token: testToken, Inventory: fakeInventory, Power: &Power{}}))
	defer srv.Close()
	req, _ := http.NewRequest("POST", srv.URL+"/v1/reboot", nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 403 {
		t.Errorf("reboot on a non-ramdisk machine = %d, want 403", resp.StatusCode)
	}
	// no jobs/logs wired: 503, not a crash
	for _, p := range []string{"GET /v1/provision", "POST /v1/plan", "GET /v1/events", "GET /v1/logs"} {
		m, path, _ := strings.Cut(p, " ")
		req, _ := http.NewRequest(m, srv.URL+path, strings.NewReader("{}"))
		req.Header.Set("Authorization", "Bearer "+testToken)
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 503 {
			t.Errorf("%s without the dependency = %d, want 503", p, resp.StatusCode)
		}
	}
}

func TestAPIConcurrentProvisions(t *testing.T) {
	f := newFakeSteps()
	f.block = StepDisks
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	h := newAPIHarness(t, ctx, f)
	doc := string(fixture(t))
	const n = 8
	codes := make(chan int, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			code, _ := h.do(t, "POST", "/v1/provision", doc)
			codes <- code
		}()
	}
	wg.Wait()
	close(codes)
	count := map[int]int{}
	for c := range codes {
		count[c]++
	}
	if count[202] != 1 || count[409] != n-1 {
		t.Errorf("status codes of %d concurrent provisions: %v, want exactly one 202 and %d 409", n, count, n-1)
	}
	<-f.blocking
	if calls := f.Calls(); len(calls) != 1 {
		t.Errorf("disks applied %d times: %v", len(calls), calls)
	}
}

// sseEvent is one parsed Server-Sent Event.
type sseEvent struct {
	id, event string
	data      api.Event
}

func readSSE(t *testing.T, r io.Reader, until func(sseEvent) bool) []sseEvent {
	t.Helper()
	sc := bufio.NewScanner(r)
	var out []sseEvent
	var cur sseEvent
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if cur.event != "" {
				out = append(out, cur)
				if until(cur) {
					return out
				}
			}
			cur = sseEvent{}
		case strings.HasPrefix(line, "id: "):
			cur.id = line[4:]
		case strings.HasPrefix(line, "event: "):
			cur.event = line[7:]
		case strings.HasPrefix(line, "data: "):
			if err := json.Unmarshal([]byte(line[6:]), &cur.data); err != nil {
				t.Fatalf("event data %q: %v", line, err)
			}
		}
	}
	t.Fatalf("stream ended: %v", sc.Err())
	return nil
}

func TestAPIEventStream(t *testing.T) {
	f := newFakeSteps()
	f.fail, f.failErr = StepBootloader, errors.New("grub-install: exit status 1")
	h := newAPIHarness(t, context.Background(), f)

	req, _ := http.NewRequest("GET", h.srv.URL+"/v1/events", nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := h.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != 200 || ct != "text/event-stream" {
		t.Fatalf("GET /v1/events = %d %q", resp.StatusCode, ct)
	}
	if code, body := h.do(t, "POST", "/v1/provision", string(fixture(t))); code != 202 {
		t.Fatalf("provision = %d %s", code, body)
	}
	evs := readSSE(t, resp.Body, func(e sseEvent) bool { return e.event == api.EventState && e.data.State == api.StateFailed })
	var kinds []string
	sawProgress := false
	for _, e := range evs {
		if e.id == "" || e.data.Type != e.event || e.data.Job == "" {
			t.Errorf("malformed event %+v", e)
		}
		if e.event == api.EventProgress {
			sawProgress = true
			continue
		}
		kinds = append(kinds, e.event+":"+e.data.Step)
	}
	want := "state:,state:,step_start:disks,step_end:disks,step_start:configdrive,step_end:configdrive,step_start:images,step_end:images,step_start:bootloader,step_end:bootloader,state:"
	if got := strings.Join(kinds, ","); got != want {
		t.Errorf("event sequence\n got %s\nwant %s", got, want)
	}
	if !sawProgress {
		t.Error("no progress event")
	}
	last := evs[len(evs)-1].data
	if last.Error == nil || last.Error.Step != StepBootloader || !strings.Contains(last.Error.Message, "grub-install") {
		t.Errorf("final event %+v", last)
	}

	// resuming with Last-Event-ID replays only what came after
	req, _ = http.NewRequest("GET", h.srv.URL+"/v1/events", nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	req.Header.Set("Last-Event-ID", evs[len(evs)-2].id)
	resp2, err := h.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp2.Body.Close()
	again := readSSE(t, resp2.Body, func(sseEvent) bool { return true })
	if again[0].id != evs[len(evs)-1].id {
		t.Errorf("resumed stream starts at id %s, want %s", again[0].id, evs[len(evs)-1].id)
	}
}
