package provision

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// FieldError is one problem in a document, with the path of the field it is
// about, e.g. ks_meta.pm_data.ks_spaces[1].volumes[3].lvm_meta_size.
type FieldError struct {
	Path string
	Msg  string
	// Err is the class of the problem when a consumer reports it (the
	// planner's partition.ErrLayout, ErrDiskNotFound, ErrDoesNotFit);
	// nil for provision's own. errors.Is sees it through Unwrap.
	Err error
}

func (e FieldError) Error() string {
	if e.Path == "" {
		return e.Msg
	}
	return e.Path + ": " + e.Msg
}

// Unwrap returns the problem's class (nil for provision's own problems).
func (e FieldError) Unwrap() error { return e.Err }

// ValidationError carries every problem found in a document, in document
// order (the order the fields appear in the input when the document was
// parsed; the order of the checks otherwise).
type ValidationError struct {
	Problems []FieldError
}

// Unwrap returns the problems, so that errors.Is finds the class of any
// of them (the planner's sentinels).
func (e *ValidationError) Unwrap() []error {
	out := make([]error, len(e.Problems))
	for i, p := range e.Problems {
		out[i] = p
	}
	return out
}

func (e *ValidationError) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.Error()
	}
	return strings.Join(lines, "\n")
}

// SyntaxError is a document that is neither valid JSON nor valid YAML.
type SyntaxError struct {
	Format string // "json" or "yaml"
	Line   int    // 1-based; 0 when unknown
	Column int    // 1-based; 0 when unknown
	Offset int64  // byte offset; -1 when unknown
	Msg    string
}

func (e *SyntaxError) Error() string {
	switch {
	case e.Line > 0 && e.Offset >= 0:
		return fmt.Sprintf("%s syntax error at line %d, column %d (byte offset %d): %s", e.Format, e.Line, e.Column, e.Offset, e.Msg)
	case e.Line > 0:
		return fmt.Sprintf("%s syntax error at line %d: %s", e.Format, e.Line, e.Msg)
	default:
		return fmt.Sprintf("%s syntax error: %s", e.Format, e.Msg)
	}
}

// problems collects FieldErrors.
type problems []FieldError

func (p *problems) add(path, format string, args ...any) {
	*p = append(*p, FieldError{Path: path, Msg: fmt.Sprintf(format, args...)})
}

// Path building. Keys that are plain identifiers are joined with a dot,
// anything else is quoted in brackets: kernel_options["netcfg/choose_interface"],
// ks_meta.image_data["/boot"].uri.

func field(parent, name string) string {
	if isIdent(name) {
		if parent == "" {
			return name
		}
		return parent + "." + name
	}
	return parent + "[" + strconv.Quote(name) + "]"
}

func index(parent string, i int) string { return parent + "[" + strconv.Itoa(i) + "]" }

func isIdent(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		switch {
		case r == '_', r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z':
		case i > 0 && r >= '0' && r <= '9':
		default:
			return false
		}
	}
	return true
}

// parentPath strips the last segment of a path built by field and index; the
// parent of a top-level field is "".
func parentPath(p string) string {
	last := 0
	for i := 0; i < len(p); {
		switch p[i] {
		case '.':
			last = i
			i++
		case '[':
			last = i
			if i+1 < len(p) && p[i+1] == '"' {
				q, err := strconv.QuotedPrefix(p[i+1:])
				if err != nil {
					return p[:last]
				}
				i += 1 + len(q)
			} else {
				i++
			}
		default:
			i++
		}
	}
	return p[:last]
}

// sortProblems orders problems by the input position of their path (or of
// its nearest ancestor present in the input), keeping the order of
// emission among equals. Without positions the emission order stays.
func sortProblems(ps []FieldError, pos map[string]int64) {
	if pos == nil {
		return
	}
	key := func(p string) int64 {
		for {
			if k, ok := pos[p]; ok {
				return k
			}
			if p == "" {
				return -1
			}
			p = parentPath(p)
		}
	}
	keys := make(map[string]int64, len(ps))
	for _, p := range ps {
		if _, ok := keys[p.Path]; !ok {
			keys[p.Path] = key(p.Path)
		}
	}
	sort.SliceStable(ps, func(i, j int) bool { return keys[ps[i].Path] < keys[ps[j].Path] })
}

// dedupe drops exact repeats.
func dedupe(ps []FieldError) []FieldError {
	type key struct{ path, msg string }
	seen := make(map[key]bool, len(ps))
	out := ps[:0]
	for _, p := range ps {
		if k := (key{p.Path, p.Msg}); !seen[k] {
			seen[k] = true
			out = append(out, p)
		}
	}
	return out
}
