package configdrive

import (
	"bytes"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"testing"

	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/filesystem"
	"github.com/diskfs/go-diskfs/filesystem/fat12"
	"github.com/diskfs/go-diskfs/filesystem/fat16"
	"github.com/diskfs/go-diskfs/filesystem/fat32"
	"github.com/diskfs/go-diskfs/filesystem/iso9660"
	"github.com/imprint-dev/imprint/internal/testenv"
	"github.com/imprint-dev/imprint/provision"
)

// fixtures are the provision documents in testdata (copies of the shared
// Fuel fixtures).
var fixtures = []string{
	"provision_fuel90_ubuntu_1disk.json",
	"provision_sample_nailgun_3disks.json",
	"simple_nailgun_driver.json",
}

func loadFixture(t *testing.T, name string) *provision.Document {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	doc, err := provision.Parse(data)
	if err != nil {
		t.Fatalf("provision.Parse(%s): %v", name, err)
	}
	return doc
}

// fixedRand is deterministic "randomness" for golden salts.
type fixedRand struct{ b byte }

func (r *fixedRand) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = r.b
		r.b += 7
	}
	return len(p), nil
}

// mimeParts splits user-data into content type → body.
func mimeParts(t *testing.T, ud []byte) (types []string, bodies map[string]string) {
	t.Helper()
	msg, err := mail.ReadMessage(bytes.NewReader(ud))
	if err != nil {
		t.Fatalf("user-data is not a MIME message: %v", err)
	}
	mt, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/mixed" {
		t.Fatalf("user-data Content-Type %q (%v), want multipart/mixed", msg.Header.Get("Content-Type"), err)
	}
	mr := multipart.NewReader(msg.Body, params["boundary"])
	bodies = map[string]string{}
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("user-data part: %v", err)
		}
		ct, _, _ := mime.ParseMediaType(p.Header.Get("Content-Type"))
		b, _ := io.ReadAll(p)
		types = append(types, ct)
		bodies[ct] = string(b)
	}
	return types, bodies
}

// readImage opens a configdrive image with go-diskfs and returns path → data
// of every regular file, and the filesystem label.
func readImage(t *testing.T, img string, f Format, sector int) (map[string][]byte, string) {
	t.Helper()
	st, err := os.Stat(img)
	if err != nil {
		t.Fatal(err)
	}
	b, err := file.OpenFromPath(img, true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	var fsys filesystem.FileSystem
	switch {
	case f.ISO():
		fsys, err = iso9660.Read(b, st.Size(), 0, 2048)
	case sector == SectorSize4096:
		fsys, err = fat32.Read(b, st.Size(), 0, SectorSize4096)
	default:
		if fsys, err = fat16.Read(b, st.Size(), 0, 512); err != nil {
			fsys, err = fat12.Read(b, st.Size(), 0, 512)
		}
	}
	if err != nil {
		t.Fatalf("go-diskfs read %s: %v", img, err)
	}
	files := map[string][]byte{}
	var walk func(dir string)
	walk = func(dir string) {
		ents, err := fsys.ReadDir(dir)
		if err != nil {
			t.Fatalf("readdir %s: %v", dir, err)
		}
		for _, e := range ents {
			if e.Name() == "." || e.Name() == ".." {
				continue
			}
			p := path.Join(dir, e.Name())
			if e.IsDir() {
				walk(p)
				continue
			}
			data, err := fsys.ReadFile(p)
			if err != nil {
				t.Fatalf("read %s: %v", p, err)
			}
			// go-diskfs v1.9.4 returns whole clusters on 4 KiB-sector FAT32;
			// the directory entry's size is right (fsck.fat checks it).
			if info, err := e.Info(); err == nil && info.Size() < int64(len(data)) {
				data = data[:info.Size()]
			}
			files[p] = data
		}
	}
	walk(".")
	return files, strings.TrimRight(fsys.Label(), "\x00 ")
}

// blkid probes an image file like cloud-init's device search does.
func blkid(t *testing.T, path string) map[string]string {
	t.Helper()
	testenv.RequireTool(t, "blkid")
	out, err := exec.Command("blkid", "-p", "-o", "export", path).CombinedOutput()
	if err != nil {
		t.Fatalf("blkid -p %s: %v: %s", path, err, out)
	}
	m := map[string]string{}
	for _, l := range strings.Split(string(out), "\n") {
		if k, v, ok := strings.Cut(l, "="); ok {
			m[k] = v
		}
	}
	return m
}

// fsckFAT runs dosfstools' checker read-only: cluster chains against file
// sizes, FAT copies, directory entries. FAT12/16 must be clean. FAT32 on 4
// KiB sectors necessarily has fewer clusters than the FAT32 minimum (Linux
// goes by the BPB and reads it; fsck.fat warns) and go-diskfs leaves the
// FSInfo free count unset (legal: "unknown"); those are tolerated.
func fsckFAT(t *testing.T, img string, fat32 bool) {
	t.Helper()
	if !testenv.HasTool(t, "fsck.fat") {
		t.Log("fsck.fat not installed; FAT structure not cross-checked")
		return
	}
	out, err := exec.Command("fsck.fat", "-n", img).CombinedOutput()
	var ee *exec.ExitError
	if err != nil && !(fat32 && errors.As(err, &ee) && ee.ExitCode() == 1) {
		t.Fatalf("fsck.fat -n %s: %v\n%s", img, err, out)
	}
	benign := []string{"fsck.fat ", "Free cluster summary uninitialized",
		"Leaving filesystem unchanged", "Warning: Filesystem is FAT32 according to", "but has only", "This may lead to problems",
		img + ":"}
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		l = strings.TrimSpace(l)
		ok := l == ""
		for _, b := range benign {
			ok = ok || strings.HasPrefix(l, b)
		}
		if !ok {
			t.Errorf("fsck.fat -n %s: %q\n%s", img, l, out)
		}
	}
	if err != nil {
		t.Logf("fsck.fat -n (tolerated):\n%s", out)
	}
}
