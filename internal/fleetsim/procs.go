package fleetsim

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// FreePort is a free TCP port on 127.0.0.1.
func FreePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// BuildImage makes the simulation's image in dir: a real ext4 file system
// of sizeMiB (mkfs.ext4 -d, about half of it files of words, as
// compressible as text), converted by `imprint convert-image` into a
// multi-frame zstd image (1 MiB frames) with its manifest beside it. It
// returns the .zst path.
func BuildImage(ctx context.Context, bin, dir string, sizeMiB int) (string, error) {
	mkfs, err := lookTool("mkfs.ext4")
	if err != nil {
		return "", err
	}
	src := filepath.Join(dir, "image-root")
	if err := os.MkdirAll(filepath.Join(src, "usr", "share", "sim"), 0o755); err != nil {
		return "", err
	}
	words := strings.Fields("imprint provisions bare metal machines from a PXE booted ramdisk streaming compressed images verified inline onto block devices with md raid lvm and grub the controller flips each node to local boot")
	rng := rand.New(rand.NewPCG(1, uint64(sizeMiB)))
	for f := 0; f < sizeMiB/2; f++ {
		var b bytes.Buffer
		for b.Len() < 1<<20 {
			b.WriteString(words[rng.IntN(len(words))])
			if rng.IntN(12) == 0 {
				b.WriteString(strconv.Itoa(rng.IntN(1 << 30)))
				b.WriteByte('\n')
			} else {
				b.WriteByte(' ')
			}
		}
		if err := os.WriteFile(filepath.Join(src, "usr", "share", "sim", fmt.Sprintf("file%03d.txt", f)), b.Bytes(), 0o644); err != nil {
			return "", err
		}
	}
	raw := filepath.Join(dir, "sim-root.img")
	os.Remove(raw)
	if out, err := exec.CommandContext(ctx, mkfs, "-q", "-F", "-L", "simroot", "-d", src, raw, strconv.Itoa(sizeMiB)+"M").CombinedOutput(); err != nil {
		return "", fmt.Errorf("mkfs.ext4 -d %s %s: %v: %s", src, raw, err, out)
	}
	os.RemoveAll(src)
	zst := filepath.Join(dir, "sim-root.img.zst")
	if out, err := exec.CommandContext(ctx, bin, "convert-image", "--frame-size", "1", raw, zst).CombinedOutput(); err != nil {
		return "", fmt.Errorf("imprint convert-image %s: %v: %s", raw, err, out)
	}
	os.Remove(raw)
	return zst, nil
}

func lookTool(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, d := range []string{"/usr/sbin", "/sbin"} {
		if p := filepath.Join(d, name); fileExists(p) {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not installed (scripts/apt-packages.txt lists its package)", name)
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// Nginx is Debian's stock nginx serving a directory.
type Nginx struct {
	URL string
	cmd *exec.Cmd
	dir string
}

// StartNginx serves www on a free loopback port with a configuration
// written into dir (sendfile, two workers, many connections; no access
// log, which would cost the benchmark more than the transfers).
func StartNginx(dir, www string) (*Nginx, error) {
	bin, err := lookTool("nginx")
	if err != nil {
		return nil, err
	}
	for _, d := range []string{"tmp", "logs"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return nil, err
		}
	}
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	user := ""
	if os.Geteuid() == 0 {
		user = "user root;" // the files live under root's work tree
	}
	conf := fmt.Sprintf(`%[4]s
daemon off;
worker_processes 2;
pid %[1]s/nginx.pid;
error_log %[1]s/logs/error.log warn;
events { worker_connections 8192; }
http {
	default_type application/octet-stream;
	types { application/json json; }
	sendfile on;
	tcp_nopush on;
	keepalive_requests 10000;
	access_log off;
	client_body_temp_path %[1]s/tmp/body;
	proxy_temp_path %[1]s/tmp/proxy;
	fastcgi_temp_path %[1]s/tmp/fastcgi;
	uwsgi_temp_path %[1]s/tmp/uwsgi;
	scgi_temp_path %[1]s/tmp/scgi;
	server {
		listen 127.0.0.1:%[2]d backlog=4096;
		root %[3]s;
	}
}
`, dir, port, www, user)
	cf := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(cf, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "-p", dir, "-e", filepath.Join(dir, "logs", "error.log"), "-c", cf)
	logf, err := os.Create(filepath.Join(dir, "logs", "nginx.out"))
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM} // its workers follow the master
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start nginx: %w", err)
	}
	n := &Nginx{URL: fmt.Sprintf("http://127.0.0.1:%d", port), cmd: cmd, dir: dir}
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(n.URL + "/")
		if err == nil {
			resp.Body.Close()
			return n, nil
		}
		if time.Now().After(deadline) {
			n.Stop()
			log, _ := os.ReadFile(filepath.Join(dir, "logs", "error.log"))
			return nil, fmt.Errorf("nginx did not come up on %s: %v\n%s", n.URL, err, log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop ends nginx (its workers follow the master).
func (n *Nginx) Stop() {
	n.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { n.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		n.cmd.Process.Kill()
		<-done
	}
}

// controllerProc is `imprint controller` as a process, restartable on the
// same arguments (same database and address).
type controllerProc struct {
	bin  string
	args []string
	dir  string
	url  string

	mu      sync.Mutex
	cmd     *exec.Cmd
	done    chan struct{}
	peakRSS int64 // bytes, the largest VmHWM of any of its processes
	starts  int
}

func (c *controllerProc) start(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.starts++
	out, err := os.OpenFile(filepath.Join(c.dir, fmt.Sprintf("controller-%d.log", c.starts)), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(c.bin, c.args...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // no orphan when the simulation dies
	if err := cmd.Start(); err != nil {
		out.Close()
		return fmt.Errorf("start %s controller: %w", c.bin, err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); out.Close(); close(done) }()
	c.cmd, c.done = cmd, done
	deadline := time.Now().Add(2 * time.Minute) // enrolling 1000 nodes takes a while
	for {
		resp, err := http.Get(c.url + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		select {
		case <-done:
			return fmt.Errorf("the controller exited at start: see %s", out.Name())
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the controller did not answer /healthz on %s", c.url)
		}
	}
}

// sampleRSS records the process's peak RSS so far (VmHWM).
func (c *controllerProc) sampleRSS() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cmd == nil || c.cmd.Process == nil {
		return
	}
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", c.cmd.Process.Pid))
	if err != nil {
		return
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if kb*1024 > c.peakRSS {
				c.peakRSS = kb * 1024
			}
		}
	}
}

// kill SIGKILLs the process (after sampling its peak RSS) and waits.
func (c *controllerProc) kill() {
	c.sampleRSS()
	c.mu.Lock()
	cmd, done := c.cmd, c.done
	c.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Signal(syscall.SIGKILL)
	<-done
}

// stop ends the process with SIGTERM (a clean shutdown).
func (c *controllerProc) stop() {
	c.sampleRSS()
	c.mu.Lock()
	cmd, done := c.cmd, c.done
	c.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		<-done
	}
}
