//go:build loop || vm

package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/imprint-dev/imprint/imagebuild"
	"github.com/imprint-dev/imprint/internal/testenv"
)

// testElements makes the diskimage-builder elements of the element tests
// and sets the variables that find them: DIB_LOCAL_ELEMENTS=top in
// DIB_LOCAL_ELEMENTS_PATH; top's element-deps are dep-local (beside it)
// and dep-path, found only through ELEMENTS_PATH. dep-path brings an
// environment.d file (IMPRINT_TEST_ENV) and a root.d hook that makes the
// root tree itself (debootstrap from the shared cache's tarball) instead
// of the builder; install.d, post-install.d hooks and a first-boot.d hook
// record what they saw in /etc/imprint-test-order.
func testElements(t *testing.T, cache string) (wantOrder string) {
	t.Helper()
	root := t.TempDir()
	local, epath := filepath.Join(root, "local"), filepath.Join(root, "epath")
	write := func(p, body string, mode os.FileMode) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), mode); err != nil {
			t.Fatal(err)
		}
	}
	hook := func(p, body string) { write(p, "#!/bin/bash\nset -eu\n"+body+"\n", 0o755) }
	write(filepath.Join(local, "top", "element-deps"), "# top needs both\ndep-local\ndep-path\n", 0o644)
	hook(filepath.Join(local, "top", "install.d", "10-top"), `echo "install.d/10-top:$IMPRINT_TEST_ENV" >> /etc/imprint-test-order`)
	hook(filepath.Join(local, "top", "post-install.d", "10-top"), `echo "post-install.d/10-top:$IMPRINT_TEST_ENV:$(dpkg-query -W -f='${Status}' haproxy)" >> /etc/imprint-test-order`)
	hook(filepath.Join(local, "top", "first-boot.d", "10-marker"), `echo "first-boot ran $(cat /proc/sys/kernel/random/boot_id)" > /var/lib/imprint-first-boot-marker
echo "IMPRINT-FIRST-BOOT-HOOK ran" > /dev/ttyS0 || true`)
	hook(filepath.Join(local, "dep-local", "install.d", "20-dep-local"), `echo "install.d/20-dep-local:$IMPRINT_TEST_ENV" >> /etc/imprint-test-order`)
	write(filepath.Join(epath, "dep-path", "environment.d", "10-imprint-test.bash"), "IMPRINT_TEST_ENV=from-environment.d\n", 0o644)
	write(filepath.Join(epath, "dep-path", "environment.d", "README.md"), "not sourced\n", 0o644)
	tarball := filepath.Join(cache, "debootstrap-bookworm-amd64-minbase.tgz")
	hook(filepath.Join(epath, "dep-path", "root.d", "10-debootstrap"), fmt.Sprintf(`# the root tree, made by the element (the builder runs no debootstrap)
test -d "$TARGET_ROOT"
from=""
if [ -f %[1]q ]; then from="--unpack-tarball=%[1]s"; fi
debootstrap --variant=minbase --include=ca-certificates,eatmydata $from "$DIB_RELEASE" "$TARGET_ROOT" "$DIB_DISTRIBUTION_MIRROR"
echo "root.d/10-debootstrap:$IMPRINT_TEST_ENV:$ARCH:$DISTRO_NAME" > "$TARGET_ROOT/etc/imprint-test-order"`, tarball))
	t.Setenv("DIB_LOCAL_ELEMENTS", "top")
	t.Setenv("DIB_LOCAL_ELEMENTS_PATH", local)
	t.Setenv("ELEMENTS_PATH", epath)
	return "root.d/10-debootstrap:from-environment.d:amd64:debian\n" +
		"install.d/10-top:from-environment.d\n" +
		"install.d/20-dep-local:from-environment.d\n" +
		"post-install.d/10-top:from-environment.d:install ok installed\n"
}

// checkElementsTree checks the elements' effects in a built tree (before
// any boot): the order file, the first-boot hook and unit installed and
// enabled, no marker yet.
func checkElementsTree(t *testing.T, root, wantOrder string) {
	t.Helper()
	got, err := os.ReadFile(filepath.Join(root, "etc/imprint-test-order"))
	if err != nil || string(got) != wantOrder {
		t.Errorf("hooks ran as\n%s(%v)\nwant\n%s", got, err, wantOrder)
	}
	if fi, err := os.Stat(filepath.Join(root, strings.TrimPrefix(imagebuild.FirstBootDir, "/"), "10-marker")); err != nil || fi.Mode().Perm()&0o111 == 0 {
		t.Errorf("first-boot.d hook not installed executable: %v", err)
	}
	if _, err := os.Lstat(filepath.Join(root, "etc/systemd/system/multi-user.target.wants/imprint-first-boot.service")); err != nil {
		t.Errorf("first-boot unit not enabled: %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, "var/lib/imprint-first-boot-marker")); err == nil {
		t.Errorf("first-boot marker exists before any boot")
	}
}

// checkTarWithChroot unpacks the rootfs tarball and runs commands in it
// with chroot: the OS, haproxy's configuration check, the elements' file.
func checkTarWithChroot(t *testing.T, tarball, wantOrder string) string {
	t.Helper()
	dir := t.TempDir()
	if b, err := exec.Command("tar", "--numeric-owner", "-xpf", tarball, "-C", dir).CombinedOutput(); err != nil {
		t.Fatalf("tar -x: %v %s", err, b)
	}
	out, err := exec.Command("chroot", dir, "/bin/sh", "-c", ". /etc/os-release; echo $ID $VERSION_CODENAME; haproxy -c -f /etc/haproxy/haproxy.cfg; cat /etc/imprint-test-order").CombinedOutput()
	if err != nil {
		t.Fatalf("chroot into the unpacked tar: %v\n%s", err, out)
	}
	if !strings.HasPrefix(string(out), "debian bookworm\n") || !strings.Contains(string(out), "Configuration file is valid") || !strings.Contains(string(out), wantOrder) {
		t.Errorf("chroot run:\n%s", out)
	}
	return dir
}

// dockerd is a Docker daemon the test starts as root on a private socket
// and data root (no iptables, no bridge); stopped by t.Cleanup.
type dockerd struct{ client, sock string }

// startDockerd starts Debian's dockerd, or says why it cannot.
func startDockerd(t *testing.T) (*dockerd, error) {
	t.Helper()
	bin, err := exec.LookPath("dockerd")
	if err != nil {
		return nil, fmt.Errorf("no dockerd (Debian's docker.io): %w", err)
	}
	// the client of the same package (docker.io: /usr/bin/docker beside
	// /usr/sbin/dockerd), else the one on PATH
	client := ""
	for _, c := range []string{filepath.Join(filepath.Dir(bin), "docker"), "/usr/bin/docker"} {
		if _, err := os.Stat(c); err == nil {
			client = c
			break
		}
	}
	if client == "" {
		if client, err = exec.LookPath("docker"); err != nil {
			return nil, fmt.Errorf("no docker client (docker.io): %w", err)
		}
	}
	dir, err := os.MkdirTemp("", "imprint-dockerd-")
	if err != nil {
		return nil, err
	}
	d := &dockerd{client: client, sock: filepath.Join(dir, "docker.sock")}
	log, _ := os.Create(filepath.Join(dir, "dockerd.log"))
	cmd := exec.Command(bin, "--data-root", filepath.Join(dir, "data"), "--exec-root", filepath.Join(dir, "exec"),
		"--pidfile", filepath.Join(dir, "docker.pid"), "--host", "unix://"+d.sock, "--iptables=false", "--ip6tables=false", "--bridge=none")
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start dockerd: %w", err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		exec.Command("umount", "-R", filepath.Join(dir, "data")).Run()
		os.RemoveAll(dir)
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		if _, err := d.run("version"); err == nil {
			return d, nil
		}
		if time.Now().After(deadline) || cmd.ProcessState != nil {
			b, _ := os.ReadFile(filepath.Join(dir, "dockerd.log"))
			return nil, fmt.Errorf("dockerd did not come up within 60s:\n%s", lastBytes(string(b), 2000))
		}
		time.Sleep(time.Second)
	}
}

func (d *dockerd) run(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	b, err := exec.CommandContext(ctx, d.client, append([]string{"--host", "unix://" + d.sock}, args...)...).CombinedOutput()
	return string(b), err
}

// checkTarWithDocker imports the tarball as Octavia's spec does (docker
// import - image:amphora-x64-haproxy < amphora-x64-haproxy.tar) and runs a
// container of it.
func checkTarWithDocker(t *testing.T, d *dockerd, tarball, wantOrder string) {
	t.Helper()
	f, err := os.Open(tarball)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd := exec.Command(d.client, "--host", "unix://"+d.sock, "import", "-", "image:amphora-x64-haproxy")
	cmd.Stdin = f
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("docker import: %v %s", err, b)
	}
	out, err := d.run("run", "--rm", "--network", "none", "image:amphora-x64-haproxy", "/bin/sh", "-c",
		". /etc/os-release; echo $ID $VERSION_CODENAME; haproxy -c -f /etc/haproxy/haproxy.cfg; cat /etc/imprint-test-order")
	if err != nil {
		t.Fatalf("docker run: %v\n%s", err, out)
	}
	if !strings.HasPrefix(out, "debian bookworm\n") || !strings.Contains(out, "Configuration file is valid") || !strings.Contains(out, wantOrder) {
		t.Errorf("docker run:\n%s", out)
	}
}

// TestLoopOctaviaTarElements builds `imprint build-image -t tar -r PW` with
// elements (element-deps on two, one through ELEMENTS_PATH; environment.d,
// root.d, install.d, post-install.d, first-boot.d) and checks the tarball
// both ways: docker import and run where the test can start a Docker
// daemon, and always unpacked and run with chroot. The choice is printed.
func TestLoopOctaviaTarElements(t *testing.T) {
	if os.Getenv("IMPRINT_VM_SLOW") == "" {
		t.Skip("set IMPRINT_VM_SLOW=1 (make test-slow) for the -t tar build with elements (a whole image build; make test builds the default amphora image)")
	}
	octaviaPrereqs(t)
	dir := t.TempDir()
	t.Chdir(dir)
	home := octaviaHome(t)
	t.Setenv("HOME", home)
	for _, v := range []string{"DIB_DISTRIBUTION_MIRROR", "DIB_ELEMENTS", "DIB_RELEASE"} {
		t.Setenv(v, "")
	}
	wantOrder := testElements(t, filepath.Join(home, ".cache", "image-create"))
	t0 := time.Now()
	code, out, errs := runCmd(t, "", "imprint", "build-image", "-t", "tar", "-r", "amphora-test-pw")
	if code != 0 {
		t.Fatalf("imprint build-image -t tar: exit %d\n%s", code, lastBytes(errs, 6000))
	}
	t.Logf("imprint build-image -t tar -r with elements took %s", time.Since(t0).Round(time.Second))
	if strings.Contains(errs, `step=debootstrap `) {
		t.Errorf("the builder ran debootstrap although root.d made the tree")
	}
	tarball := filepath.Join(dir, "amphora-x64-haproxy.tar")
	if !strings.Contains(out, tarball+"\n") || strings.Contains(out, ".qcow2") {
		t.Errorf("outputs:\n%s", out)
	}
	tree := checkTarWithChroot(t, tarball, wantOrder)
	t.Logf("tar checked with chroot: unpacked and ran /bin/sh, haproxy -c in it")
	checkElementsTree(t, tree, wantOrder)
	packages := append(append(imagebuild.DefaultPackages(imagebuild.KernelCloud), imagebuild.AmphoraPackages...), "haproxy")
	checkAmphoraTree(t, tree, packages, true) // -r: root's password is set

	if os.Getuid() != 0 {
		testenv.Skipf(t, "docker import: needs root to start dockerd")
	}
	if _, err := exec.LookPath("dockerd"); err != nil {
		testenv.Skipf(t, "docker import: no dockerd (scripts/apt-packages.txt installs docker.io)")
	}
	d, err := startDockerd(t)
	if err != nil {
		t.Logf("tar NOT checked with docker: the daemon cannot run here: %v", err)
		return
	}
	checkTarWithDocker(t, d, tarball, wantOrder)
	t.Logf("tar checked with docker: dockerd started by the test, docker import, docker run")
}
