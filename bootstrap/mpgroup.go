package bootstrap

import (
	"fmt"
	"sort"
	"strings"
)

// MPPath is one block device as sysfs describes it, for grouping paths.
type MPPath struct {
	Name    string // sda
	Dev     string // 8:0
	WWID    string // the device's wwid attribute: "naa.5000c50015ea71ac"
	Sectors int64
	Held    bool // something (a map, an md array) holds it already
}

// MPMap is a multipath map to create over Paths.
type MPMap struct {
	Name  string // mpatha
	UUID  string // mpath-35000c50015ea71ac
	Table string // the dm table
	Paths []string
}

// MultipathWWID is multipath-tools' WWID for a sysfs wwid attribute: NAA
// "naa.X" → "3X", EUI-64 "eui.X" → "2X", T10 "t10.X" → "1X"; others as
// they are.
func MultipathWWID(sysfsWWID string) string {
	w := strings.TrimSpace(sysfsWWID)
	for prefix, n := range map[string]string{"naa.": "3", "eui.": "2", "t10.": "1"} {
		if rest, ok := strings.CutPrefix(w, prefix); ok {
			return n + strings.ToLower(rest)
		}
	}
	return w
}

// GroupMultipath plans the maps for paths sharing a WWID (two or more,
// none of them held, all the same size): round-robin over every path in
// one priority group. used lists map names that exist already; new maps
// are named mpatha, mpathb, ... in WWID order, skipping those. Pure.
func GroupMultipath(paths []MPPath, used map[string]bool) ([]MPMap, error) {
	by := map[string][]MPPath{}
	for _, p := range paths {
		if p.WWID == "" {
			continue
		}
		w := MultipathWWID(p.WWID)
		by[w] = append(by[w], p)
	}
	var wwids []string
	for w, ps := range by {
		if len(ps) >= 2 {
			wwids = append(wwids, w)
		}
	}
	sort.Strings(wwids)
	var out []MPMap
	next := 0
	for _, w := range wwids {
		ps := by[w]
		sort.Slice(ps, func(i, j int) bool { return ps[i].Name < ps[j].Name })
		held := false
		for _, p := range ps {
			if p.Sectors != ps[0].Sectors {
				return nil, fmt.Errorf("multipath: paths %s and %s share WWID %s but differ in size (%d, %d sectors)", ps[0].Name, p.Name, w, ps[0].Sectors, p.Sectors)
			}
			held = held || p.Held
		}
		if held {
			continue // already a map (multipath made it) or in use
		}
		var name string
		for {
			name = "mpath" + suffix(next)
			next++
			if !used[name] {
				break
			}
		}
		t := fmt.Sprintf("0 %d multipath 0 0 1 1 round-robin 0 %d 1", ps[0].Sectors, len(ps))
		var names []string
		for _, p := range ps {
			t += " " + p.Dev + " 1"
			names = append(names, p.Name)
		}
		out = append(out, MPMap{Name: name, UUID: "mpath-" + w, Table: t, Paths: names})
	}
	return out, nil
}

// suffix is multipath's user-friendly suffix: a..z, aa..az, ...
func suffix(n int) string {
	s := ""
	for n++; n > 0; n = (n - 1) / 26 {
		s = string(rune('a'+(n-1)%26)) + s
	}
	return s
}
