package imagewriter

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/imprint-dev/imprint/internal/testenv"
)

// startNginx runs Debian's stock nginx on 127.0.0.1 with a config written
// here: an origin serving www/ and, in front of it, a cache that fetches
// and stores the files in 1 MiB slices (ngx_http_slice_module), as a fleet's
// caches serve large images. It returns the origin's and the cache's base
// URLs and the directory holding the logs and the cache.
func startNginx(t *testing.T, files map[string][]byte) (origin, cache, dir string) {
	t.Helper()
	bin, err := exec.LookPath("nginx")
	if err != nil {
		for _, p := range []string{"/usr/sbin/nginx", "/sbin/nginx"} {
			if _, err := os.Stat(p); err == nil {
				bin = p
			}
		}
	}
	if bin == "" {
		testenv.Skipf(t, "nginx not installed (scripts/apt-packages.txt lists it)")
	}
	dir = t.TempDir()
	for _, d := range []string{"www", "cache", "tmp", "logs"} {
		os.MkdirAll(filepath.Join(dir, d), 0o755)
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, "www", name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	port := func() int {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		return ln.Addr().(*net.TCPAddr).Port
	}
	po, pc := port(), port()
	conf := fmt.Sprintf(`daemon off;
master_process off;
worker_processes 1;
pid %[1]s/nginx.pid;
error_log %[1]s/logs/error.log info;
events { worker_connections 64; }
http {
	types { application/json json; }
	default_type application/octet-stream;
	client_body_temp_path %[1]s/tmp/body;
	proxy_temp_path %[1]s/tmp/proxy;
	fastcgi_temp_path %[1]s/tmp/fastcgi;
	uwsgi_temp_path %[1]s/tmp/uwsgi;
	scgi_temp_path %[1]s/tmp/scgi;
	log_format ranges '$status "$request" range="$http_range" cache=$upstream_cache_status';
	server {
		listen 127.0.0.1:%[2]d;
		access_log %[1]s/logs/origin.log ranges;
		root %[1]s/www;
	}
	proxy_cache_path %[1]s/cache levels=1:2 keys_zone=frames:1m max_size=256m;
	server {
		listen 127.0.0.1:%[3]d;
		access_log %[1]s/logs/cache.log ranges;
		location / {
			slice 1m;
			proxy_cache frames;
			proxy_cache_key $uri$is_args$args$slice_range;
			proxy_set_header Range $slice_range;
			proxy_http_version 1.1;
			proxy_cache_valid 200 206 1h;
			proxy_pass http://127.0.0.1:%[2]d;
		}
	}
}
`, dir, po, pc)
	cf := filepath.Join(dir, "nginx.conf")
	os.WriteFile(cf, []byte(conf), 0o644)
	cmd := exec.Command(bin, "-p", dir, "-e", filepath.Join(dir, "logs", "error.log"), "-c", cf)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start nginx: %v", err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	origin, cache = fmt.Sprintf("http://127.0.0.1:%d", po), fmt.Sprintf("http://127.0.0.1:%d", pc)
	deadline := time.Now().Add(10 * time.Second)
	for {
		r1, e1 := http.Get(origin + "/")
		r2, e2 := http.Get(cache + "/")
		if e1 == nil && e2 == nil {
			r1.Body.Close()
			r2.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			el, _ := os.ReadFile(filepath.Join(dir, "logs", "error.log"))
			t.Fatalf("nginx did not answer: %v %v\n%s\n%s", e1, e2, out.String(), el)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return origin, cache, dir
}

func TestNginxServesFrames(t *testing.T) {
	img := frameImage(t)
	data, m, mb := framed(t, img)
	origin, cache, dir := startNginx(t, map[string][]byte{"x.img.zst": data, "x.img.zst" + FrameManifestSuffix: mb})

	// Through the slicing cache, with the file's sha256.
	dev := prefilled(t, 8<<20)
	res, err := Write(context.Background(), Request{URL: cache + "/x.img.zst", Device: dev, SHA256: m.CompressedSHA256}, testOptions(t))
	if err != nil {
		el, _ := os.ReadFile(filepath.Join(dir, "logs", "error.log"))
		t.Fatalf("Write through the nginx cache: %v\n%s", err, el)
	}
	checkTarget(t, dev, img)
	if res.Frames != len(m.Frames) {
		t.Errorf("frames %d, want %d", res.Frames, len(m.Frames))
	}
	// The cache fetched the file from the origin in 1 MiB slices.
	ol, _ := os.ReadFile(filepath.Join(dir, "logs", "origin.log"))
	if !strings.Contains(string(ol), `range="bytes=0-1048575"`) || !strings.Contains(string(ol), `range="bytes=1048576-2097151"`) {
		t.Errorf("the origin was not asked for slices:\n%s", ol)
	}
	// A first mirror that refuses connections is replaced by the origin.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	deadURL := "http://" + ln.Addr().String() + "/x.img.zst"
	ln.Close()
	dev = prefilled(t, 8<<20)
	res, err = Write(context.Background(), Request{URL: deadURL, Mirrors: []string{origin + "/x.img.zst"}, Device: dev}, testOptions(t))
	if err != nil {
		t.Fatalf("Write with a dead first mirror: %v", err)
	}
	checkTarget(t, dev, img)
	if res.MirrorSwitches != 1 {
		t.Errorf("mirror switches %d, want 1", res.MirrorSwitches)
	}
	ol, _ = os.ReadFile(filepath.Join(dir, "logs", "origin.log"))
	if !strings.Contains(string(ol), `206 "GET /x.img.zst HTTP/1.1" range="bytes=0-"`) {
		t.Errorf("the origin did not serve the frames with Range:\n%s", ol)
	}
	t.Logf("origin log:\n%s", ol)
}
