//go:build loop

package imagewriter

// Loop tier: real loop devices over files in t.TempDir(); needs root and
// util-linux/e2fsprogs. Only devices created here are ever written.

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/imprint-dev/imprint/internal/sys"
	"github.com/imprint-dev/imprint/internal/testenv"
)

func needRoot(t *testing.T, tools ...string) {
	t.Helper()
	testenv.RequireLoop(t, append([]string{"cmp"}, tools...)...)
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// loopDevice attaches a loop device (direct I/O on) over a new file of size
// bytes filled with fill, and detaches it at cleanup.
func loopDevice(t *testing.T, size int64, fill byte) string {
	t.Helper()
	backing := filepath.Join(t.TempDir(), "backing.img")
	if err := os.WriteFile(backing, bytes.Repeat([]byte{fill}, int(size)), 0o644); err != nil {
		t.Fatal(err)
	}
	dev := strings.TrimSpace(run(t, "losetup", "--find", "--show", "--direct-io=on", backing))
	if !regexp.MustCompile(`^/dev/loop[0-9]+$`).MatchString(dev) {
		t.Fatalf("losetup gave %q", dev)
	}
	t.Cleanup(func() { exec.Command("losetup", "-d", dev).Run() })
	return dev
}

func TestLoopWriteDirectAndCmp(t *testing.T) {
	needRoot(t)
	img := testImage(t)
	data := compress(t, ContainerGzip, img)
	srv := serve(t, map[string][]byte{"img.gz": data})
	dev := loopDevice(t, 16<<20, 0xEE)
	opts := testOptions(t)
	opts.AllowRegularFile = false
	res, err := Write(context.Background(), Request{URL: srv.URL + "/img.gz", Device: dev, SHA256: sha256hex(data), RawSize: int64(len(img))}, opts)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Direct || res.SkippedZero != 0 {
		t.Errorf("direct %v, skipped %d: want O_DIRECT and every byte written", res.Direct, res.SkippedZero)
	}
	want := filepath.Join(t.TempDir(), "img")
	os.WriteFile(want, img, 0o644)
	run(t, "cmp", "-n", strconv.Itoa(len(img)), want, dev)
}

func TestLoopFailureClearsStartAndBackupGPT(t *testing.T) {
	needRoot(t)
	img := testImage(t)
	data := compress(t, ContainerZstd, img)
	srv := serve(t, map[string][]byte{"img.zst": data})
	const size = 16 << 20
	dev := loopDevice(t, size, 0xEE)
	opts := testOptions(t)
	opts.AllowRegularFile = false
	_, err := Write(context.Background(), Request{URL: srv.URL + "/img.zst", Device: dev, SHA256: strings.Repeat("00", 32)}, opts)
	if err == nil || !strings.Contains(err.Error(), "sha256 of") {
		t.Fatalf("err = %v, want a sha256 mismatch", err)
	}
	f, err := os.Open(dev)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got := make([]byte, size)
	if _, err := f.ReadAt(got, 0); err != nil {
		t.Fatal(err)
	}
	if bytes.Count(got[:1<<20], []byte{0}) != 1<<20 {
		t.Error("first MiB not zeroed after the failure")
	}
	if bytes.Count(got[size-1<<20:], []byte{0}) != 1<<20 {
		t.Error("last MiB (backup GPT area of a whole disk) not zeroed after the failure")
	}
	// the body was written: only the start and end were cleared
	if !bytes.Equal(got[2<<20:3<<20], img[2<<20:3<<20]) {
		t.Error("image body not on the device")
	}
}

func TestLoopExt4GrownToFillDevice(t *testing.T) {
	needRoot(t, "mkfs.ext4", "resize2fs", "e2fsck", "dumpe2fs")
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	os.WriteFile(filepath.Join(root, "etc", "hostname"), []byte("imprinted\n"), 0o644)
	os.WriteFile(filepath.Join(root, "big"), bytes.Repeat([]byte("data"), 1<<20), 0o644)
	fsImg := filepath.Join(dir, "root.img")
	run(t, "truncate", "-s", "32M", fsImg)
	run(t, "mkfs.ext4", "-q", "-F", "-b", "4096", "-d", root, fsImg)
	raw, err := os.ReadFile(fsImg)
	if err != nil {
		t.Fatal(err)
	}
	data := compress(t, ContainerGzip, raw)
	srv := serve(t, map[string][]byte{"root.img.gz": data})

	const size = 96 << 20
	dev := loopDevice(t, size, 0xEE)
	opts := testOptions(t)
	opts.AllowRegularFile = false
	opts.Runner = &sys.Exec{}
	res, err := Write(context.Background(), Request{URL: srv.URL + "/root.img.gz", Device: dev, Container: ContainerGzip, Format: "ext4", MD5: md5hex(raw), RawSize: int64(len(raw))}, opts)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Grown {
		t.Fatal("filesystem not grown")
	}
	out := run(t, "dumpe2fs", "-h", dev)
	blocks := regexp.MustCompile(`(?m)^Block count:\s+(\d+)`).FindStringSubmatch(out)
	bsize := regexp.MustCompile(`(?m)^Block size:\s+(\d+)`).FindStringSubmatch(out)
	if blocks == nil || bsize == nil {
		t.Fatalf("dumpe2fs: no block count/size:\n%s", out)
	}
	n, _ := strconv.ParseInt(blocks[1], 10, 64)
	b, _ := strconv.ParseInt(bsize[1], 10, 64)
	if n*b != size {
		t.Errorf("filesystem is %d bytes after grow, want %d", n*b, size)
	}
	run(t, "e2fsck", "-fn", dev) // exit 0: clean
	if out := run(t, "debugfs", "-R", "cat /etc/hostname", dev); !strings.Contains(out, "imprinted") {
		t.Errorf("file content after grow: %q", out)
	}
}

func TestLoopRefusesMountedDevice(t *testing.T) {
	needRoot(t, "mkfs.ext4", "mount", "umount")
	dev := loopDevice(t, 16<<20, 0)
	run(t, "mkfs.ext4", "-q", "-F", dev)
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-t", "ext4", dev, mnt).CombinedOutput(); err != nil {
		testenv.Skipf(t, "cannot mount ext4 here: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", mnt).Run() })
	srv := serve(t, map[string][]byte{"img": testImage(t)})
	opts := testOptions(t)
	opts.AllowRegularFile = false
	_, err := Write(context.Background(), Request{URL: srv.URL + "/img", Device: dev}, opts)
	if err == nil || !strings.Contains(err.Error(), "is mounted at "+mnt) || !strings.Contains(err.Error(), dev) {
		t.Fatalf("err = %v, want a refusal naming the device and mount point", err)
	}
	// still a valid filesystem: nothing was written
	run(t, "umount", mnt)
	run(t, "e2fsck", "-fn", dev)
}

// TestLoopZeroOffload: on a loop device (which implements write-zeroes by
// punching holes in its backing file) the long zero runs of a partly
// empty image are zeroed by the device, the old data under them reads
// back as zeroes, and the backing file's blocks under them are freed.
func TestLoopZeroOffload(t *testing.T) {
	needRoot(t)
	img := sparseImage(t)
	data := compress(t, ContainerGzip, img)
	srv := serve(t, map[string][]byte{"img.gz": data})
	dev := loopDevice(t, 16<<20, 0xEE)
	b, err := os.ReadFile("/sys/block/" + filepath.Base(dev) + "/loop/backing_file")
	if err != nil {
		t.Fatal(err)
	}
	backing := strings.TrimSpace(string(b))
	opts := testOptions(t)
	opts.AllowRegularFile = false
	opts.BufferSize = 4 << 20
	res, err := Write(context.Background(), Request{URL: srv.URL + "/img.gz", Device: dev, SHA256: sha256hex(data)}, opts)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Direct || res.SkippedZero != 0 || res.ZeroedOut != 9<<20 {
		t.Errorf("direct %v, skipped %d, zeroed out %d: want O_DIRECT, 0 skipped, 9 MiB zeroed by the device", res.Direct, res.SkippedZero, res.ZeroedOut)
	}
	want := filepath.Join(t.TempDir(), "img")
	os.WriteFile(want, img, 0o644)
	run(t, "cmp", "-n", strconv.Itoa(len(img)), want, dev)
	var st syscall.Stat_t
	if err := syscall.Stat(backing, &st); err != nil {
		t.Fatal(err)
	}
	if st.Blocks*512 > 10<<20 {
		t.Errorf("backing file has %d bytes allocated: the zero runs were written, not zeroed by the device", st.Blocks*512)
	}
}
