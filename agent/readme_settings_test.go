package agent_test

import (
	"bufio"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/imprint-dev/imprint/agent"
)

// TestREADMESettingsTable keeps the README's "Agent configuration" table
// true: one row per agent.Settings() entry, in the same order, with the
// flag, environment variable, kernel command-line parameter and default the
// agent really uses. The meaning column is prose and is only required to be
// non-empty. On a mismatch the message prints the rows to paste.
func TestREADMESettingsTable(t *testing.T) {
	got := readmeSettingRows(t, "../README.md", "### Agent configuration")
	var want []settingRow
	var paste strings.Builder
	for _, s := range agent.Settings() {
		r := rowOf(s)
		want = append(want, r)
		fmt.Fprintf(&paste, "| %s | %s | %s | %s | %s |\n", r.Flag, r.Env, r.Cmdline, r.Default, s.Usage)
	}
	strip := func(rows []settingRow) []settingRow {
		out := make([]settingRow, len(rows))
		for i, r := range rows {
			r.Meaning = ""
			out[i] = r
		}
		return out
	}
	if diff := cmp.Diff(want, strip(got)); diff != "" {
		t.Errorf("README.md's agent settings table differs from agent.Settings() (-code +README):\n%s\nRows as the code defines them (edit the meaning as you like):\n%s", diff, paste.String())
	}
	for _, r := range got {
		if strings.TrimSpace(r.Meaning) == "" {
			t.Errorf("README.md: setting %s has no meaning", r.Flag)
		}
	}
}

type settingRow struct {
	Flag, Env, Cmdline, Default, Meaning string
}

// rowOf renders a setting as the README writes it: code in backquotes, an
// empty default as "none", a boolean default bare; the kernel parameter of
// a boolean that is off by default bare (imprint.insecure turns it on),
// every other one with "=".
func rowOf(s agent.Setting) settingRow {
	def := "`" + s.Default + "`"
	switch {
	case s.Default == "":
		def = "none"
	case s.Bool:
		def = s.Default
	}
	cmdline := "`" + s.Cmdline + "=`"
	if s.Bool && s.Default == "false" {
		cmdline = "`" + s.Cmdline + "`"
	}
	return settingRow{Flag: "`--" + s.Name + "`", Env: "`" + s.Env + "`", Cmdline: cmdline, Default: def}
}

// readmeSettingRows returns the rows of the first table after the heading.
func readmeSettingRows(t *testing.T, path, heading string) []settingRow {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var rows []settingRow
	in, table := false, false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == heading:
			in = true
		case !in:
		case strings.HasPrefix(line, "|"):
			table = true
			cells := strings.Split(strings.Trim(line, "|"), "|")
			for i := range cells {
				cells[i] = strings.TrimSpace(cells[i])
			}
			if len(cells) != 5 {
				t.Fatalf("%s: settings table row %q has %d cells, want 5 (flag, env, kernel command line, default, meaning)", path, line, len(cells))
			}
			if cells[0] == "flag" || strings.HasPrefix(cells[0], "---") {
				continue // header and separator
			}
			rows = append(rows, settingRow{cells[0], cells[1], cells[2], cells[3], cells[4]})
		case table:
			return rows // the first line after the table
		case strings.HasPrefix(line, "#"):
			t.Fatalf("%s: no table under %q", path, heading)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(rows) == 0 {
		t.Fatalf("%s: no %q table", path, heading)
	}
	return rows
}
