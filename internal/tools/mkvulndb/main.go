// Command mkvulndb builds a local Go vulnerability database for govulncheck
// (`make vulncheck`) from the golang.org/x/vulndb module, so the check needs
// the module proxy and nothing else.
//
// The module ships one OSV entry per report under data/osv/GO-YYYY-NNNN.json,
// a flat directory. govulncheck's documented `-db file://DIR` source wants the
// v1 database layout (https://go.dev/security/vuln/database#api):
//
//	DIR/index/db.json       {"modified": newest entry time}
//	DIR/index/modules.json  [{"path", "vulns": [{"id", "modified", "fixed"}]}]
//	DIR/index/vulns.json    [{"id", "modified", "aliases"}]
//	DIR/ID/GO-YYYY-NNNN.json the OSV entry
//
// The module's entries carry zero modified/published times (the published
// database takes them from the vulndb repository's git history, which a module
// zip does not have); an entry with a zero time gets the module version's
// commit time instead, so the database's age is the module's.
//
// Usage:
//
//	go mod download -json golang.org/x/vulndb@VERSION > module.json
//	mkvulndb -module module.json -out DIR
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"golang.org/x/mod/semver"
)

func main() {
	module := flag.String("module", "", "output of `go mod download -json golang.org/x/vulndb@VERSION`")
	out := flag.String("out", "", "directory to write the v1 database to (replaced)")
	flag.Parse()
	if *module == "" || *out == "" || flag.NArg() != 0 {
		fmt.Fprintln(os.Stderr, "usage: mkvulndb -module module.json -out DIR")
		os.Exit(2)
	}
	n, err := run(*module, *out)
	if err != nil {
		fmt.Fprintln(os.Stderr, "mkvulndb:", err)
		os.Exit(1)
	}
	fmt.Printf("mkvulndb: %d entries -> %s\n", n, *out)
}

// downloadInfo is the part of `go mod download -json` output mkvulndb reads.
type downloadInfo struct {
	Path    string
	Version string
	Dir     string
	Info    string
	Error   string
}

func run(moduleJSON, out string) (int, error) {
	b, err := os.ReadFile(moduleJSON)
	if err != nil {
		return 0, err
	}
	var dl downloadInfo
	if err := json.Unmarshal(b, &dl); err != nil {
		return 0, fmt.Errorf("%s: %w", moduleJSON, err)
	}
	if dl.Error != "" {
		return 0, fmt.Errorf("%s: go mod download: %s", moduleJSON, dl.Error)
	}
	if dl.Path != "golang.org/x/vulndb" || dl.Dir == "" || dl.Info == "" {
		return 0, fmt.Errorf("%s: want the download record of golang.org/x/vulndb with Dir and Info, got module %q", moduleJSON, dl.Path)
	}
	ib, err := os.ReadFile(dl.Info)
	if err != nil {
		return 0, err
	}
	var info struct{ Time time.Time }
	if err := json.Unmarshal(ib, &info); err != nil || info.Time.IsZero() {
		return 0, fmt.Errorf("%s: no commit time for %s@%s (%v)", dl.Info, dl.Path, dl.Version, err)
	}
	db, err := load(filepath.Join(dl.Dir, "data", "osv"), info.Time.UTC())
	if err != nil {
		return 0, err
	}
	if err := db.write(out); err != nil {
		return 0, err
	}
	return len(db.entries), nil
}

// entry is the part of an OSV entry the indexes are built from; raw is the
// whole entry, written back with the filled-in times.
type entry struct {
	ID        string     `json:"id"`
	Modified  time.Time  `json:"modified"`
	Published time.Time  `json:"published"`
	Aliases   []string   `json:"aliases,omitempty"`
	Affected  []affected `json:"affected"`
	raw       map[string]json.RawMessage
}

type affected struct {
	Package struct {
		Name string `json:"name"`
	} `json:"package"`
	Ranges []osvRange `json:"ranges"`
}

type osvRange struct {
	Type   string  `json:"type"`
	Events []event `json:"events"`
}

type event struct {
	Introduced string `json:"introduced,omitempty"`
	Fixed      string `json:"fixed,omitempty"`
}

type database struct {
	entries []*entry
}

var idRE = regexp.MustCompile(`^GO-[0-9]{4}-[0-9]{4,}$`)

// load reads every data/osv/*.json entry; defaultTime replaces zero
// modified/published times.
func load(dir string, defaultTime time.Time) (*database, error) {
	names, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		return nil, err
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("%s: no OSV entries (is this golang.org/x/vulndb's data/osv?)", dir)
	}
	slices.Sort(names)
	db := &database{}
	seen := map[string]bool{}
	for _, name := range names {
		e, err := readEntry(name, defaultTime)
		if err != nil {
			return nil, err
		}
		if seen[e.ID] {
			return nil, fmt.Errorf("%s: id %s appears twice", name, e.ID)
		}
		seen[e.ID] = true
		db.entries = append(db.entries, e)
	}
	return db, nil
}

func readEntry(name string, defaultTime time.Time) (*entry, error) {
	b, err := os.ReadFile(name)
	if err != nil {
		return nil, err
	}
	e := &entry{}
	if err := json.Unmarshal(b, e); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if err := json.Unmarshal(b, &e.raw); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if !idRE.MatchString(e.ID) || filepath.Base(name) != e.ID+".json" {
		return nil, fmt.Errorf("%s: id %q does not match the file name", name, e.ID)
	}
	if len(e.Affected) == 0 {
		return nil, fmt.Errorf("%s: no affected modules", name)
	}
	for i, a := range e.Affected {
		if a.Package.Name == "" {
			return nil, fmt.Errorf("%s: affected[%d].package.name is empty", name, i)
		}
	}
	if e.Modified.IsZero() {
		e.Modified = defaultTime
	}
	if e.Published.IsZero() {
		e.Published = defaultTime
	}
	for k, v := range map[string]time.Time{"modified": e.Modified, "published": e.Published} {
		tb, _ := json.Marshal(v.UTC())
		e.raw[k] = tb
	}
	return e, nil
}

// latestFixed is the version that fixes the last vulnerable range of a
// module ("" when the vulnerability was re-introduced after it or was never
// fixed): versions at or after it are not affected.
func latestFixed(a affected) string {
	latest := ""
	for _, r := range a.Ranges {
		if r.Type != "SEMVER" {
			continue
		}
		for _, ev := range r.Events {
			if ev.Fixed != "" && before(latest, ev.Fixed) {
				latest = ev.Fixed
			}
		}
		for _, ev := range r.Events {
			if ev.Introduced != "" && ev.Introduced != "0" && before(latest, ev.Introduced) {
				latest = ""
				break
			}
		}
	}
	return latest
}

// before reports whether OSV version a (SemVer without the "v") sorts before
// b; "" is before everything.
func before(a, b string) bool {
	if a == "" {
		return b != ""
	}
	return semver.Compare("v"+a, "v"+b) < 0
}

type moduleVuln struct {
	ID       string    `json:"id"`
	Modified time.Time `json:"modified"`
	Fixed    string    `json:"fixed,omitempty"`
}

type module struct {
	Path  string       `json:"path"`
	Vulns []moduleVuln `json:"vulns"`
}

type vuln struct {
	ID       string    `json:"id"`
	Modified time.Time `json:"modified"`
	Aliases  []string  `json:"aliases,omitempty"`
}

func (db *database) indexes() (meta struct {
	Modified time.Time `json:"modified"`
}, modules []*module, vulns []vuln) {
	byPath := map[string]*module{}
	for _, e := range db.entries {
		if e.Modified.After(meta.Modified) {
			meta.Modified = e.Modified
		}
		vulns = append(vulns, vuln{ID: e.ID, Modified: e.Modified.UTC(), Aliases: e.Aliases})
		for _, a := range e.Affected {
			m := byPath[a.Package.Name]
			if m == nil {
				m = &module{Path: a.Package.Name, Vulns: []moduleVuln{}}
				byPath[a.Package.Name] = m
				modules = append(modules, m)
			}
			m.Vulns = append(m.Vulns, moduleVuln{ID: e.ID, Modified: e.Modified.UTC(), Fixed: latestFixed(a)})
		}
	}
	meta.Modified = meta.Modified.UTC()
	slices.SortFunc(modules, func(a, b *module) int { return strings.Compare(a.Path, b.Path) })
	for _, m := range modules {
		slices.SortStableFunc(m.Vulns, func(a, b moduleVuln) int { return strings.Compare(a.ID, b.ID) })
	}
	slices.SortFunc(vulns, func(a, b vuln) int { return strings.Compare(a.ID, b.ID) })
	return meta, modules, vulns
}

// write replaces dir with the database: built in a sibling temporary
// directory, then renamed into place.
func (db *database) write(dir string) (err error) {
	dir = filepath.Clean(dir)
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), filepath.Base(dir)+".tmp")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			os.RemoveAll(tmp)
		}
	}()
	meta, modules, vulns := db.indexes()
	for name, v := range map[string]any{"db.json": meta, "modules.json": modules, "vulns.json": vulns} {
		if err := writeJSON(filepath.Join(tmp, "index", name), v); err != nil {
			return err
		}
	}
	for _, e := range db.entries {
		if err := writeJSON(filepath.Join(tmp, "ID", e.ID+".json"), e.raw); err != nil {
			return err
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	return os.Rename(tmp, dir)
}

func writeJSON(name string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(name, b, 0o644); err != nil {
		return err
	}
	return nil
}
