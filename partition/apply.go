package partition

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
	"time"

	"github.com/diskfs/go-diskfs/backend"

	"github.com/imprint-dev/imprint/internal/devguard"
)

// Runner runs a program and returns its standard output. Its errors carry
// the argv and the program's standard error (sys.Exec's do); a program that
// is not installed gives an error wrapping exec.ErrNotFound.
type Runner interface {
	Run(ctx context.Context, name string, args ...string) ([]byte, error)
}

// DeviceInfo describes a block device.
type DeviceInfo struct {
	Path              string // as asked
	Name              string // kernel name: sda, loop3, dm-0, md127
	SizeBytes         int64
	LogicalSectorSize int
}

// ExistingPartition is a partition the kernel currently knows on a disk.
type ExistingPartition struct {
	Name       string // sda3
	Number     int
	StartBytes int64
	SizeBytes  int64
}

// DiskFile is a whole disk opened read-write (and exclusively) for writing
// its partition table; *os.File is one.
type DiskFile interface {
	backend.WritableFile
	Sync() error
}

// BlockDevices is everything Apply does to or learns from block devices
// other than running programs. internal/sys.Devices is the real one (sysfs,
// /proc, ioctls); the partition nodes it hands out come from the kernel
// after BLKRRPART unless it is told otherwise.
type BlockDevices interface {
	// Stat describes dev; an error wrapping fs.ErrNotExist if it is missing.
	Stat(dev string) (DeviceInfo, error)
	// KernelName is the kernel name of the device at path (through symlinks
	// and /dev/mapper nodes): "/dev/mapper/vg-root" → "dm-0".
	KernelName(path string) (string, error)
	// Partitions lists the partitions the kernel knows on disk dev.
	Partitions(dev string) ([]ExistingPartition, error)
	// Holders lists, transitively, the kernel names of the devices holding
	// dev or one of its partitions (md127, dm-0).
	Holders(dev string) ([]string, error)
	// Mounts describes where dev, one of its partitions or a device holding
	// them is mounted or used as swap ("sda3 mounted on /boot"); empty if
	// it is free.
	Mounts(dev string) ([]string, error)
	// MDStat is the content of /proc/mdstat ("" without the md driver).
	MDStat() (string, error)
	// Node returns /dev/NAME for a kernel device name, creating the node
	// from sysfs when it is missing (no udev).
	Node(name string) (string, error)
	// OpenDisk opens the whole disk dev read-write and exclusively.
	OpenDisk(dev string) (DiskFile, error)
	// RereadPartitions makes the kernel re-read dev's partition table.
	RereadPartitions(ctx context.Context, dev string) error
	// PartitionNode waits until partition p of disk d has a device node and
	// returns its path, failing with a clear error after a timeout.
	PartitionNode(ctx context.Context, d Disk, p Partition) (string, error)
	// Zero writes zeroes over [off, off+n) of dev and flushes them to the
	// device.
	Zero(dev string, off, n int64) error
}

// ApplyDeps is what Apply works through.
type ApplyDeps struct {
	Logger  *slog.Logger // nil: discard
	Runner  Runner
	Devices BlockDevices
	// LVMConfig is given to every lvm command as --config; "" means
	// DefaultLVMConfig (a udev-less ramdisk's).
	LVMConfig string
	// MkfsAttempts bounds mkfs runs per filesystem when blkid does not see
	// the new filesystem afterwards (LP #1550227); 0 means 3.
	MkfsAttempts int
	// Guard is the set of devices the job may write (the prepared job's);
	// nil builds it from the plan (DeviceSet). Every operation's device and
	// every device its argv names is checked against it, and every command
	// runs through it; what teardown finds living only on the planned disks
	// is added to it.
	Guard *devguard.Set
}

// PartitionOf is the kernel's name of partition n of disk dev
// (/dev/sda3, /dev/nvme0n1p3, /dev/mapper/mpatha-part3).
func PartitionOf(dev string, n int) string { return planPartitionDevice(dev, n) }

// DeviceSet is the set of devices plan may write: its disks, their
// partitions, its md arrays, and its LVs by both of their names.
func DeviceSet(plan *Plan, fsys devguard.FS) *devguard.Set {
	s := devguard.New(fsys)
	for _, d := range plan.Disks {
		s.Allow(d.Device, "planned disk")
		for _, p := range d.Paths {
			// A path of a planned multipath disk is that disk; a path of
			// any other multipath disk is not in the set.
			s.Allow(p, "path of multipath disk "+d.Device)
		}
		for _, p := range d.Partitions {
			// Only under the name the kernel gives partition N of this
			// disk: a scheme can call a partition anything.
			if PartitionOf(d.Device, p.Number) == p.Device {
				s.Allow(p.Device, "partition of "+d.Device)
			}
		}
	}
	for _, md := range plan.MDs {
		s.Allow(md.Device, "md array the plan creates")
	}
	for _, lv := range plan.LVs {
		s.Allow(lvDevice(lv), "LV the plan creates")
		s.Allow("/dev/"+lv.VG+"/"+lv.Name, "LV the plan creates")
	}
	return s
}

// Sentinel error classes, for errors.Is.
var (
	// ErrInUse: a planned disk (or one of its partitions, or a device on
	// top of them) is mounted, used as swap, or held after teardown.
	ErrInUse = errors.New("device in use")
	// ErrNotPlanned: an operation would touch a device the plan does not
	// name (the guard refused it).
	ErrNotPlanned = errors.New("device not named by the plan")
)

// StepError is the failure of one step of Apply on one device.
type StepError struct {
	Step   string
	Device string
	Err    error
}

func (e *StepError) Error() string {
	return fmt.Sprintf("partition: %s %q: %v", e.Step, e.Device, e.Err)
}

func (e *StepError) Unwrap() error { return e.Err }

// Apply lays plan onto the block devices: safety checks, teardown of the old
// md/LVM stack and signatures on the planned disks, GPT, partition nodes,
// md, LVM, mkfs (or, for a KeepData plan, only the mkfs of filesystems
// neither kept nor image targets). Every operation is logged with its step,
// device and duration; the first failure stops Apply and is a *StepError.
// Apply touches no device the plan does not name.
func Apply(ctx context.Context, plan *Plan, deps ApplyDeps) error {
	a, err := newApplier(plan, deps)
	if err != nil {
		return err
	}
	ops, err := a.prepare(ctx)
	if err != nil {
		return err
	}
	t0 := time.Now()
	for _, op := range ops {
		if err := ctx.Err(); err != nil {
			return &StepError{Step: op.Step, Device: op.Device, Err: err}
		}
		if err := a.exec(ctx, op); err != nil {
			return err
		}
	}
	a.log.Info("storage applied", "disks", len(plan.Disks), "operations", len(ops), "duration", time.Since(t0))
	return nil
}

// Pretend returns every operation Apply would run now, teardown included,
// after the same read-only safety checks and discovery, without changing
// anything: --dry-run.
func Pretend(ctx context.Context, plan *Plan, deps ApplyDeps) ([]Op, error) {
	a, err := newApplier(plan, deps)
	if err != nil {
		return nil, err
	}
	return a.prepare(ctx)
}

// applier holds one Apply run.
type applier struct {
	plan    *Plan
	deps    ApplyDeps
	log     *slog.Logger
	conf    string
	allowed *devguard.Set     // devices that may be touched
	vgs     map[string]bool   // VG names that may be created or removed
	nodes   map[string]string // planned partition device → node found
	disks   map[string]Disk
}

func newApplier(plan *Plan, deps ApplyDeps) (*applier, error) {
	if plan == nil {
		return nil, errors.New("partition: apply: nil plan")
	}
	if deps.Runner == nil || deps.Devices == nil {
		return nil, errors.New("partition: apply: Runner and Devices are required")
	}
	a := &applier{
		plan:    plan,
		deps:    deps,
		log:     deps.Logger,
		conf:    deps.LVMConfig,
		allowed: deps.Guard,
		vgs:     map[string]bool{},
		nodes:   map[string]string{},
		disks:   map[string]Disk{},
	}
	if a.log == nil {
		a.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if a.conf == "" {
		a.conf = DefaultLVMConfig
	}
	if a.allowed == nil {
		a.allowed = DeviceSet(plan, nil)
	}
	a.deps.Runner = devguard.GuardedRunner{Set: a.allowed, Runner: deps.Runner}
	for _, d := range plan.Disks {
		if _, dup := a.disks[d.Device]; dup {
			return nil, &StepError{Step: StepSafety, Device: d.Device, Err: errors.New("disk listed twice in the plan")}
		}
		a.disks[d.Device] = d
		a.allow(d.Device, "planned disk")
		for _, p := range d.Partitions {
			if p.Disk != "" && p.Disk != d.Device {
				return nil, &StepError{Step: StepSafety, Device: p.Device, Err: fmt.Errorf("partition belongs to %q but is listed under disk %q", p.Disk, d.Device)}
			}
			a.allow(p.Device, "planned partition")
		}
	}
	for _, md := range plan.MDs {
		a.allow(md.Device, "planned md")
	}
	for _, lv := range plan.LVs {
		a.allow(lvDevice(lv), "planned lv")
		a.allow("/dev/"+lv.VG+"/"+lv.Name, "planned lv")
	}
	for _, vg := range plan.VGs {
		a.vgs[vg.Name] = true
	}
	return a, nil
}

func (a *applier) allow(dev, why string) { a.allowed.Allow(dev, why) }

// prepare runs the read-only safety checks and discovery and returns the
// operations to execute, each already checked by the guard.
func (a *applier) prepare(ctx context.Context) ([]Op, error) {
	if err := a.safety(); err != nil {
		return nil, err
	}
	if err := a.checkTables(); err != nil {
		return nil, err
	}
	var ops []Op
	if a.plan.KeepData {
		return a.prepareKeep(ctx)
	}
	{
		st, err := a.discover(ctx)
		if err != nil {
			return nil, err
		}
		td, err := teardownOps(a.plan, st, a.conf)
		if err != nil {
			return nil, err
		}
		for _, op := range td {
			a.allowTeardown(op)
		}
		for _, vg := range st.removeVGs {
			a.vgs[vg] = true
		}
		ops = append(ops, td...)
	}
	rest, err := Operations(a.plan, a.conf)
	if err != nil {
		return nil, err
	}
	ops = append(ops, rest...)
	for _, op := range ops {
		if err := a.guard(op, op.Device, op.Argv); err != nil {
			return nil, err
		}
	}
	return ops, nil
}

// allowTeardown admits the devices discovered on the planned disks (old
// partitions, md arrays made only of them, PVs on them).
func (a *applier) allowTeardown(op Op) {
	if strings.HasPrefix(op.Device, "/dev/") {
		a.allow(op.Device, "on a planned disk")
	}
	for _, s := range op.Argv {
		if strings.HasPrefix(s, "/dev/") {
			a.allow(s, "on a planned disk")
		}
	}
}

// guard is the one check every operation passes before it runs: every
// device it names (its Device and every /dev path in its argv) must be a
// planned disk, partition, md or LV, a node found for one of them, or
// something teardown found living only on the planned disks; a VG name must
// be planned or found only on planned disks.
func (a *applier) guard(op Op, dev string, argv []string) error {
	check := func(d string) error {
		if strings.HasPrefix(d, "/dev/") {
			if err := a.allowed.Check(d, string(op.Kind)); err != nil {
				return &StepError{Step: op.Step, Device: d, Err: fmt.Errorf("%w: refusing %s (%w)", ErrNotPlanned, op.Kind, err)}
			}
			return nil
		}
		if d != "" && d == op.VG && a.vgs[d] {
			return nil
		}
		return &StepError{Step: op.Step, Device: d, Err: fmt.Errorf("%w: not a planned device or volume group", ErrNotPlanned)}
	}
	if op.VG != "" && !a.vgs[op.VG] {
		return &StepError{Step: op.Step, Device: op.VG, Err: fmt.Errorf("%w: volume group %q", ErrNotPlanned, op.VG)}
	}
	if err := check(dev); err != nil {
		return err
	}
	for _, s := range a.allowed.Named(argv) {
		if err := check(s); err != nil {
			return err
		}
	}
	return nil
}

// safety checks every planned disk exists, is large enough and is not in
// use.
func (a *applier) safety() error {
	for _, d := range a.plan.Disks {
		info, err := a.deps.Devices.Stat(d.Device)
		if err != nil {
			return &StepError{Step: StepSafety, Device: d.Device, Err: err}
		}
		var need int64
		for _, p := range d.Partitions {
			need = max(need, p.EndMiB)
		}
		if need*applyMiB > info.SizeBytes {
			return &StepError{Step: StepSafety, Device: d.Device, Err: fmt.Errorf("disk has %d bytes, the plan needs %d MiB", info.SizeBytes, need)}
		}
		if d.LogicalSectorSize != 0 && info.LogicalSectorSize != 0 && d.LogicalSectorSize != info.LogicalSectorSize {
			return &StepError{Step: StepSafety, Device: d.Device, Err: fmt.Errorf("logical sector size is %d, the plan says %d", info.LogicalSectorSize, d.LogicalSectorSize)}
		}
		mounts, err := a.deps.Devices.Mounts(d.Device)
		if err != nil {
			return &StepError{Step: StepSafety, Device: d.Device, Err: err}
		}
		if len(mounts) > 0 {
			return &StepError{Step: StepSafety, Device: d.Device, Err: fmt.Errorf("%w: %s", ErrInUse, strings.Join(mounts, "; "))}
		}
	}
	return nil
}

// checkTables builds every disk's GPT for the real device before anything
// is written, so that a table that cannot be written (a type GUID that is
// not one, a partition past the disk's end) stops Apply before teardown and
// wipes, not halfway through the disks.
func (a *applier) checkTables() error {
	kept := KeptVolumes(a.plan)
	for _, d := range a.plan.Disks {
		if kept.Disks[d.Device] {
			continue // its table stays (CheckKept)
		}
		info, err := a.deps.Devices.Stat(d.Device)
		if err != nil {
			return &StepError{Step: StepGPT, Device: d.Device, Err: err}
		}
		if _, err := GPTTable(d, info.SizeBytes, info.LogicalSectorSize); err != nil {
			return &StepError{Step: StepGPT, Device: d.Device, Err: err}
		}
	}
	return nil
}

// nodeOf is the device node to use for a plan device.
func (a *applier) nodeOf(dev string) string {
	if n, ok := a.nodes[dev]; ok {
		return n
	}
	return dev
}

// exec runs one operation, logged with its step, device and duration.
func (a *applier) exec(ctx context.Context, op Op) error {
	dev := a.nodeOf(op.Device)
	argv := make([]string, len(op.Argv))
	for i, s := range op.Argv {
		argv[i] = a.nodeOf(s)
	}
	if err := a.guard(op, dev, argv); err != nil {
		return err
	}
	log := a.log.With("step", op.Step, "device", op.Device)
	if dev != op.Device {
		log = log.With("node", dev)
	}
	t0 := time.Now()
	err := a.run(ctx, op, dev, argv)
	if err != nil {
		log.Error("operation failed", "op", op.String(), "duration", time.Since(t0), "error", err)
		var se *StepError
		if errors.As(err, &se) {
			return err
		}
		return &StepError{Step: op.Step, Device: op.Device, Err: err}
	}
	log.Info("operation done", "op", op.String(), "duration", time.Since(t0))
	return nil
}

func (a *applier) run(ctx context.Context, op Op, dev string, argv []string) error {
	switch op.Kind {
	case OpZero:
		return a.zero(dev, op)
	case OpWriteGPT:
		return a.writeGPT(dev, a.disks[op.Device])
	case OpReread:
		return a.deps.Devices.RereadPartitions(ctx, dev)
	case OpWaitNodes:
		d := a.disks[op.Device]
		for _, p := range d.Partitions {
			n, err := a.deps.Devices.PartitionNode(ctx, d, p)
			if err != nil {
				return &StepError{Step: op.Step, Device: p.Device, Err: err}
			}
			a.nodes[p.Device] = n
			a.allow(n, "node of "+p.Device)
		}
		return nil
	case OpCheckFree:
		return a.checkFree(dev)
	case OpRun:
		_, err := a.deps.Runner.Run(ctx, argv[0], argv[1:]...)
		return err
	case OpMkfs:
		return a.mkfs(ctx, op, dev, argv)
	}
	return fmt.Errorf("unknown operation %q", op.Kind)
}

// zero clamps the op's range to the device and zeroes it.
func (a *applier) zero(dev string, op Op) error {
	info, err := a.deps.Devices.Stat(dev)
	if err != nil {
		return err
	}
	off, n := op.Offset, op.Length
	if op.FromEnd {
		off = max(info.SizeBytes-n, 0)
	}
	if off >= info.SizeBytes {
		return nil // the end wipe of a partition ending at the disk's end
	}
	n = min(n, info.SizeBytes-off)
	return a.deps.Devices.Zero(dev, off, n)
}

// checkFree fails if anything still holds or mounts the disk after teardown.
func (a *applier) checkFree(dev string) error {
	holders, err := a.deps.Devices.Holders(dev)
	if err != nil {
		return err
	}
	if len(holders) > 0 {
		sort.Strings(holders)
		return fmt.Errorf("%w: still held by %s after teardown (an IMSM/DDF container, multipath or dm device the plan does not cover?)", ErrInUse, strings.Join(holders, ", "))
	}
	mounts, err := a.deps.Devices.Mounts(dev)
	if err != nil {
		return err
	}
	if len(mounts) > 0 {
		return fmt.Errorf("%w: %s", ErrInUse, strings.Join(mounts, "; "))
	}
	return nil
}

// mkfs makes the filesystem and checks blkid sees it, retrying mkfs (a
// fresh mkswap UUID can collide with the minix magic, LP #1550227).
func (a *applier) mkfs(ctx context.Context, op Op, dev string, argv []string) error {
	attempts := a.deps.MkfsAttempts
	if attempts <= 0 {
		attempts = 3
	}
	var last error
	for i := 0; i < attempts; i++ {
		if _, err := a.deps.Runner.Run(ctx, argv[0], argv[1:]...); err != nil {
			return err
		}
		out, err := a.deps.Runner.Run(ctx, "blkid", "-p", "-o", "value", "-s", "TYPE", dev)
		got := strings.TrimSpace(string(out))
		if err == nil && got == op.FSType {
			return nil
		}
		if err != nil {
			last = fmt.Errorf("blkid after %s: %w", argv[0], err)
		} else {
			last = fmt.Errorf("blkid after %s sees %q, want %q", argv[0], got, op.FSType)
		}
		a.log.Warn("filesystem not recognized after mkfs, retrying", "step", op.Step, "device", op.Device, "attempt", i+1, "error", last)
	}
	return last
}
