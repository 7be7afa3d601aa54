package partition

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// fakeRunner records every command and answers from a script: the first
// rule whose prefix matches the joined argv gives the output or error.
type fakeRunner struct {
	calls [][]string
	rules []fakeRule
	// onRun, if set, sees every call before the rules (to change the fake
	// devices' state, as mdadm --stop would).
	onRun func(argv []string)
}

type fakeRule struct {
	prefix string
	out    string
	stderr string // non-empty: the command fails with this stderr
	// contains, if set, must also occur in the joined argv
	contains string
	times    int // >0: applies this many times only
}

func (r *fakeRunner) Run(_ context.Context, name string, args ...string) ([]byte, error) {
	argv := append([]string{name}, args...)
	r.calls = append(r.calls, argv)
	if r.onRun != nil {
		r.onRun(argv)
	}
	joined := strings.Join(argv, " ")
	for i := range r.rules {
		ru := &r.rules[i]
		if !strings.HasPrefix(joined, ru.prefix) || !strings.Contains(joined, ru.contains) || ru.times < 0 {
			continue
		}
		if ru.times > 0 {
			ru.times--
			if ru.times == 0 {
				ru.times = -1
			}
		}
		if ru.stderr != "" {
			return []byte(ru.out), fmt.Errorf("%s: exit status 1 (stderr: %q)", joined, ru.stderr)
		}
		return []byte(ru.out), nil
	}
	return nil, nil
}

// commands is the calls as joined strings, without the lvm --config text.
func (r *fakeRunner) commands() []string {
	var out []string
	for _, c := range r.calls {
		var kept []string
		for i := 0; i < len(c); i++ {
			if c[i] == "--config" {
				i++
				continue
			}
			kept = append(kept, c[i])
		}
		out = append(out, strings.Join(kept, " "))
	}
	return out
}

// fakeDevice is one block device of fakeDevices.
type fakeDevice struct {
	name       string
	size       int64
	sector     int
	partitions []ExistingPartition
	holders    []string
	mounts     []string
}

// fakeDevices is an in-memory BlockDevices. Whole disks are backed by
// sparse image files so the GPT really gets written; it records the
// destructive calls.
type fakeDevices struct {
	t       *testing.T
	dir     string
	devs    map[string]*fakeDevice
	mdstat  string
	zeroes  []string // "dev off+len"
	opened  []string
	reread  []string
	nodeErr error
}

func newFakeDevices(t *testing.T) *fakeDevices {
	return &fakeDevices{t: t, dir: t.TempDir(), devs: map[string]*fakeDevice{}}
}

// addDisk adds a disk and the node of each planned partition of it.
func (f *fakeDevices) addDisk(path string, sizeMiB int64) *fakeDevice {
	d := &fakeDevice{name: filepath.Base(path), size: sizeMiB << 20, sector: 512}
	f.devs[path] = d
	img, err := os.Create(f.image(path))
	if err != nil {
		f.t.Fatal(err)
	}
	if err := img.Truncate(d.size); err != nil {
		f.t.Fatal(err)
	}
	img.Close()
	return d
}

func (f *fakeDevices) image(path string) string {
	return filepath.Join(f.dir, strings.ReplaceAll(strings.TrimPrefix(path, "/dev/"), "/", "_")+".img")
}

func (f *fakeDevices) get(dev string) (*fakeDevice, error) {
	d, ok := f.devs[dev]
	if !ok {
		return nil, &fs.PathError{Op: "stat", Path: dev, Err: fs.ErrNotExist}
	}
	return d, nil
}

func (f *fakeDevices) Stat(dev string) (DeviceInfo, error) {
	d, err := f.get(dev)
	if err != nil {
		return DeviceInfo{}, err
	}
	return DeviceInfo{Path: dev, Name: d.name, SizeBytes: d.size, LogicalSectorSize: d.sector}, nil
}

func (f *fakeDevices) KernelName(path string) (string, error) {
	if d, ok := f.devs[path]; ok {
		return d.name, nil
	}
	return filepath.Base(path), nil
}

func (f *fakeDevices) Partitions(dev string) ([]ExistingPartition, error) {
	d, err := f.get(dev)
	if err != nil {
		return nil, err
	}
	return d.partitions, nil
}

func (f *fakeDevices) Holders(dev string) ([]string, error) {
	d, err := f.get(dev)
	if err != nil {
		return nil, err
	}
	return d.holders, nil
}

func (f *fakeDevices) Mounts(dev string) ([]string, error) {
	d, err := f.get(dev)
	if err != nil {
		return nil, err
	}
	return d.mounts, nil
}

func (f *fakeDevices) MDStat() (string, error) { return f.mdstat, nil }

func (f *fakeDevices) Node(name string) (string, error) { return "/dev/" + name, nil }

func (f *fakeDevices) OpenDisk(dev string) (DiskFile, error) {
	if _, err := f.get(dev); err != nil {
		return nil, err
	}
	f.opened = append(f.opened, dev)
	return os.OpenFile(f.image(dev), os.O_RDWR, 0)
}

func (f *fakeDevices) RereadPartitions(_ context.Context, dev string) error {
	f.reread = append(f.reread, dev)
	return nil
}

// PartitionNode "creates" the partition's node: a device of the planned size.
func (f *fakeDevices) PartitionNode(_ context.Context, d Disk, p Partition) (string, error) {
	if f.nodeErr != nil {
		return "", f.nodeErr
	}
	if _, ok := f.devs[p.Device]; !ok {
		f.devs[p.Device] = &fakeDevice{name: filepath.Base(p.Device), size: p.SizeMiB() << 20, sector: 512}
	}
	return p.Device, nil
}

func (f *fakeDevices) Zero(dev string, off, n int64) error {
	d, err := f.get(dev)
	if err != nil {
		return err
	}
	if off < 0 || n <= 0 || off+n > d.size {
		return fmt.Errorf("zero %s: range %d+%d outside %d bytes", dev, off, n, d.size)
	}
	f.zeroes = append(f.zeroes, fmt.Sprintf("%s %d+%d", dev, off, n))
	return nil
}

// touched lists every device a destructive call went to, sorted.
func (f *fakeDevices) touched() []string {
	seen := map[string]bool{}
	for _, z := range f.zeroes {
		seen[strings.Fields(z)[0]] = true
	}
	for _, o := range f.opened {
		seen[o] = true
	}
	var out []string
	for d := range seen {
		out = append(out, d)
	}
	sort.Strings(out)
	return out
}
