package vmtest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	diskfs "github.com/diskfs/go-diskfs"
	"github.com/diskfs/go-diskfs/partition/gpt"
)

// Host-side inspection of the disk images after (or while) the guest wrote
// them: no loop devices, no host LVM/MD, only reads of the image files.

// Partition is a GPT entry of an image.
type Partition struct {
	Number     int
	StartBytes int64
	SizeBytes  int64
	Name       string
	Type       string // GUID
	GUID       string
}

// Partitions reads the image's GPT with go-diskfs.
func Partitions(img string) ([]Partition, error) {
	d, err := diskfs.Open(img, diskfs.WithOpenMode(diskfs.ReadOnly))
	if err != nil {
		return nil, fmt.Errorf("vmtest: open %s: %w", img, err)
	}
	defer d.Close()
	pt, err := d.GetPartitionTable()
	if err != nil {
		return nil, fmt.Errorf("vmtest: %s: read partition table: %w", img, err)
	}
	t, ok := pt.(*gpt.Table)
	if !ok {
		return nil, fmt.Errorf("vmtest: %s: partition table is %s, not GPT", img, pt.Type())
	}
	var out []Partition
	for _, p := range t.Partitions {
		if p.Type == gpt.Unused {
			continue
		}
		ss := int64(t.LogicalSectorSize)
		out = append(out, Partition{Number: p.Index, StartBytes: int64(p.Start) * ss,
			SizeBytes: int64(p.End-p.Start+1) * ss, Name: p.Name, Type: string(p.Type), GUID: p.GUID})
	}
	return out, nil
}

// Probe runs `blkid -p -O offset -o export img` (low-level superblock
// probing, no cache) and returns its fields (TYPE, LABEL, UUID, ...). A
// region without a signature gives an empty map and no error.
func Probe(img string, offset int64) (map[string]string, error) {
	argv := []string{"blkid", "-p", "-O", strconv.FormatInt(offset, 10), "-o", "export", img}
	out, stderr, err := run(argv)
	if ee, ok := err.(*exec.ExitError); ok && ee.ExitCode() == 2 {
		return map[string]string{}, nil // nothing found
	}
	if err != nil {
		return nil, fmt.Errorf("vmtest: %s: %w (stderr: %q)", strings.Join(argv, " "), err, stderr)
	}
	m := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			m[k] = v
		}
	}
	return m, nil
}

// Dumpe2fs returns `dumpe2fs -h 'img?offset=N'`: the superblock of the ext
// filesystem at offset.
func Dumpe2fs(img string, offset int64) (string, error) {
	argv := []string{"dumpe2fs", "-h", fmt.Sprintf("%s?offset=%d", img, offset)}
	out, stderr, err := run(argv)
	if err != nil {
		return "", fmt.Errorf("vmtest: %s: %w (stderr: %q)", strings.Join(argv, " "), err, stderr)
	}
	return out, nil
}

func run(argv []string) (string, string, error) {
	var o, e bytes.Buffer
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	return o.String(), strings.TrimSpace(e.String()), err
}

// FileSHA256 is the hex sha256 of a file (an image the test must find
// unchanged, or written as expected); a read error fails the test.
func FileSHA256(t testing.TB, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatalf("sha256 of %s: %v", path, err)
	}
	return hex.EncodeToString(h.Sum(nil))
}
