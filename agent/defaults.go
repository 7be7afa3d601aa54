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
// the profile).
func DefaultPlanner() Planner {
	return PlannerFunc(func(doc *provision.Document, inv *inventory.Inventory) (*partition.Plan, error) {
		return partition.NewPlan(doc, partition.DevicesFromInventory(inv), partition.DefaultPlanOptions())
	})
}
