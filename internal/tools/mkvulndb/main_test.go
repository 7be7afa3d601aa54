package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestLatestFixed(t *testing.T) {
	ev := func(kv ...string) affected {
		r := osvRange{Type: "SEMVER"}
		for i := 0; i < len(kv); i += 2 {
			if kv[i] == "i" {
				r.Events = append(r.Events, event{Introduced: kv[i+1]})
			} else {
				r.Events = append(r.Events, event{Fixed: kv[i+1]})
			}
		}
		return affected{Ranges: []osvRange{r}}
	}
	for _, tc := range []struct {
		name string
		a    affected
		want string
	}{
		{"none", affected{}, ""},
		{"never fixed", ev("i", "0"), ""},
		{"one fix", ev("i", "0", "f", "0.60.0"), "0.60.0"},
		{"branches", ev("f", "1.26.9", "i", "1.27.0-0", "f", "1.27.2"), "1.27.2"},
		{"prerelease fix", ev("f", "1.26.6", "i", "1.27.0-0", "f", "1.27.0-rc.3"), "1.27.0-rc.3"},
		{"reintroduced", ev("i", "0", "f", "1.2.0", "i", "1.5.0"), ""},
	} {
		if got := latestFixed(tc.a); got != tc.want {
			t.Errorf("%s: latestFixed = %q, want %q", tc.name, got, tc.want)
		}
	}
}

// TestRun builds a database from a fake module download and checks the v1
// layout govulncheck's file:// source reads.
func TestRun(t *testing.T) {
	dir := t.TempDir()
	mod := filepath.Join(dir, "mod")
	osvDir := filepath.Join(mod, "data", "osv")
	if err := os.MkdirAll(osvDir, 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(name, s string) {
		t.Helper()
		if err := os.WriteFile(name, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(osvDir, "GO-2026-0002.json"), `{"schema_version":"1.3.1","id":"GO-2026-0002",
		"modified":"0001-01-01T00:00:00Z","published":"0001-01-01T00:00:00Z","aliases":["CVE-2026-2"],
		"summary":"two","affected":[
		{"package":{"name":"stdlib","ecosystem":"Go"},"ranges":[{"type":"SEMVER","events":[{"introduced":"0"},{"fixed":"1.26.9"}]}],
		 "ecosystem_specific":{"imports":[{"path":"net/http","symbols":["ServeContent"]}]}},
		{"package":{"name":"golang.org/x/net","ecosystem":"Go"},"ranges":[{"type":"SEMVER","events":[{"introduced":"0"},{"fixed":"0.60.0"}]}]}]}`)
	write(filepath.Join(osvDir, "GO-2026-0001.json"), `{"schema_version":"1.3.1","id":"GO-2026-0001",
		"modified":"2025-01-02T03:04:05Z","published":"2025-01-01T00:00:00Z",
		"summary":"one","affected":[{"package":{"name":"golang.org/x/net","ecosystem":"Go"},"ranges":[{"type":"SEMVER","events":[{"introduced":"0"}]}]}]}`)
	info := filepath.Join(dir, "v.info")
	write(info, `{"Version":"v0.0.0-20261105234957-e22db6528018","Time":"2026-11-05T23:49:57Z"}`)
	dl, _ := json.Marshal(downloadInfo{Path: "golang.org/x/vulndb", Version: "v0.0.0-20261105234957-e22db6528018", Dir: mod, Info: info})
	write(filepath.Join(dir, "module.json"), string(dl))

	out := filepath.Join(dir, "db")
	n, err := run(filepath.Join(dir, "module.json"), out)
	if err != nil || n != 2 {
		t.Fatalf("run = %d, %v; want 2 entries", n, err)
	}
	read := func(name string) string {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(out, name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	for name, want := range map[string]string{
		"index/db.json": `{"modified":"2026-11-05T23:49:57Z"}`,
		"index/modules.json": `[{"path":"golang.org/x/net","vulns":[` +
			`{"id":"GO-2026-0001","modified":"2025-01-02T03:04:05Z"},` +
			`{"id":"GO-2026-0002","modified":"2026-11-05T23:49:57Z","fixed":"0.60.0"}]},` +
			`{"path":"stdlib","vulns":[{"id":"GO-2026-0002","modified":"2026-11-05T23:49:57Z","fixed":"1.26.9"}]}]`,
		"index/vulns.json": `[{"id":"GO-2026-0001","modified":"2025-01-02T03:04:05Z"},` +
			`{"id":"GO-2026-0002","modified":"2026-11-05T23:49:57Z","aliases":["CVE-2026-2"]}]`,
	} {
		if diff := cmp.Diff(want, read(name)); diff != "" {
			t.Errorf("%s (-want +got):\n%s", name, diff)
		}
	}
	var e map[string]any
	if err := json.Unmarshal([]byte(read("ID/GO-2026-0002.json")), &e); err != nil {
		t.Fatal(err)
	}
	if e["modified"] != "2026-11-05T23:49:57Z" || e["published"] != "2026-11-05T23:49:57Z" || e["summary"] != "two" || e["affected"] == nil {
		t.Errorf("ID/GO-2026-0002.json = %v; want the entry with the module's time filled in", e)
	}
	if !strings.Contains(read("ID/GO-2026-0002.json"), `"ecosystem_specific"`) {
		t.Error("ID/GO-2026-0002.json lost ecosystem_specific (the symbols govulncheck's reachability needs)")
	}

	// A file whose name is not its id is refused, naming the file.
	write(filepath.Join(osvDir, "GO-2026-0003.json"), `{"id":"GO-2026-0004","affected":[{"package":{"name":"x"}}]}`)
	if _, err := run(filepath.Join(dir, "module.json"), out); err == nil || !strings.Contains(err.Error(), "GO-2026-0003.json") {
		t.Errorf("mismatched id: err = %v, want one naming GO-2026-0003.json", err)
	}
	// The old database survives a failed run.
	if _, err := os.Stat(filepath.Join(out, "index", "modules.json")); err != nil {
		t.Errorf("failed run removed the previous database: %v", err)
	}
}
