package provision

import (
	"fmt"
	"strings"
)

// checkTree applies, on the generic tree, the structural rules that a typed
// decode would lose: required keys, and fuel-agent's ks_spaces JSON schema
// (fuel_agent/drivers/ks_spaces_validator.py, draft-04; docs/fuel-agent.md
// §5) with the exact types it demands. Every problem is recorded.
func checkTree(root *node, ps *problems) {
	simple := root.get("partitioning") != nil && root.get("partitioning").kind != kNull
	ksMeta := root.get("ks_meta")
	if ksMeta == nil {
		ps.add(pathKsMeta, "required")
		return
	}
	if ksMeta.kind != kObject {
		return // the decoder reports the type
	}
	pm := ksMeta.get("pm_data")
	if pm == nil {
		ps.add(pathPmData, "required")
		return
	}
	if pm.kind != kObject {
		return
	}
	if kp := pm.get("kernel_params"); kp == nil {
		ps.add(field(pathPmData, "kernel_params"), "required")
	}
	checkKsSpaces(pm.get("ks_spaces"), simple, ps)
}

func checkKsSpaces(n *node, simple bool, ps *problems) {
	p := pathKsSpaces
	if n == nil {
		if !simple { // the nailgun_simple driver reads "partitioning" instead
			ps.add(p, "required")
		}
		return
	}
	if n.kind != kArray {
		ps.add(p, "must be an array, got %s", n.describe())
		return
	}
	if len(n.arr) == 0 {
		if !simple {
			ps.add(p, "must contain at least one disk (partition scheme is empty)")
		}
		return
	}
	seen := map[string]int{}
	disks := 0
	for i, it := range n.arr {
		ip := index(p, i)
		var b strings.Builder
		it.canonical(&b)
		if j, ok := seen[b.String()]; ok {
			ps.add(ip, "duplicate of ks_spaces[%d] (items must be unique)", j)
		} else {
			seen[b.String()] = i
		}
		if it.kind != kObject {
			ps.add(ip, "must be an object, got %s", it.describe())
			continue
		}
		t := it.get("type")
		switch {
		case t == nil:
			ps.add(field(ip, "type"), "required (\"disk\" or \"vg\")")
		case t.kind == kString && t.str == SpaceDisk:
			disks++
			checkDisk(it, ip, ps)
		case t.kind == kString && t.str == SpaceVG:
			checkVG(it, ip, ps)
		default:
			ps.add(field(ip, "type"), "must be \"disk\" or \"vg\", got %s", t.describe())
		}
	}
	if disks == 0 && !simple {
		ps.add(p, "no entry of type \"disk\" (partition scheme is empty)")
	}
}

// Value checks of the schema's property types.

type propType int

const (
	tString propType = iota
	tInteger
	tStringArray
	tArray
	tBoolOrNull   // not in fuel-agent's schema; Python truthiness of anything else is a trap
	tStringOrNull // not in fuel-agent's schema
)

type prop struct {
	name     string
	typ      propType
	required bool
}

func checkProps(obj *node, path string, props []prop, ps *problems) {
	for _, pr := range props {
		v := obj.get(pr.name)
		fp := field(path, pr.name)
		if v == nil {
			if pr.required {
				ps.add(fp, "required")
			}
			continue
		}
		checkType(v, fp, pr.typ, ps)
	}
}

func checkType(v *node, path string, t propType, ps *problems) {
	switch t {
	case tString:
		if v.kind != kString {
			ps.add(path, "must be a string, got %s", v.describe())
		}
	case tInteger:
		if v.kind != kNumber {
			ps.add(path, "must be an integer, got %s", v.describe())
		} else if _, err := v.int64Value(); err != nil {
			if err.Error() == "out of range" {
				ps.add(path, "must be an integer, got %s (out of range)", v.describe())
			} else {
				ps.add(path, "must be an integer, got %s", v.describe())
			}
		}
	case tArray:
		if v.kind != kArray {
			ps.add(path, "must be an array, got %s", v.describe())
		}
	case tStringArray:
		if v.kind != kArray {
			ps.add(path, "must be an array of strings, got %s", v.describe())
			return
		}
		for i, e := range v.arr {
			if e.kind != kString {
				ps.add(index(path, i), "must be a string, got %s", e.describe())
			}
		}
	case tBoolOrNull:
		if v.kind != kBool && v.kind != kNull {
			ps.add(path, "must be true or false, got %s", v.describe())
		}
	case tStringOrNull:
		if v.kind != kString && v.kind != kNull {
			ps.add(path, "must be a string, got %s", v.describe())
		}
	}
}

var diskProps = []prop{
	{"type", tString, true},
	{"id", tString, true},
	{"volumes", tArray, true},
	{"name", tString, true},
	{"size", tInteger, true},
	{"extra", tStringArray, true},
	{"free_space", tInteger, true},
	{"bootable", tBoolOrNull, false},
}

// Properties every disk volume may carry beyond its kind's schema.
var volumeExtraProps = []prop{
	{"keep_data", tBoolOrNull, false},
	{"partition_guid", tStringOrNull, false},
	{"disk_label", tStringOrNull, false},
}

var volumeProps = map[string][]prop{
	VolPV: {
		{"type", tString, true},
		{"size", tInteger, true},
		{"lvm_meta_size", tInteger, true},
		{"vg", tString, true},
	},
	VolRaid: {
		{"type", tString, true},
		{"size", tInteger, true},
		{"mount", tString, false},
		{"file_system", tString, false},
		{"name", tString, false},
	},
	VolBoot: {
		{"type", tString, true},
		{"size", tInteger, true},
	},
	VolLVMMetaPool: {
		{"type", tString, true},
		{"size", tInteger, true},
	},
}

func init() { volumeProps[VolPartition] = volumeProps[VolRaid] }

const diskVolumeTypes = "pv, raid, partition, boot or lvm_meta_pool"

// eachVolume calls fn with every object of n's "volumes" array and its
// path; a volume that is not an object is a problem (a "volumes" that is
// not an array is one already, of n's own properties).
func eachVolume(n *node, path string, ps *problems, fn func(v *node, vp string)) {
	vols := n.get("volumes")
	if vols == nil || vols.kind != kArray {
		return
	}
	for j, v := range vols.arr {
		vp := index(field(path, "volumes"), j)
		if v.kind != kObject {
			ps.add(vp, "must be an object, got %s", v.describe())
			continue
		}
		fn(v, vp)
	}
}

func checkDisk(disk *node, path string, ps *problems) {
	checkProps(disk, path, diskProps, ps)
	eachVolume(disk, path, ps, func(v *node, vp string) {
		t := v.get("type")
		if t == nil {
			ps.add(field(vp, "type"), "required (%s)", diskVolumeTypes)
			return
		}
		props, ok := volumeProps[t.str]
		if t.kind != kString || !ok {
			ps.add(field(vp, "type"), "%s", unknownVolumeType(t.describe()))
			return
		}
		checkProps(v, vp, props, ps)
		checkProps(v, vp, volumeExtraProps, ps)
	})
}

func unknownVolumeType(got string) string {
	return fmt.Sprintf("unknown disk volume type, got %s (want %s)", got, diskVolumeTypes)
}

var vgProps = []prop{
	{"type", tString, true},
	{"id", tString, true},
	{"volumes", tArray, true},
	{"label", tString, false},
	{"min_size", tInteger, false},
	{"_allocate_size", tString, false},
}

var lvProps = []prop{
	{"type", tString, true},
	{"size", tInteger, true},
	{"name", tString, true},
	{"mount", tString, false},
	{"file_system", tString, false},
	{"keep_data", tBoolOrNull, false},
}

func checkVG(vg *node, path string, ps *problems) {
	checkProps(vg, path, vgProps, ps)
	eachVolume(vg, path, ps, func(v *node, vp string) {
		if t := v.get("type"); t != nil && !(t.kind == kString && t.str == VolLV) {
			ps.add(field(vp, "type"), "%s", notLV(t.describe()))
			checkProps(v, vp, lvProps[1:], ps)
			return
		}
		checkProps(v, vp, lvProps, ps)
	})
}

func notLV(got string) string {
	return fmt.Sprintf("must be \"lv\" in a volume group, got %s", got)
}
