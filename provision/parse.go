package provision

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
)

const (
	pathKsMeta   = "ks_meta"
	pathPmData   = "ks_meta.pm_data"
	pathKsSpaces = "ks_meta.pm_data.ks_spaces"
)

// Parse reads a Nailgun provision document, JSON or YAML (fuel-agent reads
// provision.json with a YAML loader, so both are accepted).
//
// Unknown keys are tolerated; the unknown top-level ones are kept in
// Document.Extra. The literal double quotes Nailgun wraps around
// name_servers, name_servers_search, each authorized_keys entry and auth_key
// are stripped.
//
// A document that is not JSON or YAML gives a *SyntaxError naming the line
// and, for JSON, the byte offset. Otherwise Parse checks fuel-agent's
// ks_spaces JSON schema and the type of every known field on the generic
// tree and reports every problem, with its path, in one *ValidationError;
// the returned Document is then filled as far as the values allowed (a bad
// value is left zero). The semantic rules are Validate's.
func Parse(data []byte) (*Document, error) {
	tree, err := parseTree(data)
	if err != nil {
		return nil, err
	}
	if tree.kind != kObject {
		return nil, &ValidationError{Problems: []FieldError{{Path: "document", Msg: "must be an object, got " + tree.describe()}}}
	}
	var ps problems
	checkTree(tree, &ps)

	doc := &Document{}
	d := &decoder{}
	d.decode(tree, reflect.ValueOf(doc).Elem(), "")
	ps = append(ps, d.problems...)

	known := jsonNames(reflect.TypeOf(Document{}))
	for _, m := range tree.members() {
		if known[m.key] {
			continue
		}
		if doc.Extra == nil {
			doc.Extra = map[string]json.RawMessage{}
		}
		var b bytes.Buffer
		m.val.toJSON(&b)
		doc.Extra[m.key] = json.RawMessage(b.Bytes())
	}
	doc.stripQuotes()

	out := dedupe(ps)
	doc.src = newSource(tree, out)
	doc.src.warns = repeatedKeys(tree, "", nil)
	if len(out) == 0 {
		return doc, nil
	}
	sortProblems(out, doc.src.pos)
	return doc, &ValidationError{Problems: out}
}

// ParseAndValidate parses data and validates the document; the problems of
// both steps come in one *ValidationError, in document order. A syntax error
// is returned as is (*SyntaxError). The Document is returned whenever the
// input was a JSON or YAML object, even with problems.
func ParseAndValidate(data []byte) (*Document, error) {
	doc, err := Parse(data)
	if doc == nil {
		return nil, err
	}
	var all []FieldError
	all = append(all, doc.src.problems...)
	all = append(all, doc.check().errs...)
	if len(all) == 0 {
		return doc, nil
	}
	all = dedupe(all)
	sortProblems(all, doc.src.pos)
	return doc, &ValidationError{Problems: all}
}

// source is what Parse learnt of the input.
type source struct {
	pos      map[string]int64 // path → position in the input
	problems []FieldError     // Parse's own (schema and type) problems
	warns    []FieldError
	hidden   map[string]bool // paths whose semantic problems would repeat Parse's; their values are unknown
	// spacesBroken: Parse found the ks_spaces list itself wrong (missing,
	// not an array, no disk): what refers across it would be follow-ons.
	spacesBroken bool
}

func newSource(tree *node, ps []FieldError) *source {
	s := &source{pos: map[string]int64{}, problems: ps, hidden: map[string]bool{}}
	tree.positions("", s.pos)
	for _, p := range ps {
		// A field Parse already found wrong (or a field inside it) would
		// only be reported again (a missing type, then an unknown type "").
		// A problem of the whole ks_spaces list does not hide its items'.
		if p.Path != pathKsSpaces {
			s.hidden[p.Path] = true
		} else {
			s.spacesBroken = true
		}
	}
	return s
}

// stripQuotes removes the literal double quotes Nailgun puts around some
// values (docs/fuel-agent.md §2). Name servers cannot contain
// quotes, so all are dropped (the templates do replace('"', ”)); keys keep
// any inner quotes (authorized_keys options such as command="...") and lose
// only one enclosing pair.
func (d *Document) stripQuotes() {
	d.NameServers = strings.TrimSpace(strings.ReplaceAll(d.NameServers, `"`, ""))
	d.NameServersSearch = strings.TrimSpace(strings.ReplaceAll(d.NameServersSearch, `"`, ""))
	d.KsMeta.AuthKey = unquote(d.KsMeta.AuthKey)
	for i, k := range d.KsMeta.AuthorizedKeys {
		d.KsMeta.AuthorizedKeys[i] = unquote(k)
	}
}

func unquote(s string) string {
	t := strings.TrimSpace(s)
	if len(t) >= 2 && t[0] == '"' && t[len(t)-1] == '"' {
		return strings.TrimSpace(t[1 : len(t)-1])
	}
	return t
}

// underAny tells whether path or one of its ancestors is in set.
func underAny(path string, set map[string]bool) bool {
	for {
		if set[path] {
			return true
		}
		if path == "" {
			return false
		}
		path = parentPath(path)
	}
}

// repeatedKeys finds keys given twice in one object (JSON and YAML loaders
// keep the last value silently).
func repeatedKeys(n *node, path string, out []FieldError) []FieldError {
	switch n.kind {
	case kArray:
		for i, e := range n.arr {
			out = repeatedKeys(e, index(path, i), out)
		}
	case kObject:
		seen := make(map[string]bool, len(n.obj))
		for _, m := range n.obj {
			if seen[m.key] {
				out = append(out, FieldError{Path: field(path, m.key), Msg: "given more than once; the last value is used"})
			}
			seen[m.key] = true
		}
		for _, m := range n.members() {
			out = repeatedKeys(m.val, field(path, m.key), out)
		}
	}
	return out
}
