package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWriteImageCommand(t *testing.T) {
	dir := t.TempDir()
	img := bytes.Repeat([]byte("imprint write-image "), 200000) // 4 MB
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(img)
	zw.Close()
	src := filepath.Join(dir, "root.img.gz")
	os.WriteFile(src, gz.Bytes(), 0o644)
	sum := sha256.Sum256(gz.Bytes())
	dev := filepath.Join(dir, "disk.img")

	run := func(args ...string) (int, string) {
		var out, errb bytes.Buffer
		code := dispatch(context.Background(), &cmdEnv{stdout: &out, stderr: &errb}, append([]string{"imprint", "write-image"}, args...))
		return code, out.String() + errb.String()
	}
	if code, out := run(src); code != 2 || !strings.Contains(out, "want URL and DEVICE") {
		t.Errorf("one argument: exit %d, output %q", code, out)
	}
	if code, out := run(src, dev, "--sha256", "nothex", "--container", "bz2"); code != 2 || !strings.Contains(out, "sha256:") || !strings.Contains(out, "container:") {
		t.Errorf("bad flags: exit %d, output %q", code, out)
	}
	if code, out := run(src, dev); code != 1 || !strings.Contains(out, dev) {
		t.Errorf("regular file without --file: exit %d, output %q", code, out)
	}
	code, out := run(src, dev, "--file", "--sha256", hex.EncodeToString(sum[:]), "--container", "gzip", "--progress", "0")
	if code != 0 || !strings.Contains(out, "verified [sha256]") {
		t.Fatalf("write: exit %d, output %q", code, out)
	}
	if got, _ := os.ReadFile(dev); !bytes.Equal(got, img) {
		t.Errorf("target differs from the image")
	}
	// fuel-agent's console-script name dispatches to the same command
	var errb bytes.Buffer
	if code := dispatch(context.Background(), &cmdEnv{stdout: &errb, stderr: &errb}, []string{"/usr/bin/fa_copyimage", "-h"}); code != 0 || !strings.Contains(errb.String(), "write-image") {
		t.Errorf("fa_copyimage -h: exit %d, %q", code, errb.String())
	}
}

// TestFaCopyimageDocument: fa_copyimage without URL and DEVICE works on a
// provision document (fuel-agent's do_copyimage) and exits as fuel-agent:
// 255 when the document cannot be read, naming it, before any device is
// looked at; an explicit URL DEVICE pair keeps write-image's meaning.
func TestFaCopyimageDocument(t *testing.T) {
	var errb bytes.Buffer
	missing := filepath.Join(t.TempDir(), "provision.json")
	code := dispatch(context.Background(), &cmdEnv{stdout: io.Discard, stderr: &errb}, []string{"/bbin/fa_copyimage", missing})
	if code != fuelAgentFailure || !strings.Contains(errb.String(), missing) || !strings.Contains(errb.String(), "--- Copying images (do_copyimage) ---") {
		t.Errorf("fa_copyimage %s: exit %d, %q", missing, code, errb.String())
	}
	errb.Reset()
	code = dispatch(context.Background(), &cmdEnv{stdout: io.Discard, stderr: &errb}, []string{"imprint", "write-image", missing})
	if code != 2 || !strings.Contains(errb.String(), "want URL and DEVICE") {
		t.Errorf("imprint write-image FILE: exit %d, %q", code, errb.String())
	}
}
