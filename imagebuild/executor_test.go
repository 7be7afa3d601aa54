package imagebuild

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/imprint-dev/imprint/internal/mountinfo"
	"go.yaml.in/yaml/v3"

	"github.com/imprint-dev/imprint/imagewriter"
)

type fakeWorld struct {
	cfg     Config
	opts    Options
	runner  *fakeRunner
	mounter *fakeMounter
	procs   *fakeProcs
}

func newFakeWorld(t *testing.T) *fakeWorld {
	dir := t.TempDir()
	for _, d := range []string{"root", "tmp", "hooks", "out", "el/install.d"} {
		os.MkdirAll(filepath.Join(dir, d), 0o755)
	}
	os.WriteFile(filepath.Join(dir, "el/install.d/10-x"), []byte("#!/bin/sh\n"), 0o755)
	hooks, err := LoadElements([]string{filepath.Join(dir, "el")})
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{
		ImageData: map[string]Image{
			"/":     {Container: "gzip", Format: "ext4", URI: "/srv/x/fake.img.gz"},
			"/boot": {Container: "zstd", Format: "ext2", URI: "/srv/x/fake-boot.img.zst"},
		},
		Output:   filepath.Join(dir, "out"),
		Repos:    []Repo{{Name: "debian", Type: "deb", URI: "http://m.invalid/debian", Suite: "bookworm", Section: "main", Priority: ptr(500)}},
		Codename: "bookworm", Packages: []string{"less"},
	}
	return &fakeWorld{
		cfg: cfg,
		opts: Options{Chroot: filepath.Join(dir, "root"), TmpDir: filepath.Join(dir, "tmp"), HooksDir: filepath.Join(dir, "hooks"),
			ImageSize: 4 << 20, Hooks: hooks, ElementNames: []string{"el"}},
		runner:  &fakeRunner{fail: map[string]int{}},
		mounter: &fakeMounter{busy: map[string]int{}},
		procs:   &fakeProcs{procs: map[int]string{}, stubborn: map[int]bool{}},
	}
}

func (w *fakeWorld) run(t *testing.T, ctx context.Context) (*Executor, error) {
	p, err := BuildPlan(w.cfg, w.opts)
	if err != nil {
		t.Fatal(err)
	}
	ex := &Executor{Runner: w.runner, Mounter: w.mounter, Procs: w.procs, Config: w.cfg, KillGrace: 300 * time.Millisecond, GzipMember: 1 << 20}
	return ex, ex.Run(ctx, p)
}

func TestExecutorSuccess(t *testing.T) {
	w := newFakeWorld(t)
	// the Release file apt would have fetched, for the pin
	lists := filepath.Join(w.opts.Chroot, "var/lib/apt/lists")
	os.MkdirAll(lists, 0o755)
	os.WriteFile(filepath.Join(lists, "m.invalid_debian_dists_bookworm_InRelease"), []byte(inRelease), 0o644)
	var prefs string
	w.runner.onRun = func(line string) {
		if strings.Contains(line, "apt-get -y -q -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold install") {
			b, _ := os.ReadFile(filepath.Join(w.opts.Chroot, "etc/apt/preferences.d/fuel-image-debian.pref"))
			prefs = string(b)
		}
	}
	ex, err := w.run(t, context.Background())
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if want := "Package: *\nPin: release a=stable,n=bookworm,v=12.10,o=Debian,l=Debian\nPin-Priority: 500\n"; prefs != want {
		t.Errorf("pin during install = %q, want %q", prefs, want)
	}
	if len(w.mounter.mounts) != 0 {
		t.Errorf("still mounted: %v", w.mounter.mounts)
	}
	cmds := w.runner.commands()
	want := []string{
		"losetup --find --show " + w.opts.TmpDir + "/root.img",
		"mkfs.ext4 -F -q -L root /dev/loop7",
		"losetup --find --show " + w.opts.TmpDir + "/boot.img",
		"mkfs.ext2 -F -q -L boot /dev/loop8",
		"debootstrap --verbose --arch=amd64 --include=ca-certificates,eatmydata bookworm " + w.opts.Chroot + " http://m.invalid/debian",
	}
	if diff := cmp.Diff(want, cmds[:len(want)]); diff != "" {
		t.Errorf("first commands (-want +got):\n%s", diff)
	}
	for _, c := range []string{"losetup -d /dev/loop7", "losetup -d /dev/loop8", "chroot " + w.opts.Chroot + " /tmp/in_target.d/install.d/10-x", "resize2fs -M " + w.opts.TmpDir + "/root.img"} {
		if indexOf(cmds, c) < 0 {
			t.Errorf("no command %q in %v", c, cmds)
		}
	}
	// outputs: both images, fitted to the 1 MiB dumpe2fs reported, and the metadata
	var meta Metadata
	data, err := os.ReadFile(filepath.Join(w.cfg.Output, "fake.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, &meta); err != nil {
		t.Fatal(err)
	}
	if meta.OS != (MetadataOS{Major: 12, Minor: 10, Name: "Debian"}) || len(meta.Images) != 2 || meta.Images[0].ContainerName != "fake.img.gz" || meta.Images[1].Container != "zstd" {
		t.Errorf("metadata = %+v", meta)
	}
	gz, _ := os.ReadFile(filepath.Join(w.cfg.Output, "fake.img.gz"))
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(zr)
	if int64(len(raw)) != 1<<20 || meta.Images[0].RawSize != 1<<20 || meta.Images[0].RawMD5 != md5Of(raw) || meta.Images[0].ContainerSize != int64(len(gz)) {
		t.Errorf("root image: raw %d bytes, metadata %+v", len(raw), meta.Images[0])
	}
	if _, err := os.Stat(filepath.Join(w.opts.TmpDir, "root.img")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("raw image left: %v", err)
	}
	if _, err := os.Stat(filepath.Join(w.opts.Chroot, "usr/sbin/policy-rc.d")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("policy-rc.d left in the image")
	}
	_ = ex
}

func TestExecutorFailureCleansUp(t *testing.T) {
	w := newFakeWorld(t)
	w.runner.fail["/tmp/in_target.d/install.d/10-x"] = 7
	// a daemon started in the chroot that ignores SIGTERM, and a mount that
	// is busy once
	w.procs.procs[4242] = w.opts.Chroot
	w.procs.stubborn[4242] = true
	w.mounter.busy[w.opts.Chroot+"/proc"] = 1
	_, err := w.run(t, context.Background())
	var se *StepError
	if !errors.As(err, &se) || se.Step != "hook install.d/10-x (element el)" {
		t.Fatalf("Run = %v, want the hook's StepError", err)
	}
	var ec interface{ ExitCode() int }
	if !errors.As(err, &ec) || ec.ExitCode() != 7 {
		t.Errorf("exit code lost: %v", err)
	}
	if len(w.mounter.mounts) != 0 {
		t.Errorf("still mounted: %v", w.mounter.mounts)
	}
	if diff := cmp.Diff([]string{"4242 terminated", "4242 killed"}, w.procs.signals); diff != "" {
		t.Errorf("signals (-want +got):\n%s", diff)
	}
	// unmounted in reverse order, the busy one retried
	root := w.opts.Chroot
	wantTail := []string{
		"umount " + root + "/tmp/in_target.d", "umount " + root + "/dev/pts", "umount " + root + "/dev", "umount " + root + "/sys",
		"busy " + root + "/proc", "umount " + root + "/proc", "umount " + root + "/boot", "umount " + root,
	}
	got := w.mounter.log[len(w.mounter.log)-len(wantTail):]
	if diff := cmp.Diff(wantTail, got); diff != "" {
		t.Errorf("unmount order (-want +got):\n%s", diff)
	}
	cmds := w.runner.commands()
	if cmds[len(cmds)-2] != "losetup -d /dev/loop8" || cmds[len(cmds)-1] != "losetup -d /dev/loop7" {
		t.Errorf("loops not detached last: %v", cmds[len(cmds)-3:])
	}
	for _, f := range []string{filepath.Join(w.opts.TmpDir, "root.img"), filepath.Join(w.opts.TmpDir, "boot.img")} {
		if _, err := os.Stat(f); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s left: %v", f, err)
		}
	}
	if entries, _ := os.ReadDir(w.cfg.Output); len(entries) != 0 {
		t.Errorf("outputs after failure: %v", entries)
	}
}

func TestExecutorCancelled(t *testing.T) {
	w := newFakeWorld(t)
	ctx, cancel := context.WithCancel(context.Background())
	w.runner.onRun = func(line string) {
		if strings.HasPrefix(line, "chroot") && strings.Contains(line, "apt-get -y -q update") {
			cancel()
		}
	}
	_, err := w.run(t, ctx)
	var se *StepError
	if !errors.As(err, &se) || !errors.Is(err, context.Canceled) {
		t.Fatalf("Run = %v, want a cancelled StepError", err)
	}
	if len(w.mounter.mounts) != 0 {
		t.Errorf("still mounted after cancel: %v", w.mounter.mounts)
	}
	if cmds := w.runner.commands(); cmds[len(cmds)-1] != "losetup -d /dev/loop7" {
		t.Errorf("last command %q", cmds[len(cmds)-1])
	}
}

func TestExecutorUnresolvedLoop(t *testing.T) {
	ex := &Executor{Runner: &fakeRunner{}, Mounter: &fakeMounter{}, Procs: &fakeProcs{}}
	err := ex.Run(context.Background(), Plan{Steps: []Step{{Name: "mkfs /", Op: OpRun, Argv: []string{"mkfs.ext4", "{loop:/}"}}}})
	if err == nil || !strings.Contains(err.Error(), `step "mkfs /": no loop device attached for "/"`) {
		t.Errorf("Run = %v", err)
	}
}

func TestRemoveAllRefusesMounts(t *testing.T) {
	dir := t.TempDir()
	m := &fakeMounter{mounts: []string{dir + "/a/b"}}
	ex := &Executor{Mounter: m}
	if err := ex.removeAll(dir); !errors.Is(err, ErrMountedBelow) {
		t.Errorf("removeAll = %v, want ErrMountedBelow", err)
	}
	if _, err := os.Stat(dir); err != nil {
		t.Errorf("dir removed: %v", err)
	}
}

func TestMountedUnder(t *testing.T) {
	mi := `22 1 254:0 / / rw,relatime - ext4 /dev/vda rw
30 22 7:7 / /tmp/w/root rw - ext4 /dev/loop7 rw
31 30 0:5 / /tmp/w/root/proc rw - proc proc rw
32 22 7:8 / /tmp/w/root\040x rw - ext4 /dev/loop8 rw
33 22 7:9 / /tmp/w/rootfs rw - ext4 /dev/loop9 rw
`
	if diff := cmp.Diff([]string{"/tmp/w/root", "/tmp/w/root/proc"}, mountinfo.UnderTable(mi, "/tmp/w/root/")); diff != "" {
		t.Errorf("mountedUnder (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"/tmp/w/root x"}, mountinfo.UnderTable(mi, "/tmp/w/root x")); diff != "" {
		t.Errorf("escaped mount point (-want +got):\n%s", diff)
	}
}

// cmdRecorder is a Runner that keeps every Cmd it is given.
type cmdRecorder struct{ cmds []Cmd }

func (r *cmdRecorder) RunCmd(_ context.Context, c Cmd) ([]byte, error) {
	r.cmds = append(r.cmds, c)
	return nil, nil
}

// A run step runs on the host with the process's environment plus its own;
// a chroot step runs through chroot(8) with only its own.
func TestExecutorRunAndChrootCommands(t *testing.T) {
	rec := &cmdRecorder{}
	ex := &Executor{Runner: rec, Mounter: &fakeMounter{}, Procs: &fakeProcs{}}
	err := ex.Run(context.Background(), Plan{Steps: []Step{
		{Name: "host", Op: OpRun, Argv: []string{"echo", "a"}, Env: []string{"A=1"}, Stdin: "in"},
		{Name: "target", Op: OpChroot, Path: "/r", Argv: []string{"ls", "/"}, Env: []string{"B=2"}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	want := []Cmd{
		{Argv: []string{"echo", "a"}, Env: []string{"A=1"}, Stdin: "in", Inherit: true},
		{Argv: []string{"chroot", "/r", "ls", "/"}, Env: []string{"B=2"}},
	}
	if diff := cmp.Diff(want, rec.cmds); diff != "" {
		t.Errorf("commands (-want +got):\n%s", diff)
	}
}

func TestExecutorCompressZstdWritesManifest(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "root.img")
	raw := bytes.Repeat([]byte("imprint frames "), 300000)
	os.WriteFile(src, raw, 0o644)
	out := filepath.Join(dir, "out", "root.img.zst")
	ex := &Executor{Runner: &fakeRunner{}, Mounter: &fakeMounter{}, Procs: &fakeProcs{}}
	if err := ex.Run(context.Background(), Plan{Steps: []Step{{Name: "compress /", Op: OpCompress, Source: src, Path: out, Data: "zstd", Mount: "/"}}}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(out + imagewriter.FrameManifestSuffix)
	if err != nil {
		t.Fatal(err)
	}
	m, err := imagewriter.ParseFrameManifest(b)
	if err != nil || m.Size != int64(len(raw)) || m.SHA256 != ex.Sums()["/"].Frames.SHA256 {
		t.Fatalf("manifest %v: %+v", err, m)
	}
	if st, _ := os.Stat(out); st == nil || st.Size() != m.CompressedSize {
		t.Errorf("image beside the manifest: %v", st)
	}
}
