package agent

import (
	"github.com/imprint-dev/imprint/inventory"
	"github.com/imprint-dev/imprint/partition"
	"github.com/imprint-dev/imprint/provision"
)

// DefaultParser is provision.ParseAndValidate.
func DefaultParser() Parser { return ParserFunc(provision.ParseAndValidate) }

// DefaultPlanner is partition.NewPlan over the inventory's devices with
// fuel-agent's default options (a configdrive partition, grub version from
// the profile) and the document's ks_meta.boot_mode, else the mode the
// ramdisk was booted in (the inventory's firmware).
func DefaultPlanner() Planner {
	return PlannerFunc(func(doc *provision.Document, inv *inventory.Inventory) (*partition.Plan, error) {
		opts := partition.DefaultPlanOptions()
		opts.BootMode = provision.ResolveBootMode(doc.KsMeta.BootMode, inv != nil && inv.Firmware.BootMode == "uefi")
		return partition.NewPlan(doc, partition.DevicesFromInventory(inv), opts)
	})
}
