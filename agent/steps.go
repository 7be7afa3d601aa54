package agent

import (
	"context"
	"errors"
	"fmt"

	"github.com/imprint-dev/imprint/inventory"
	"github.com/imprint-dev/imprint/partition"
	"github.com/imprint-dev/imprint/prepare"
)

// The job's steps, in order. prepare runs before a job is accepted (its
// failure is a 422, not a failed job): it validates the document, plans it
// on this node's disks, renders the configdrive, applies the image policy
// and fixes the devices the job may write (package prepare). The others
// run in the background and only execute what prepare made. configdrive
// comes before images as in fuel-agent's do_provisioning, so an
// Astute-style parser sees its progress lines in the order it expects
// (configdrive 0.92, "Next chunk" 0.92–0.98, bootloader 0.99).
const (
	StepPrepare     = "prepare"
	StepDisks       = "disks"
	StepConfigdrive = "configdrive"
	StepImages      = "images"
	StepBootloader  = "bootloader"
	StepReport      = "report"
)

// StepNames lists the steps in execution order.
func StepNames() []string {
	return []string{StepPrepare, StepDisks, StepConfigdrive, StepImages, StepBootloader, StepReport}
}

// fuel-agent's log lines (docs/fuel-agent.md §1), emitted verbatim.
const (
	lineProvisioning    = "--- Provisioning (do_provisioning) ---"
	linePartitioning    = "--- Partitioning disks (do_partitioning) ---"
	lineConfigdrive     = "--- Creating configdrive (do_configdrive) ---"
	lineCopyimage       = "--- Copying images (do_copyimage) ---"
	lineBootloader      = "--- Installing bootloader (do_bootloader) ---"
	lineProvisioningEnd = "--- Provisioning END (do_provisioning) ---"
)

// FuelAgentLine is fuel-agent's log line opening step (StepDisks,
// StepConfigdrive, StepImages, StepBootloader), "" for another name: the
// single-step commands (fa_partition, ...) log it as the whole job does.
func FuelAgentLine(step string) string {
	return map[string]string{
		StepDisks: linePartitioning, StepConfigdrive: lineConfigdrive,
		StepImages: lineCopyimage, StepBootloader: lineBootloader,
	}[step]
}

// Disks tears down old storage and creates the plan's partitions, md, LVM
// and filesystems (partition.Apply), writing only job.Devices.
type Disks interface {
	Apply(ctx context.Context, job *prepare.Job) error
}

// ProgressFunc receives the bytes written of one image and its total (-1
// while unknown).
type ProgressFunc func(done, total int64)

// ImageResult is what an image write proved: the checks that passed.
type ImageResult struct {
	VerifiedBy []string // "sha256", "sha512", "md5", "size"
}

// Verified reports whether a digest (not only the size) was checked.
func (r ImageResult) Verified() bool {
	for _, v := range r.VerifiedBy {
		if v != "size" {
			return true
		}
	}
	return false
}

// Images writes one prepared image onto its target device (imagewriter),
// opening only a device of job.Devices.
type Images interface {
	Write(ctx context.Context, job *prepare.Job, img prepare.Image, progress ProgressFunc) (ImageResult, error)
}

// Configdrive writes the prepared configdrive onto its partition.
type Configdrive interface {
	Write(ctx context.Context, job *prepare.Job) error
}

// Files moves what an image holds below a mount point into the filesystem
// mounted there (job.Moves), after the images and before the bootloader,
// as fuel-agent's do_copyimage ends with move_files_to_their_places.
type Files interface {
	Move(ctx context.Context, job *prepare.Job) error
}

// Bootloader mounts the target, writes fstab and grub's configuration and
// installs grub on the plan's boot disks.
type Bootloader interface {
	Install(ctx context.Context, job *prepare.Job) error
}

// Steps are the job's collaborators. Inventory, Disks and Images are
// required; a nil Configdrive or Bootloader skips that step (logged as
// skipped). Prepare are the options every document is prepared with.
type Steps struct {
	Prepare   prepare.Options
	Inventory interface {
		Collect(ctx context.Context) (*inventory.Inventory, error)
	}
	Disks       Disks
	Configdrive Configdrive
	Images      Images
	// Files is part of the images step; nil: nothing is moved (the
	// plan's moves are logged as skipped).
	Files      Files
	Bootloader Bootloader
}

func (s Steps) check() error {
	var errs []error
	if s.Inventory == nil {
		errs = append(errs, errors.New("no inventory"))
	}
	if s.Disks == nil {
		errs = append(errs, errors.New("no disks step"))
	}
	if s.Images == nil {
		errs = append(errs, errors.New("no images step"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("agent: steps: %w", err)
	}
	return nil
}

// StepError says which step failed, and on which device when known.
type StepError struct {
	Step   string
	Device string
	Reason string // api.Reason*, when known
	Err    error
}

func (e *StepError) Error() string {
	if e.Device != "" {
		return fmt.Sprintf("step %s: %q: %v", e.Step, e.Device, e.Err)
	}
	return fmt.Sprintf("step %s: %v", e.Step, e.Err)
}

func (e *StepError) Unwrap() error { return e.Err }

// DeviceError attaches the device an error is about; steps may return it so
// the job's status names the device.
type DeviceError struct {
	Device string
	Err    error
}

func (e *DeviceError) Error() string { return fmt.Sprintf("%q: %v", e.Device, e.Err) }

func (e *DeviceError) Unwrap() error { return e.Err }

// deviceOf finds the device an error names, if any.
func deviceOf(err error) string {
	var de *DeviceError
	if errors.As(err, &de) {
		return de.Device
	}
	var se *StepError
	if errors.As(err, &se) {
		return se.Device
	}
	var dn interface{ DeviceName() string }
	if errors.As(err, &dn) {
		return dn.DeviceName()
	}
	var pe *partition.StepError
	if errors.As(err, &pe) {
		return pe.Device
	}
	return ""
}
