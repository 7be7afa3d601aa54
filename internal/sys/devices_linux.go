package sys

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/imprint-dev/imprint/internal/mountinfo"
	"github.com/imprint-dev/imprint/partition"
)

var _ partition.BlockDevices = (*Devices)(nil)

// Linux block ioctls (uapi/linux/fs.h).
const (
	ioctlBLKRRPART = 0x125f
	ioctlBLKFLSBUF = 0x1261
)

// NodeResolver finds the device nodes of a disk's new partitions. The
// default (Devices.Nodes nil) is the kernel's: BLKRRPART, then wait for
// /sys/class/block/<disk>/<part> and create /dev/<part> from its dev file
// when nothing else does (no udev). Hosts whose kernel parses no partition
// tables may map partitions elsewhere (the loop tests use
// `losetup --offset --sizelimit` devices).
type NodeResolver interface {
	RereadPartitions(ctx context.Context, dev string) error
	PartitionNode(ctx context.Context, d partition.Disk, p partition.Partition) (string, error)
}

// Devices is the real partition.BlockDevices: sysfs, /proc and ioctls.
// The zero value uses /sys, /dev and /proc.
type Devices struct {
	SysRoot  string // default /sys
	DevRoot  string // default /dev: where missing nodes are created
	ProcRoot string // default /proc
	// NodeTimeout bounds the wait for a partition node; 0 means 30s.
	NodeTimeout time.Duration
	// PollInterval is the sysfs polling period; 0 means 50ms.
	PollInterval time.Duration
	// Nodes overrides how partition nodes are found; nil: the kernel's.
	Nodes NodeResolver
}

func (d *Devices) sysRoot() string  { return def(d.SysRoot, "/sys") }
func (d *Devices) devRoot() string  { return def(d.DevRoot, "/dev") }
func (d *Devices) procRoot() string { return def(d.ProcRoot, "/proc") }

func def(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

func (d *Devices) classBlock(name string, elem ...string) string {
	return filepath.Join(append([]string{d.sysRoot(), "class", "block", name}, elem...)...)
}

func readTrim(p string) (string, error) {
	b, err := os.ReadFile(p)
	return strings.TrimSpace(string(b)), err
}

func readInt(p string) (int64, error) {
	s, err := readTrim(p)
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(s, 10, 64)
}

// rdev is the device number of the block device at path.
func rdev(path string) (uint64, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return 0, err
	}
	if fi.Mode()&fs.ModeDevice == 0 || fi.Mode()&fs.ModeCharDevice != 0 {
		return 0, fmt.Errorf("%s is not a block device", path)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, fmt.Errorf("%s: no device number", path)
	}
	return st.Rdev, nil
}

// KernelName resolves path (a node, a symlink to one, a /dev/mapper node)
// to the kernel's name for the device, through /sys/dev/block/MAJ:MIN.
func (d *Devices) KernelName(path string) (string, error) {
	rd, err := rdev(path)
	if err != nil {
		return "", err
	}
	link := filepath.Join(d.sysRoot(), "dev", "block", fmt.Sprintf("%d:%d", unix.Major(rd), unix.Minor(rd)))
	target, err := os.Readlink(link)
	if err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	return filepath.Base(target), nil
}

// Stat describes the block device dev from sysfs.
func (d *Devices) Stat(dev string) (partition.DeviceInfo, error) {
	name, err := d.KernelName(dev)
	if err != nil {
		return partition.DeviceInfo{}, err
	}
	sectors, err := readInt(d.classBlock(name, "size"))
	if err != nil {
		return partition.DeviceInfo{}, fmt.Errorf("%s: size: %w", dev, err)
	}
	lss, err := readInt(d.classBlock(name, "queue", "logical_block_size"))
	if err != nil { // a partition: its disk's queue, one directory up
		if real, rerr := filepath.EvalSymlinks(d.classBlock(name)); rerr == nil {
			lss, err = readInt(filepath.Join(filepath.Dir(real), "queue", "logical_block_size"))
		}
	}
	if err != nil {
		lss = 512
	}
	return partition.DeviceInfo{Path: dev, Name: name, SizeBytes: sectors * 512, LogicalSectorSize: int(lss)}, nil
}

// partitionsOf lists the kernel's partitions of disk name, by number.
func (d *Devices) partitionsOf(name string) ([]partition.ExistingPartition, error) {
	if isDM(name) {
		return d.dmPartitionsOf(name)
	}
	ents, err := os.ReadDir(d.classBlock(name))
	if err != nil {
		return nil, err
	}
	var out []partition.ExistingPartition
	for _, e := range ents {
		num, err := readInt(d.classBlock(name, e.Name(), "partition"))
		if err != nil {
			continue
		}
		start, err1 := readInt(d.classBlock(name, e.Name(), "start"))
		size, err2 := readInt(d.classBlock(name, e.Name(), "size"))
		if err := errors.Join(err1, err2); err != nil {
			return nil, fmt.Errorf("partition %s: %w", e.Name(), err)
		}
		out = append(out, partition.ExistingPartition{Name: e.Name(), Number: int(num), StartBytes: start * 512, SizeBytes: size * 512})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Number < out[j].Number })
	return out, nil
}

// Partitions lists the partitions the kernel knows on disk dev.
func (d *Devices) Partitions(dev string) ([]partition.ExistingPartition, error) {
	name, err := d.KernelName(dev)
	if err != nil {
		return nil, err
	}
	return d.partitionsOf(name)
}

// holdersOf is the transitive set of devices holding name or (for a disk)
// one of its partitions.
func (d *Devices) holdersOf(name string) ([]string, error) {
	seen := map[string]bool{}
	var walk func(n string) error
	walk = func(n string) error {
		ents, err := os.ReadDir(d.classBlock(n, "holders"))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		for _, e := range ents {
			if !seen[e.Name()] {
				seen[e.Name()] = true
				if err := walk(e.Name()); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if err := walk(name); err != nil {
		return nil, err
	}
	parts, err := d.partitionsOf(name)
	if err != nil {
		return nil, err
	}
	for _, p := range parts {
		if err := walk(p.Name); err != nil {
			return nil, err
		}
	}
	out := make([]string, 0, len(seen))
	for n := range seen {
		out = append(out, n)
	}
	sort.Strings(out)
	return out, nil
}

// Holders lists, transitively, the devices holding dev or its partitions.
func (d *Devices) Holders(dev string) ([]string, error) {
	name, err := d.KernelName(dev)
	if err != nil {
		return nil, err
	}
	return d.holdersOf(name)
}

// Mounts describes where dev, its partitions or their holders are mounted
// (/proc/self/mountinfo by device number, /proc/mounts by source) or used
// as swap (/proc/swaps).
func (d *Devices) Mounts(dev string) ([]string, error) {
	name, err := d.KernelName(dev)
	if err != nil {
		return nil, err
	}
	return d.mountsOf(name)
}

func (d *Devices) mountsOf(name string) ([]string, error) {
	names := []string{name}
	parts, err := d.partitionsOf(name)
	if err != nil {
		return nil, err
	}
	for _, p := range parts {
		names = append(names, p.Name)
	}
	holders, err := d.holdersOf(name)
	if err != nil {
		return nil, err
	}
	names = append(names, holders...)
	byNum := map[string]string{} // "8:3" → sda3
	byName := map[string]bool{}
	for _, n := range names {
		byName[n] = true
		if num, err := readTrim(d.classBlock(n, "dev")); err == nil {
			byNum[num] = n
		}
	}
	var out []string
	seen := map[string]bool{}
	add := func(s string) {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	// sourceName resolves a mount source or swap path to a kernel name.
	sourceName := func(src string) string {
		if !strings.HasPrefix(src, "/") {
			return ""
		}
		if n, err := d.KernelName(src); err == nil {
			return n
		}
		return ""
	}
	if b, err := os.ReadFile(filepath.Join(d.procRoot(), "self", "mountinfo")); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			f := strings.Fields(l)
			if len(f) < 5 {
				continue
			}
			if n, ok := byNum[f[2]]; ok {
				add(fmt.Sprintf("%s mounted on %s", n, mountinfo.Unescape(f[4])))
			}
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	if b, err := os.ReadFile(filepath.Join(d.procRoot(), "mounts")); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			f := strings.Fields(l)
			if len(f) < 2 {
				continue
			}
			if n := sourceName(mountinfo.Unescape(f[0])); n != "" && byName[n] {
				add(fmt.Sprintf("%s mounted on %s", n, mountinfo.Unescape(f[1])))
			}
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	if b, err := os.ReadFile(filepath.Join(d.procRoot(), "swaps")); err == nil {
		for i, l := range strings.Split(string(b), "\n") {
			f := strings.Fields(l)
			if i == 0 || len(f) < 1 {
				continue
			}
			if n := sourceName(mountinfo.Unescape(f[0])); n != "" && byName[n] {
				add(n + " is active swap")
			}
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	return out, nil
}

// MDStat is /proc/mdstat, "" when the md driver is not there.
func (d *Devices) MDStat() (string, error) {
	b, err := os.ReadFile(filepath.Join(d.procRoot(), "mdstat"))
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	return string(b), err
}

// Node returns DevRoot/name, creating it from sysfs if missing.
func (d *Devices) Node(name string) (string, error) {
	num, err := readTrim(d.classBlock(name, "dev"))
	if err != nil {
		return "", fmt.Errorf("device %s: %w", name, err)
	}
	return d.ensureNode(name, num)
}

// ensureNode makes sure DevRoot/name is the block node num ("8:3").
func (d *Devices) ensureNode(name, num string) (string, error) {
	maj, min, ok := strings.Cut(num, ":")
	ma, err1 := strconv.ParseUint(maj, 10, 32)
	mi, err2 := strconv.ParseUint(min, 10, 32)
	if !ok || err1 != nil || err2 != nil {
		return "", fmt.Errorf("device %s: bad device number %q", name, num)
	}
	want := unix.Mkdev(uint32(ma), uint32(mi))
	p := filepath.Join(d.devRoot(), name)
	if got, err := rdev(p); err == nil {
		if got != want {
			return "", fmt.Errorf("%s is device %d:%d, the kernel's %s is %s", p, unix.Major(got), unix.Minor(got), name, num)
		}
		return p, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", err
	}
	if err := unix.Mknod(p, unix.S_IFBLK|0o600, int(want)); err != nil && !errors.Is(err, fs.ErrExist) {
		return "", fmt.Errorf("mknod %s (%s): %w", p, num, err)
	}
	return p, nil
}

// OpenDisk opens dev read-write and exclusively: the kernel refuses if
// anything mounts or holds it or one of its partitions.
func (d *Devices) OpenDisk(dev string) (partition.DiskFile, error) {
	f, err := os.OpenFile(dev, os.O_RDWR|unix.O_EXCL|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.EBUSY) {
		return nil, fmt.Errorf("%w: open %s exclusively: %v", partition.ErrInUse, dev, err)
	}
	if err != nil {
		return nil, err
	}
	return f, nil
}

// RereadPartitions issues BLKRRPART (retrying a few times while busy), or
// defers to Nodes.
func (d *Devices) RereadPartitions(ctx context.Context, dev string) error {
	if d.Nodes != nil {
		return d.Nodes.RereadPartitions(ctx, dev)
	}
	if kname, err := d.KernelName(dev); err == nil && isDM(kname) {
		return d.rereadDM(ctx, dev)
	}
	f, err := os.OpenFile(dev, os.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	var errno syscall.Errno
	for attempt := 1; ; attempt++ {
		_, _, errno = unix.Syscall(unix.SYS_IOCTL, f.Fd(), ioctlBLKRRPART, 0)
		if errno == 0 {
			return nil
		}
		if errno != unix.EBUSY || attempt == 5 {
			break
		}
		if err := sleepCtx(ctx, time.Duration(attempt)*200*time.Millisecond); err != nil {
			return err
		}
	}
	switch errno {
	case unix.EBUSY:
		return fmt.Errorf("%w: BLKRRPART: %v (a partition is still mounted or held)", partition.ErrInUse, errno)
	case unix.EINVAL:
		return fmt.Errorf("BLKRRPART: %v (the device takes no partitions, e.g. a loop device without partscan)", errno)
	}
	return fmt.Errorf("BLKRRPART: %w", errno)
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// PartitionNode waits until the kernel reports partition p of disk dk in
// sysfs at the planned start and size, then returns its node (created with
// mknod if missing), or defers to Nodes.
func (d *Devices) PartitionNode(ctx context.Context, dk partition.Disk, p partition.Partition) (string, error) {
	if d.Nodes != nil {
		return d.Nodes.PartitionNode(ctx, dk, p)
	}
	disk, err := d.KernelName(dk.Device)
	if err != nil {
		return "", err
	}
	timeout := d.NodeTimeout
	if timeout == 0 {
		timeout = 30 * time.Second
	}
	poll := d.PollInterval
	if poll == 0 {
		poll = 50 * time.Millisecond
	}
	if isDM(disk) {
		return d.dmPartitionNode(ctx, dk, p, timeout, poll)
	}
	wantStart := p.BeginMiB * (1 << 20) / 512
	wantSize := (p.EndMiB - p.BeginMiB) * (1 << 20) / 512
	deadline := time.Now().Add(timeout)
	last := "not listed"
	for {
		parts, err := d.partitionsOf(disk)
		if err != nil {
			return "", err
		}
		for _, ep := range parts {
			if ep.Number != p.Number {
				continue
			}
			if ep.StartBytes/512 != wantStart || ep.SizeBytes/512 != wantSize {
				last = fmt.Sprintf("listed as %s at sector %d, %d sectors (planned %d, %d)", ep.Name, ep.StartBytes/512, ep.SizeBytes/512, wantStart, wantSize)
				break
			}
			num, err := readTrim(d.classBlock(disk, ep.Name, "dev"))
			if err != nil {
				last = "no dev file yet"
				break
			}
			return d.ensureNode(ep.Name, num)
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("partition %d of %s (%s): no device node after %s: the kernel's /sys/class/block/%s: %s", p.Number, dk.Device, p.Device, timeout, disk, last)
		}
		if err := sleepCtx(ctx, poll); err != nil {
			return "", err
		}
	}
}

// zeroChunk is the write size of Zero.
const zeroChunk = 1 << 20

// Zero writes zeroes over [off, off+n) of dev with O_DIRECT where it can,
// fsyncs and drops the device's buffer cache, so other views of the same
// sectors (partition nodes, the whole disk) read the zeroes.
func (d *Devices) Zero(dev string, off, n int64) error {
	if off < 0 || n < 0 {
		return fmt.Errorf("zero %s: bad range %d+%d", dev, off, n)
	}
	flags := os.O_WRONLY | unix.O_EXCL | unix.O_CLOEXEC
	direct := off%4096 == 0 && n%512 == 0
	var f *os.File
	var err error
	if direct {
		f, err = os.OpenFile(dev, flags|unix.O_DIRECT, 0)
		if errors.Is(err, unix.EINVAL) {
			direct = false
		}
	}
	if !direct {
		f, err = os.OpenFile(dev, flags, 0)
	}
	if errors.Is(err, unix.EBUSY) {
		return fmt.Errorf("%w: open %s exclusively: %v", partition.ErrInUse, dev, err)
	}
	if err != nil {
		return err
	}
	defer f.Close()
	raw := make([]byte, zeroChunk+4096)
	shift := int((4096 - uintptr(unsafe.Pointer(&raw[0]))%4096) % 4096)
	buf := raw[shift : shift+zeroChunk]
	for done := int64(0); done < n; {
		c := min(int64(zeroChunk), n-done)
		if direct && c%512 != 0 {
			return fmt.Errorf("zero %s: unaligned tail of %d bytes", dev, c)
		}
		if _, err := f.WriteAt(buf[:c], off+done); err != nil {
			return fmt.Errorf("zero %s at %d: %w", dev, off+done, err)
		}
		done += c
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("zero %s: sync: %w", dev, err)
	}
	if fi, err := f.Stat(); err == nil && fi.Mode()&fs.ModeDevice != 0 {
		_, _, _ = unix.Syscall(unix.SYS_IOCTL, f.Fd(), ioctlBLKFLSBUF, 0)
	}
	return nil
}
