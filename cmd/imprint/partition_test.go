package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func partitionRun(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	env := &cmdEnv{stdin: strings.NewReader(""), stdout: &out, stderr: &errb}
	code = dispatch(context.Background(), env, append([]string{"imprint", "partition"}, args...))
	return code, out.String(), errb.String()
}

// partitionDoc is the Fuel 9.0 fixture with its ks_spaces replaced by one
// small disk named by kernel name: bios_grub, UEFI, /boot and / (both image
// targets), /srv ext4 (made) and the configdrive.
func partitionDoc(t *testing.T, disk string) string {
	t.Helper()
	spaces := []any{map[string]any{
		"type": "disk", "name": disk, "id": disk, "extra": []any{}, "size": 1200, "free_space": 1100, "bootable": true,
		"volumes": []any{
			map[string]any{"type": "boot", "size": 300},
			map[string]any{"type": "partition", "mount": "/boot", "file_system": "ext2", "size": 200},
			map[string]any{"type": "partition", "mount": "/", "file_system": "ext4", "size": 400},
			map[string]any{"type": "partition", "mount": "/srv", "file_system": "ext4", "size": 200},
		},
	}}
	return writeEditedDoc(t, "testdata/provision_fuel90_ubuntu_1disk.json", func(doc map[string]any) {
		doc["ks_meta"].(map[string]any)["pm_data"].(map[string]any)["ks_spaces"] = spaces
	})
}

func TestPartitionUsageErrors(t *testing.T) {
	if code, _, stderr := partitionRun(t, "a.json", "b.json"); code != 2 || !strings.Contains(stderr, "at most one FILE") {
		t.Errorf("two files: exit %d, stderr %q", code, stderr)
	}
	if code, _, stderr := partitionRun(t, "--grub", "3", "x.json"); code != 2 || !strings.Contains(stderr, "--grub") {
		t.Errorf("--grub 3: exit %d, stderr %q", code, stderr)
	}
	if code, _, stderr := partitionRun(t, filepath.Join(t.TempDir(), "missing.json")); code != 1 || !strings.Contains(stderr, "missing.json") {
		t.Errorf("missing file: exit %d, stderr %q", code, stderr)
	}
	bad := filepath.Join(t.TempDir(), "bad.json")
	if err := os.WriteFile(bad, []byte(`{"ks_meta": {"pm_data": {"ks_spaces": "nope"}}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := partitionRun(t, bad); code != 2 || !strings.Contains(stderr, "bad.json") {
		t.Errorf("invalid document: exit %d, stderr %q", code, stderr)
	}
}

// With an inventory that lacks the named disk and a machine that does not
// have it either, planning fails with exit 2 naming the disk.
func TestPartitionUnknownDisk(t *testing.T) {
	doc := partitionDoc(t, "imprint-no-such-disk")
	inv := filepath.Join(t.TempDir(), "inv.json")
	if err := os.WriteFile(inv, []byte(`{"disks":[{"name":"vda","path":"/dev/vda","size_bytes":85899345920}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := partitionRun(t, "--inventory", inv, "--dry-run", doc)
	if code != 2 || !strings.Contains(stderr, "imprint-no-such-disk") {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
}
