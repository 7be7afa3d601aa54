// Package docs holds the project's documentation; its tests keep the
// documents true to the tree: the sections code comments cite exist, the
// files the documents name exist, and the README's library table lists
// exactly the modules go.mod requires.
package docs

import (
	"bufio"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const root = ".."

// TestFuelAgentCitations: every `docs/fuel-agent.md §N` (or §N-§M) in a Go
// file names a section of docs/fuel-agent.md, and no comment cites the
// research file by its old name.
func TestFuelAgentCitations(t *testing.T) {
	doc, err := os.ReadFile("fuel-agent.md")
	if err != nil {
		t.Fatal(err)
	}
	sections := map[int]bool{}
	for _, m := range regexp.MustCompile(`(?m)^## §(\d+) `).FindAllStringSubmatch(string(doc), -1) {
		n, _ := strconv.Atoi(m[1])
		sections[n] = true
	}
	if len(sections) == 0 {
		t.Fatal("fuel-agent.md has no numbered sections")
	}
	cite := regexp.MustCompile(`(\S*)fuel-agent\.md\s+§(\d+)(?:\s*-\s*§(\d+))?`)
	commentBreak := regexp.MustCompile(`\n\s*// ?`)
	var cited int
	walkGo(t, func(path string, src []byte) {
		text := commentBreak.ReplaceAllString(string(src), " ")
		for _, m := range cite.FindAllStringSubmatch(text, -1) {
			cited++
			if !strings.HasSuffix(m[1], "docs/") {
				t.Errorf("%s: cites %q; cite docs/fuel-agent.md", path, m[0])
			}
			for _, s := range m[2:] {
				if s == "" {
					continue
				}
				if n, _ := strconv.Atoi(s); !sections[n] {
					t.Errorf("%s: cites %q, but docs/fuel-agent.md has no section §%d", path, m[0], n)
				}
			}
		}
	})
	if cited == 0 {
		t.Error("no Go file cites docs/fuel-agent.md; the walk is broken")
	}
}

// TestDocumentedPathsExist: every repository path the documents name in
// backquotes (a/b.go, scripts/x.sh, ...) exists.
func TestDocumentedPathsExist(t *testing.T) {
	pathRe := regexp.MustCompile("`((?:[a-z0-9_]+/)+[A-Za-z0-9_.-]+\\.(?:go|sh|yaml|txt|json|md))`")
	for _, doc := range []string{"../README.md", "architecture.md", "testing.md", "fuel-agent.md"} {
		b, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range pathRe.FindAllStringSubmatch(string(b), -1) {
			p := m[1]
			if strings.HasPrefix(p, "etc/") || strings.HasPrefix(p, "openstack/") || strings.HasPrefix(p, "var/") {
				continue // paths inside a target or a configdrive
			}
			if _, err := os.Stat(filepath.Join(root, p)); err != nil {
				t.Errorf("%s names %s, which does not exist", doc, p)
			}
		}
	}
}

// TestREADMELibraries: the README's Libraries table lists exactly the
// modules go.mod requires directly.
func TestREADMELibraries(t *testing.T) {
	var want []string
	f, err := os.Open(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "require (":
			in = true
		case line == ")":
			in = false
		case strings.HasPrefix(line, "require ") && !strings.HasSuffix(line, "("):
			line = strings.TrimPrefix(line, "require ")
			fallthrough
		case in:
			if !strings.Contains(line, "// indirect") {
				want = append(want, strings.Fields(line)[0])
			}
		}
	}
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	text := string(readme)
	i := strings.Index(text, "\n## Libraries\n")
	if i < 0 {
		t.Fatal("README.md has no Libraries section")
	}
	text = text[i+1:]
	if j := strings.Index(text[3:], "\n## "); j >= 0 {
		text = text[:j+3]
	}
	var got []string
	for _, m := range regexp.MustCompile("(?m)^\\| `([^`]+)` \\|").FindAllStringSubmatch(text, -1) {
		got = append(got, m[1])
	}
	sort.Strings(want)
	sort.Strings(got)
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("README Libraries table vs go.mod's direct requirements (-go.mod +README):\n%s", d)
	}
}

func walkGo(t *testing.T, fn func(path string, src []byte)) {
	t.Helper()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "build" || d.Name() == "bin" || d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".")) && path != root {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || d.Type()&fs.ModeSymlink != 0 {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		fn(path, src)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
