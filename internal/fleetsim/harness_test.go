package fleetsim

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/imprint-dev/imprint/internal/logtest"
	"github.com/imprint-dev/imprint/internal/testenv"
)

// imprintBin is IMPRINT_BIN, else imprint built into the test's directory.
func imprintBin(t testing.TB) string {
	t.Helper()
	if b := os.Getenv("IMPRINT_BIN"); b != "" {
		return b
	}
	bin := filepath.Join(t.TempDir(), "imprint")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/imprint")
	cmd.Dir = "../.."
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/imprint: %v\n%s", err, out)
	}
	return bin
}

// env is what every run shares: the binary, nginx serving www, and the
// images by size.
type env struct {
	bin, www string
	nginx    *Nginx
	images   map[int]string
}

func newEnv(t testing.TB) *env {
	t.Helper()
	testenv.RequireTool(t, "nginx", "mkfs.ext4")
	e := &env{bin: imprintBin(t), www: filepath.Join(t.TempDir(), "www"), images: map[int]string{}}
	os.MkdirAll(e.www, 0o755)
	ng, err := StartNginx(t.TempDir(), e.www)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ng.Stop)
	e.nginx = ng
	return e
}

// image is the simulation image of mib MiB, built once.
func (e *env) image(t testing.TB, mib int) string {
	t.Helper()
	if p, ok := e.images[mib]; ok {
		return p
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	dir := filepath.Join(e.www, strconv.Itoa(mib))
	os.MkdirAll(dir, 0o755)
	p, err := BuildImage(ctx, e.bin, dir, mib)
	if err != nil {
		t.Fatal(err)
	}
	e.images[mib] = p
	return p
}

// flakyMirror is an image server that breaks every image download after
// its first MiB: it forwards to the origin and aborts the response.
func flakyMirror(t *testing.T, origin string) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req, _ := http.NewRequestWithContext(r.Context(), r.Method, origin+r.URL.Path, nil)
		if rg := r.Header.Get("Range"); rg != "" {
			req.Header.Set("Range", rg)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		for _, k := range []string{"Content-Length", "Content-Range", "Content-Type", "Last-Modified", "ETag", "Accept-Ranges"} {
			if v := resp.Header.Get(k); v != "" {
				w.Header().Set(k, v)
			}
		}
		w.WriteHeader(resp.StatusCode)
		if strings.HasSuffix(r.URL.Path, ".zst") {
			io.CopyN(w, resp.Body, 1<<20)
			panic(http.ErrAbortHandler) // the connection breaks mid-download
		}
		io.Copy(w, resp.Body)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// TestHarness runs the simulation at N=3 on SQLite, then again with the
// controller SIGKILLed mid-run: every node provisioned once, the table
// filled, the nodes' agents scraped over HTTP with their bytes and steps
// counted, no sparse file left behind. In the first run the nodes'
// documents name a server that breaks every download after 1 MiB, with
// nginx as its mirror: each agent moves to the mirror mid-download (its
// mirror_switch counter) and writes the whole image.
func TestHarness(t *testing.T) {
	e := newEnv(t)
	flaky := flakyMirror(t, e.nginx.URL+"/16")
	for _, kill := range []bool{false, true} {
		dir := t.TempDir()
		cfg := Config{
			Bin: e.bin, Dir: dir, Nodes: 3, DB: "sqlite:" + filepath.Join(dir, "state", "controller.db"), DBName: "SQLite",
			Image: e.image(t, 16), NginxURL: e.nginx.URL + "/16", Kill: kill, Heartbeat: 200 * time.Millisecond, Timeout: 3 * time.Minute,
			Logger: logtest.New(t), ScrapeAgents: true,
		}
		if !kill {
			cfg.ImageURLs = []string{flaky, e.nginx.URL + "/16"}
		}
		rep, err := Run(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("\n%s", Table([]*Report{rep}))
		if rep.Provisioned != 3 || len(rep.Failures) > 0 || rep.Lost != 0 || rep.Twice != 0 {
			t.Fatalf("kill=%v: %d provisioned, failures:\n%s", kill, rep.Provisioned, strings.Join(rep.Failures, "\n"))
		}
		if kill && rep.Kills != 1 {
			t.Errorf("the controller was not killed")
		}
		if rep.WrittenMBps <= 0 || rep.NginxMBps <= 0 || rep.P50 <= 0 || rep.P99 < rep.P50 || rep.PeakRSS <= 0 || rep.CallbackP99 <= 0 {
			t.Errorf("figures missing: %+v", rep)
		}
		raw := int64(rep.ImageMiB * (1 << 20))
		if raw != 16<<20 {
			t.Errorf("image: %v MiB written per node, want 16", rep.ImageMiB)
		}
		for mac, fam := range rep.AgentFamilies {
			if v := fam.Value("imprint_agent_image_written_bytes_total", nil); int64(v) != raw {
				t.Errorf("agent %s: %v bytes written, want %d", mac, v, raw)
			}
			if n := fam.Histogram("imprint_agent_step_duration_seconds", map[string]string{"step": "images", "state": "succeeded"}).Count; n != 1 {
				t.Errorf("agent %s: %d images steps observed", mac, n)
			}
			if v := fam.Value("imprint_agent_retries_total", map[string]string{"kind": "mirror_switch"}); !kill && v < 1 {
				t.Errorf("agent %s: %v mirror switches, want ≥ 1 (the first server breaks every download)", mac, v)
			}
		}
		if len(rep.AgentFamilies) != 3 {
			t.Errorf("%d agents scraped, want 3", len(rep.AgentFamilies))
		}
		left, _ := filepath.Glob(filepath.Join(dir, "disks", "*"))
		if len(left) != 0 {
			t.Errorf("sparse files left: %v", left)
		}
	}
}
