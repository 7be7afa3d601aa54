package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// agentLogBuffer is an io.Writer safe for the agent's concurrent logging.
type agentLogBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *agentLogBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *agentLogBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startAgent runs `imprint agent args...` and returns its address once it
// logged its ready line.
func startAgent(t *testing.T, args ...string) (addr string, logs *agentLogBuffer, stop func() int) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	logs = &agentLogBuffer{}
	code := make(chan int, 1)
	go func() {
		code <- dispatch(ctx, &cmdEnv{stdout: io.Discard, stderr: logs}, append([]string{"imprint", "agent"}, args...))
	}()
	deadline := time.Now().Add(10 * time.Second)
	for addr == "" {
		for _, line := range strings.Split(logs.String(), "\n") {
			if !strings.Contains(line, "imprint agent ready") {
				continue
			}
			var rec struct{ Addr string }
			if err := json.Unmarshal([]byte(line), &rec); err != nil {
				t.Fatalf("ready line %q is not JSON: %v", line, err)
			}
			addr = rec.Addr
		}
		select {
		case c := <-code:
			t.Fatalf("agent exited with %d before ready:\n%s", c, logs.String())
		default:
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("no ready line:\n%s", logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	return addr, logs, func() int { cancel(); return <-code }
}

func agentHTTP(t *testing.T, method, url, token string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestAgentCommandKernelCmdline(t *testing.T) {
	dir := t.TempDir()
	cmdline := filepath.Join(dir, "cmdline")
	os.WriteFile(cmdline, []byte("console=ttyS0 imprint.listen=127.0.0.1:0 imprint.token=kern3l imprint.power=no imprint.state_dir="+dir+"/state\n"), 0o644)
	t.Setenv("IMPRINT_LOG_FORMAT", "json")
	addr, logs, stop := startAgent(t, "--kernel-cmdline", cmdline)
	base := "http://" + addr
	if code, body := agentHTTP(t, "GET", base+"/healthz", ""); code != 200 || body != "." {
		t.Errorf("healthz = %d %q", code, body)
	}
	if code, _ := agentHTTP(t, "GET", base+"/v1/inventory", ""); code != 401 {
		t.Errorf("inventory without token = %d", code)
	}
	if code, body := agentHTTP(t, "GET", base+"/v1/inventory", "kern3l"); code != 200 || !strings.Contains(body, `"disks"`) {
		t.Errorf("inventory = %d %.200s", code, body)
	}
	if code, body := agentHTTP(t, "GET", base+"/v1/provision", "kern3l"); code != 200 || !strings.Contains(body, `"idle"`) {
		t.Errorf("status = %d %s", code, body)
	}
	if code, _ := agentHTTP(t, "POST", base+"/v1/reboot", "kern3l"); code != 403 {
		t.Errorf("reboot with power=no = %d, want 403", code)
	}
	if code, body := agentHTTP(t, "GET", base+"/v1/logs", "kern3l"); code != 200 || !strings.Contains(body, "imprint agent ready") {
		t.Errorf("logs = %d %.300s", code, body)
	}
	if c := stop(); c != 0 {
		t.Errorf("agent exit %d", c)
	}
	out := logs.String()
	if !strings.Contains(out, `"sources":"listen=cmdline,token=cmdline,log-format=env,state-dir=cmdline,power=cmdline"`) {
		t.Errorf("configuration sources not logged as expected:\n%s", out)
	}
	if strings.Contains(out, "kern3l") {
		t.Error("the token appears in the logs")
	}
	if _, err := os.Stat(filepath.Join(dir, "state")); err == nil {
		t.Error("state dir created without a provision")
	}
}

func TestAgentCommandNoToken(t *testing.T) {
	addr, logs, stop := startAgent(t, "--listen", "127.0.0.1:0", "--kernel-cmdline", "", "--token-file", "", "--log-format", "json")
	defer stop()
	if code, _ := agentHTTP(t, "GET", "http://"+addr+"/healthz", ""); code != 200 {
		t.Errorf("healthz = %d", code)
	}
	if code, body := agentHTTP(t, "POST", "http://"+addr+"/v1/provision", "x"); code != 403 || !strings.Contains(body, "no token configured") {
		t.Errorf("provision without a configured token = %d %s", code, body)
	}
	if !strings.Contains(logs.String(), "no token configured") {
		t.Error("no warning about the missing token")
	}
}

func TestAgentCommandBadConfig(t *testing.T) {
	var errb bytes.Buffer
	code := dispatch(context.Background(), &cmdEnv{stdout: io.Discard, stderr: &errb},
		[]string{"imprint", "agent", "--kernel-cmdline", "", "--listen", "nope", "--controller", "ftp://x", "--log-format", "xml"})
	if code != 2 {
		t.Errorf("exit %d, want 2", code)
	}
	for _, want := range []string{"listen (from flag)", "controller (from flag)", "log-format (from flag)"} {
		if !strings.Contains(errb.String(), want) {
			t.Errorf("output %q lacks %q", errb.String(), want)
		}
	}
	errb.Reset()
	if code := dispatch(context.Background(), &cmdEnv{stdout: io.Discard, stderr: &errb}, []string{"imprint", "agent", "--kernel-cmdline", "/nonexistent/cmdline"}); code != 2 || !strings.Contains(errb.String(), "kernel-cmdline") {
		t.Errorf("missing explicit cmdline file: exit %d %q", code, errb.String())
	}
}
