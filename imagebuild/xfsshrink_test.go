package imagebuild

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

func TestParseXFSDB(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    XFSCounts
		wantErr string
	}{
		{name: "mkfs.xfs 6.1 on 2 GiB", in: "blocksize = 4096\ndblocks = 524288\nfdblocks = 507872\n",
			want: XFSCounts{BlockSize: 4096, DBlocks: 524288, FDBlocks: 507872}},
		{name: "any order, 1 KiB blocks", in: "fdblocks = 10\nblocksize = 1024\ndblocks = 20\n",
			want: XFSCounts{BlockSize: 1024, DBlocks: 20, FDBlocks: 10}},
		{name: "field missing", in: "blocksize = 4096\ndblocks = 524288\n", wantErr: "no fdblocks"},
		{name: "not xfs", in: "xfs_db: /x is not a valid XFS filesystem (unexpected SB magic number 0x00000000)\n", wantErr: "no blocksize"},
		{name: "free beyond size", in: "blocksize = 4096\ndblocks = 1\nfdblocks = 2\n", wantErr: "implausible"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseXFSDB(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseXFSDB(%q) = %v, %v, want error %q", tt.in, got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseXFSDB(%q) = %+v, %v, want %+v", tt.in, got, err, tt.want)
			}
		})
	}
	if c := (XFSCounts{BlockSize: 4096, DBlocks: 524288, FDBlocks: 507872}); c.Used() != 16416*4096 || c.Size() != 2<<30 {
		t.Errorf("Used, Size of %+v = %d, %d", c, c.Used(), c.Size())
	}
}

func TestXFSShrinkSize(t *testing.T) {
	const mib = 1 << 20
	overhead := int64(16416 * 4096) // mkfs.xfs 6.1, 4 AGs: 64 MiB log + 32 blocks
	tests := []struct {
		name              string
		content, overhead int64
		want              int64
	}{
		{name: "empty: mkfs's minimum", content: 0, overhead: overhead, want: XFSMinSize},
		{name: "small content still the minimum", content: 100 * mib, overhead: overhead, want: XFSMinSize},
		// 1000 + 64.125 + 64 + 50 MiB = 1178.125 → 1179 MiB
		{name: "1000 MiB", content: 1000 * mib, overhead: overhead, want: 1179 * mib},
		// a MiB boundary exactly is not rounded further: 2000 + 64 + 64 + 100
		{name: "exact MiB", content: 2000 * mib, overhead: 64 * mib, want: 2228 * mib},
		// 1 byte of content more rounds up
		{name: "rounded up", content: 2000*mib + 20, overhead: 64 * mib, want: 2229 * mib},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := XFSShrinkSize(tt.content, tt.overhead); got != tt.want {
				t.Errorf("XFSShrinkSize(%d, %d) = %d (%.3f MiB), want %d (%.3f MiB)", tt.content, tt.overhead, got, float64(got)/mib, tt.want, float64(tt.want)/mib)
			}
		})
	}
}

func TestBuildPlanShrinksXFS(t *testing.T) {
	cfg := Config{ImageData: map[string]Image{
		"/":    {Container: "gzip", Format: "ext4", URI: "/srv/img/x.img.gz"},
		"/var": {Container: "gzip", Format: "xfs", URI: "/srv/img/x-var.img.gz"},
	}, Output: "/srv/img"}.WithDefaults("http://m.invalid/debian", KernelCloud)
	uuid := "0b0e1f0c-7a57-4e55-9d1c-6e3d2f0b9a11"
	p, err := BuildPlan(cfg, Options{Chroot: "/w/root", TmpDir: "/w/tmp", FSUUIDs: map[string]string{"/var": uuid}})
	if err != nil {
		t.Fatal(err)
	}
	var mkfs, shrink *Step
	var names []string
	for i, s := range p.Steps {
		switch s.Name {
		case "mkfs /var":
			mkfs = &p.Steps[i]
		case "shrink xfs /var":
			shrink = &p.Steps[i]
		}
		names = append(names, s.Name)
	}
	if mkfs == nil || shrink == nil {
		t.Fatalf("plan lacks mkfs or shrink of /var:\n%s", p)
	}
	if shrink.Op != OpShrinkXFS || shrink.Path != "/w/tmp/var.img" || shrink.Mount != "/var" {
		t.Errorf("shrink step = %s", shrink)
	}
	// the same mkfs as the original, on the new file
	want := append(append([]string(nil), mkfs.Argv[:len(mkfs.Argv)-1]...), xfsImagePlaceholder)
	if diff := cmp.Diff(want, shrink.Argv); diff != "" {
		t.Errorf("shrink mkfs argv (-want +got):\n%s", diff)
	}
	if !strings.Contains(strings.Join(shrink.Argv, " "), "-L var -m uuid="+uuid) {
		t.Errorf("shrink mkfs lacks the label and uuid: %v", shrink.Argv)
	}
	// after the loop device is gone, before the image is compressed; the
	// ext root is shrunk its own way and not copied
	if !(indexOf(names, "detach loop /var") < indexOf(names, "shrink xfs /var") && indexOf(names, "shrink xfs /var") < indexOf(names, "compress /var")) {
		t.Errorf("shrink xfs /var out of order: %v", names)
	}
	if indexOf(names, "shrink xfs /") >= 0 || indexOf(names, "resize2fs /var") >= 0 || indexOf(names, "resize2fs /") < 0 {
		t.Errorf("wrong shrink per format: %v", names)
	}
}

// shrinkWorld runs one shrink-xfs step on an 8 GiB sparse image file
// holding content bytes.
func shrinkWorld(t *testing.T, content int64, fail map[string]int) (*fakeRunner, *fakeMounter, string, error) {
	dir := t.TempDir()
	file := filepath.Join(dir, "var.img")
	if err := createSparse(file, 8<<30); err != nil {
		t.Fatal(err)
	}
	r := &fakeRunner{fail: fail, xfsContent: content}
	m := &fakeMounter{busy: map[string]int{}}
	ex := &Executor{Runner: r, Mounter: m, Procs: &fakeProcs{procs: map[int]string{}}, KillGrace: 100 * time.Millisecond}
	step := Step{Name: "shrink xfs /var", Op: OpShrinkXFS, Path: file, Mount: "/var", Argv: mkfsArgv("xfs", "var", "u-1", xfsImagePlaceholder)}
	return r, m, file, ex.Run(context.Background(), Plan{Steps: []Step{step}})
}

func TestExecutorShrinkXFS(t *testing.T) {
	r, m, file, err := shrinkWorld(t, 1000<<20, map[string]int{})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	fi, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	if want := XFSShrinkSize(1000<<20, 16416*4096); fi.Size() != want {
		t.Errorf("image is %d bytes, want %d", fi.Size(), want)
	}
	small := file + ".small"
	src, dst := file+".src.d", small+".d"
	probe := file + ".probe"
	want := []string{
		"xfs_db -r -c sb 0 -c p blocksize dblocks fdblocks " + file,
		"mkfs.xfs -f -q -L var -m uuid=u-1 " + probe, // the empty filesystem of the old size
		"xfs_db -r -c sb 0 -c p blocksize dblocks fdblocks " + probe,
		"mkfs.xfs -f -q -L var -m uuid=u-1 " + probe, // the empty filesystem of the new size
		"xfs_db -r -c sb 0 -c p blocksize dblocks fdblocks " + probe,
		"mkfs.xfs -f -q -L var -m uuid=u-1 " + small,
		"losetup --find --show " + file,
		"losetup --find --show " + small,
		"bash -c " + `set -o pipefail; xfsdump -J -l 0 -L imprint -M imprint - "$1" | xfsrestore -J - "$2"` + " xfs-copy " + src + " " + dst,
		"losetup -d /dev/loop8",
		"losetup -d /dev/loop7",
		"xfs_repair -n " + small,
		"xfs_db -r -c sb 0 -c p blocksize dblocks fdblocks " + small,
	}
	if diff := cmp.Diff(want, r.commands()); diff != "" {
		t.Errorf("commands (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"mount " + src + " -o nouuid", "mount " + dst, "umount " + dst, "umount " + src}, m.log); diff != "" {
		t.Errorf("mounts (-want +got):\n%s", diff)
	}
	noLeftovers(t, filepath.Dir(file), "var.img")
}

func TestExecutorShrinkXFSAlreadySmall(t *testing.T) {
	// content that needs more than the image has: nothing is copied
	r, _, file, err := shrinkWorld(t, 8<<30-16416*4096-(1<<20), map[string]int{})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if fi, _ := os.Stat(file); fi.Size() != 8<<30 {
		t.Errorf("image resized to %d", fi.Size())
	}
	for _, c := range r.commands() {
		if strings.HasPrefix(c, "bash") || strings.HasPrefix(c, "losetup") {
			t.Errorf("copied although nothing is gained: %q", c)
		}
	}
	noLeftovers(t, filepath.Dir(file), "var.img")
}

func TestExecutorShrinkXFSFailures(t *testing.T) {
	for _, fail := range []string{"xfsdump", "xfs_repair", "mkfs.xfs -f -q -L var -m uuid=u-1 /"} {
		t.Run(fail, func(t *testing.T) {
			r, m, file, err := shrinkWorld(t, 1000<<20, map[string]int{fail: 2})
			var se *StepError
			if !errors.As(err, &se) || se.Step != "shrink xfs /var" || !errors.As(err, new(fakeExit)) {
				t.Fatalf("Run = %v, want a StepError of the shrink with the exit", err)
			}
			if fi, _ := os.Stat(file); fi.Size() != 8<<30 {
				t.Errorf("original image changed to %d bytes", fi.Size())
			}
			if len(m.mounts) != 0 {
				t.Errorf("still mounted: %v", m.mounts)
			}
			var attached, detached int
			for _, c := range r.commands() {
				attached += strings.Count(c, "losetup --find")
				detached += strings.Count(c, "losetup -d")
			}
			if attached != detached {
				t.Errorf("%d loop devices attached, %d detached: %v", attached, detached, r.commands())
			}
			noLeftovers(t, filepath.Dir(file), "var.img")
		})
	}
}

// noLeftovers fails unless dir holds only keep.
func noLeftovers(t *testing.T, dir string, keep ...string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		got = append(got, e.Name())
	}
	if diff := cmp.Diff(keep, got); diff != "" {
		t.Errorf("files in %s (-want +got):\n%s", dir, diff)
	}
}

func TestCopyTimes(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	for _, root := range []string{src, dst} {
		must0(t, os.MkdirAll(filepath.Join(root, "d"), 0o755))
		must0(t, os.WriteFile(filepath.Join(root, "d/f"), []byte("x"), 0o644))
		must0(t, os.Symlink("f", filepath.Join(root, "d/l")))
	}
	when := map[string]time.Time{
		"d/f": time.Date(2001, 2, 3, 4, 5, 6, 123456789, time.UTC),
		"d":   time.Date(2002, 2, 3, 4, 5, 6, 987654321, time.UTC),
		".":   time.Date(2003, 2, 3, 4, 5, 6, 1, time.UTC),
	}
	for p, tm := range when {
		must0(t, os.Chtimes(filepath.Join(src, p), tm, tm))
	}
	// the symlink's own time, not its target's
	lt := time.Date(2004, 2, 3, 4, 5, 6, 5, time.UTC)
	ts := []unix.Timespec{unix.NsecToTimespec(lt.UnixNano()), unix.NsecToTimespec(lt.UnixNano())}
	must0(t, unix.UtimesNanoAt(unix.AT_FDCWD, filepath.Join(src, "d/l"), ts, unix.AT_SYMLINK_NOFOLLOW))
	when["d/l"] = lt

	n, kept, err := copyTimes(src, dst)
	if err != nil || n != 4 || kept != 0 {
		t.Fatalf("copyTimes = %d, %d, %v, want 4, 0, nil", n, kept, err)
	}
	for p, tm := range when {
		fi, err := os.Lstat(filepath.Join(dst, p))
		if err != nil {
			t.Fatal(err)
		}
		if !fi.ModTime().Equal(tm) {
			t.Errorf("mtime of %s = %v, want %v", p, fi.ModTime().UTC(), tm)
		}
	}
	// a path of the copy the original lacks is an error naming it
	must0(t, os.WriteFile(filepath.Join(dst, "d/extra"), nil, 0o644))
	if _, _, err := copyTimes(src, dst); err == nil || !strings.Contains(err.Error(), "d/extra") {
		t.Errorf("copyTimes with an extra file = %v", err)
	}
}

func must0(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
