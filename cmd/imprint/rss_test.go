package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/imprint-dev/imprint/internal/membudget"
	"github.com/imprint-dev/imprint/provision"
)

// TestMain lets a test start this package's main() in a subprocess (the
// test binary re-executed with IMPRINT_TEST_RUN_MAIN=1): the real agent,
// whose memory the test measures from outside.
func TestMain(m *testing.M) {
	if os.Getenv("IMPRINT_TEST_RUN_MAIN") == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

// procStatusKB reads a "VmHWM:   1234 kB" line of /proc/PID/status.
func procStatusKB(t *testing.T, pid int, key string) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, key+":"); ok {
			n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				t.Fatalf("/proc/%d/status %s: %v", pid, line, err)
			}
			return n
		}
	}
	t.Fatalf("/proc/%d/status has no %s", pid, key)
	return 0
}

// Hostile documents against the real agent, in its own process: a 10 KB
// YAML alias bomb gets a 4xx from POST /v1/plan in under a second, and no
// document the API accepts to read (up to the 1 MiB limit, in the shapes
// that cost most per byte) takes the agent's peak RSS (VmHWM) to 200 MB.
func TestAgentHostileDocumentsRSS(t *testing.T) {
	dir := t.TempDir()
	cmdline := filepath.Join(dir, "cmdline")
	if err := os.WriteFile(cmdline, []byte("imprint.listen=127.0.0.1:0 imprint.token=rss imprint.power=no imprint.state_dir="+dir+"/state\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "agent", "--kernel-cmdline", cmdline, "--log-format", "json")
	cmd.Env = append(os.Environ(), "IMPRINT_TEST_RUN_MAIN=1")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	addrc := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var rec struct{ Msg, Addr string }
			if json.Unmarshal(sc.Bytes(), &rec) == nil && rec.Msg == "imprint agent ready" {
				addrc <- rec.Addr
			}
		}
		io.Copy(io.Discard, stderr)
	}()
	var base string
	select {
	case addr := <-addrc:
		base = "http://" + addr
	case <-time.After(30 * time.Second):
		t.Fatal("the agent subprocess logged no ready line in 30 s")
	}
	pid := cmd.Process.Pid
	post := func(body []byte) (int, string, time.Duration) {
		t.Helper()
		req, _ := http.NewRequest("POST", base+"/v1/plan", strings.NewReader(string(body)))
		req.Header.Set("Authorization", "Bearer rss")
		start := time.Now()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), time.Since(start)
	}
	// Warm up (first request, inventory) so the baseline is the agent's own.
	post([]byte(`{}`))
	baseKB := procStatusKB(t, pid, "VmRSS")

	const limitKB = 200 * 1000 // 200 MB
	t.Logf("agent RSS after the first request: %d kB", baseKB)
	for name, bomb := range map[string][]byte{
		"alias bomb (values)":  membudget.AliasBomb(10 << 10),
		"alias bomb (strings)": membudget.AliasStringBomb(10 << 10),
	} {
		code, body, took := post(bomb)
		hwm := procStatusKB(t, pid, "VmHWM")
		t.Logf("%s (%d bytes): %d in %v; peak RSS %d kB; %.200s", name, len(bomb), code, took, hwm, body)
		if code < 400 || code >= 500 || !strings.Contains(body, "aliases expand") {
			t.Errorf("%s: POST /v1/plan = %d %.300s; want a 4xx naming the alias expansion", name, code, body)
		}
		if took > time.Second {
			t.Errorf("%s: answered after %v, want under a second", name, took)
		}
		if hwm > limitKB {
			t.Errorf("%s: the agent's peak RSS reached %d kB, over %d kB", name, hwm, limitKB)
		}
	}

	// The costliest shapes per byte at the size limit: a YAML and a JSON
	// list of empty maps (parsers' node trees), and the largest body the
	// API reads at all.
	n := provision.MaxDocumentBytes
	for _, tc := range []struct {
		name string
		doc  string
	}{
		{"yaml maps", "a: [" + strings.Repeat("{},", n/3-3) + "{}]"},
		{"json maps", `{"a": [` + strings.Repeat("{},", n/3-4) + "{}]}"},
		{"over the limit", strings.Repeat(" ", n+1)},
	} {
		code, body, took := post([]byte(tc.doc))
		hwm := procStatusKB(t, pid, "VmHWM")
		t.Logf("%s (%d bytes): %d in %v; peak RSS %d kB; %.150s", tc.name, len(tc.doc), code, took, hwm, body)
		if code < 400 || code >= 500 {
			t.Errorf("%s: POST /v1/plan = %d, want a 4xx", tc.name, code)
		}
		if hwm > limitKB {
			t.Errorf("%s: the agent's peak RSS reached %d kB, over %d kB", tc.name, hwm, limitKB)
		}
	}
}
