package imagebuild

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// ElementSearch finds elements by name, as diskimage-builder does with
// ELEMENTS_PATH: each name is looked up in Path in order, the first
// directory of that name wins.
type ElementSearch struct {
	// Path is the search path (ELEMENTS_PATH split on ':').
	Path []string
}

// SplitElementsPath splits a colon-separated ELEMENTS_PATH, dropping
// empty entries.
func SplitElementsPath(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ":") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// find returns the directory of element ref: ref itself when it is a path
// (contains '/'), else the first <dir>/<ref> of the search path.
func (s ElementSearch) find(ref string) (string, error) {
	if st, err := os.Stat(ref); len(s.Path) == 0 && !strings.Contains(ref, "/") && err == nil && st.IsDir() {
		// no search path: a plain name is a directory (imprint's --element DIR)
		ref = "./" + ref
	}
	if strings.Contains(ref, "/") {
		st, err := os.Stat(ref)
		if err != nil {
			return "", fmt.Errorf("element %q: %w", ref, err)
		}
		if !st.IsDir() {
			return "", fmt.Errorf("element %q: not a directory", ref)
		}
		return filepath.Clean(ref), nil
	}
	if !elementNameRe.MatchString(ref) {
		return "", fmt.Errorf("element %q: not an element name (letters, digits, '.', '_', '-')", ref)
	}
	for _, dir := range s.Path {
		p := filepath.Join(dir, ref)
		if st, err := os.Stat(p); err == nil && st.IsDir() {
			return p, nil
		}
	}
	return "", fmt.Errorf("element %q: not found in ELEMENTS_PATH %q", ref, strings.Join(s.Path, ":"))
}

// ReadElementDeps reads an element's element-deps file: one element name a
// line, '#' comments and blank lines ignored. No file: no deps.
func ReadElementDeps(dir string) ([]string, error) {
	f, err := os.Open(filepath.Join(dir, "element-deps"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("element %q: %w", dir, err)
	}
	defer f.Close()
	var deps []string
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line, _, _ := strings.Cut(sc.Text(), "#")
		if line = strings.TrimSpace(line); line == "" {
			continue
		}
		if !elementNameRe.MatchString(line) {
			return nil, fmt.Errorf("element %q: element-deps line %d: %q is not an element name", dir, n, line)
		}
		deps = append(deps, line)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("element %q: element-deps: %w", dir, err)
	}
	return deps, nil
}

// Resolve expands refs (element names or directories) with their
// element-deps, transitively, and returns the element directories with
// every element after the ones it depends on, each once, refs in their
// given order otherwise. A missing element names who wanted it; a
// dependency cycle is an error naming the cycle.
func (s ElementSearch) Resolve(refs []string) ([]string, error) {
	var (
		out   []string
		done  = map[string]bool{} // by directory
		names = map[string]string{}
		stack []string // element names being resolved, for cycles
	)
	var visit func(ref, wantedBy string) error
	visit = func(ref, wantedBy string) error {
		dir, err := s.find(ref)
		if err != nil {
			if wantedBy != "" {
				return fmt.Errorf("%w (an element-dep of %q)", err, wantedBy)
			}
			return err
		}
		name := filepath.Base(dir)
		for i, n := range stack {
			if n == name {
				return fmt.Errorf("element-deps cycle: %s", strings.Join(append(append([]string(nil), stack[i:]...), name), " -> "))
			}
		}
		if done[dir] {
			return nil
		}
		if other, dup := names[name]; dup && other != dir {
			return fmt.Errorf("element %q: two elements of that name (%s and %s)", name, other, dir)
		}
		deps, err := ReadElementDeps(dir)
		if err != nil {
			return err
		}
		stack = append(stack, name)
		for _, d := range deps {
			if err := visit(d, name); err != nil {
				return err
			}
		}
		stack = stack[:len(stack)-1]
		done[dir], names[name] = true, dir
		out = append(out, dir)
		return nil
	}
	for _, r := range refs {
		if err := visit(r, ""); err != nil {
			return nil, err
		}
	}
	return out, nil
}
