package agent

import (
	"context"
	"errors"
	"fmt"

	"github.com/imprint-dev/imprint/inventory"
	"github.com/imprint-dev/imprint/partition"
	"github.com/imprint-dev/imprint/provision"
)

// The job's steps, in order. validate and plan run before a job is
// accepted (their failure is a 422, not a failed job); the others run in the
// background. configdrive comes before images as in fuel-agent's
// do_provisioning, so an Astute-style parser sees its progress lines in the
// order it expects (configdrive 0.92, "Next chunk" 0.92–0.98, bootloader 0.99).
const (
	StepValidate    = "validate"
	StepPlan        = "plan"
	StepDisks       = "disks"
	StepConfigdrive = "configdrive"
	StepImages      = "images"
	StepBootloader  = "bootloader"
	StepReport      = "report"
)

// StepNames lists the steps in execution order.
func StepNames() []string {
	return []string{StepValidate, StepPlan, StepDisks, StepConfigdrive, StepImages, StepBootloader, StepReport}
}

// fuel-agent's log lines (fuel-agent.md §0), emitted verbatim.
const (
	lineProvisioning    = "--- Provisioning (do_provisioning) ---"
	linePartitioning    = "--- Partitioning disks (do_partitioning) ---"
	lineConfigdrive     = "--- Creating configdrive (do_configdrive) ---"
	lineCopyimage       = "--- Copying images (do_copyimage) ---"
	lineBootloader      = "--- Installing bootloader (do_bootloader) ---"
	lineProvisioningEnd = "--- Provisioning END (do_provisioning) ---"
)

// Parser parses and validates a provision document; invalid documents give
// a *provision.ValidationError (or *provision.SyntaxError).
type Parser interface {
	Parse(data []byte) (*provision.Document, error)
}

// ParserFunc adapts a function (provision.ParseAndValidate) to Parser.
type ParserFunc func(data []byte) (*provision.Document, error)

// Parse calls f.
func (f ParserFunc) Parse(data []byte) (*provision.Document, error) { return f(data) }

// Planner computes the storage plan of a document on this node's disks; it
// is pure (partition.Plan over partition.DevicesFromInventory).
type Planner interface {
	Plan(doc *provision.Document, inv *inventory.Inventory) (*partition.Plan, error)
}

// PlannerFunc adapts a function to Planner.
type PlannerFunc func(doc *provision.Document, inv *inventory.Inventory) (*partition.Plan, error)

// Plan calls f.
func (f PlannerFunc) Plan(doc *provision.Document, inv *inventory.Inventory) (*partition.Plan, error) {
	return f(doc, inv)
}

// Disks tears down old storage and creates the plan's partitions, md, LVM
// and filesystems (partition.Apply).
type Disks interface {
	Apply(ctx context.Context, plan *partition.Plan) error
}

// ProgressFunc receives the bytes written of one image and its total (-1
// while unknown).
type ProgressFunc func(done, total int64)

// Images writes one image onto its target device (imagewriter.Write).
type Images interface {
	Write(ctx context.Context, img partition.Image, progress ProgressFunc) error
}

// Configdrive writes the cloud-init configdrive for doc onto device.
type Configdrive interface {
	Write(ctx context.Context, doc *provision.Document, device string) error
}

// Bootloader mounts the target, writes fstab and grub's configuration and
// installs grub on the plan's boot disks.
type Bootloader interface {
	Install(ctx context.Context, doc *provision.Document, plan *partition.Plan) error
}

// Steps are the job's collaborators. Parser, Planner, Inventory, Disks and
// Images are required; a nil Configdrive or Bootloader skips that step
// (logged as skipped).
type Steps struct {
	Parser    Parser
	Planner   Planner
	Inventory interface {
		Collect(ctx context.Context) (*inventory.Inventory, error)
	}
	Disks       Disks
	Configdrive Configdrive
	Images      Images
	Bootloader  Bootloader
}

func (s Steps) check() error {
	var errs []error
	if s.Parser == nil {
		errs = append(errs, errors.New("no parser"))
	}
	if s.Planner == nil {
		errs = append(errs, errors.New("no planner"))
	}
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
	return ""
}
