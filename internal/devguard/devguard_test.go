package devguard

import (
	"context"
	"errors"
	"strings"
	"testing"
)

// fakeFS: links maps a path to what it resolves to; nodes maps a path to
// the device number of the block node it is.
type fakeFS struct {
	links map[string]string
	nodes map[string]uint64
}

func (f fakeFS) EvalSymlinks(p string) (string, error) {
	if r, ok := f.links[p]; ok {
		return r, nil
	}
	return p, nil
}

func (f fakeFS) Rdev(p string) (uint64, bool) {
	if r, ok := f.links[p]; ok {
		p = r
	}
	n, ok := f.nodes[p]
	return n, ok
}

func testSet() *Set {
	fsys := fakeFS{
		links: map[string]string{
			"/dev/disk/by-id/ata-A": "/dev/sda",
			"/dev/disk/by-id/ata-B": "/dev/sdb",
			"/tmp/innocent":         "/dev/sdb",
			"/dev/os/root":          "/dev/dm-0",
		},
		nodes: map[string]uint64{"/dev/sda": 0x800, "/dev/sda1": 0x801, "/dev/sdb": 0x810, "/tmp/node-of-sda1": 0x801, "/tmp/node-of-sdb": 0x810, "/dev/dm-0": 0xfd00},
	}
	s := New(fsys)
	s.Allow("/dev/sda", "planned disk")
	s.Allow("/dev/sda1", "planned partition")
	s.Allow("/dev/mapper/os-root", "planned lv")
	s.Allow("/dev/dm-0", "node of planned lv")
	return s
}

func TestCheck(t *testing.T) {
	s := testSet()
	for _, tc := range []struct {
		path string
		ok   bool
	}{
		{"/dev/sda", true},
		{"/dev/sda1", true},
		{"/dev/disk/by-id/ata-A", true},  // a symlink to a planned disk
		{"/tmp/node-of-sda1", true},      // another node of a planned partition
		{"/dev/os/root", true},           // resolves to the LV's dm node
		{"/dev/sdb", false},              //
		{"/dev/disk/by-id/ata-B", false}, // resolves outside the set
		{"/tmp/innocent", false},         // a symlink into /dev
		{"/tmp/node-of-sdb", false},      // a block node of an unplanned disk
		{"/dev/sda2", false},
		{"", false},
	} {
		err := s.Check(tc.path, "open for writing")
		if (err == nil) != tc.ok {
			t.Errorf("Check(%q) = %v, want ok=%v", tc.path, err, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrNotPlanned) {
			t.Errorf("Check(%q): %v is not ErrNotPlanned", tc.path, err)
		}
	}
	var nilSet *Set
	if err := nilSet.Check("/dev/sda", "x"); err == nil {
		t.Error("a nil set allowed a device")
	}
}

func TestArgsEverySpelling(t *testing.T) {
	s := testSet()
	for _, argv := range [][]string{
		{"-f", "/dev/sdb"},
		{"-l", "logdev=/dev/sdb", "/dev/sda1"},
		{"-llogdev=/dev/sdb,size=8m", "/dev/sda1"},
		{"-J", "device=/dev/sdb", "/dev/sda1"},
		{"-E", "stride=4,journal_device=/dev/sdb", "/dev/sda1"},
		{"--journal-device=/dev/sdb", "/dev/sda1"},
		{"-r", "rtdev=/dev/disk/by-id/ata-B", "/dev/sda1"},
		{"/tmp/innocent"},
		{"-Jdevice=/tmp/innocent", "/dev/sda1"},
		{"--device", "/tmp/node-of-sdb"},
		{"x:/dev/sdb"},
		{"'/dev/sdb'"},
	} {
		err := s.Args("mkfs", argv)
		if !errors.Is(err, ErrNotPlanned) {
			t.Errorf("Args(%q) = %v, want a refusal", argv, err)
			continue
		}
		var ge *Error
		if !errors.As(err, &ge) || !strings.Contains(ge.What, "mkfs") {
			t.Errorf("Args(%q): %v does not name the program", argv, err)
		}
	}
	for _, argv := range [][]string{
		{"-f", "-L", "root", "/dev/sda1"},
		{"-l", "logdev=/dev/sda1", "/dev/mapper/os-root"},
		{"--config", "devices { filter=[\"a|.*|\"] }", "/dev/sda"},
		{"-o", "/boot/grub/grub.cfg"},
	} {
		if err := s.Args("mkfs", argv); err != nil {
			t.Errorf("Args(%q) = %v, want ok", argv, err)
		}
	}
}

type recorder struct{ ran [][]string }

func (r *recorder) Run(_ context.Context, name string, args ...string) ([]byte, error) {
	r.ran = append(r.ran, append([]string{name}, args...))
	return nil, nil
}

func TestGuardedRunner(t *testing.T) {
	rec := &recorder{}
	g := GuardedRunner{Set: testSet(), Runner: rec}
	if _, err := g.Run(context.Background(), "mkfs.xfs", "-f", "-l", "logdev=/dev/sdb", "/dev/sda1"); !errors.Is(err, ErrNotPlanned) {
		t.Fatalf("guarded run = %v, want a refusal", err)
	}
	if _, err := g.Run(context.Background(), "mkfs.xfs", "-f", "/dev/sda1"); err != nil {
		t.Fatal(err)
	}
	if len(rec.ran) != 1 || rec.ran[0][0] != "mkfs.xfs" {
		t.Fatalf("ran %q, want only the allowed command", rec.ran)
	}
}
