package provision

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// The document is first decoded into a generic tree that remembers where
// each value was in the input. The schema rules run on this tree (so a value
// of the wrong type is reported, with its path, instead of stopping the
// decode) and the typed Document is filled from it.

type kind uint8

const (
	kNull kind = iota
	kBool
	kNumber
	kString
	kArray
	kObject
)

func (k kind) String() string {
	return [...]string{"null", "boolean", "number", "string", "array", "object"}[k]
}

type node struct {
	kind kind
	pos  int64  // position in the input, increasing in document order
	str  string // string value, or the number's literal
	b    bool
	arr  []*node
	obj  []member // in input order; a repeated key: the last one wins
}

type member struct {
	key string
	val *node
}

// get returns the value of key in an object (the last one if repeated), or nil.
func (n *node) get(key string) *node {
	if n == nil || n.kind != kObject {
		return nil
	}
	for i := len(n.obj) - 1; i >= 0; i-- {
		if n.obj[i].key == key {
			return n.obj[i].val
		}
	}
	return nil
}

// members returns the object's members with repeated keys resolved: each key
// once, at the position of its last occurrence.
func (n *node) members() []member {
	if n == nil || n.kind != kObject {
		return nil
	}
	last := make(map[string]int, len(n.obj))
	for i, m := range n.obj {
		last[m.key] = i
	}
	out := make([]member, 0, len(last))
	for i, m := range n.obj {
		if last[m.key] == i {
			out = append(out, m)
		}
	}
	return out
}

// describe renders a value for an error message: its kind, and for scalars
// the value itself (shortened).
func (n *node) describe() string {
	switch n.kind {
	case kNull:
		return "null"
	case kBool:
		return "boolean " + strconv.FormatBool(n.b)
	case kNumber:
		return "number " + shorten(n.str)
	case kString:
		return "string " + strconv.Quote(shorten(n.str))
	default:
		return n.kind.String()
	}
}

func shorten(s string) string {
	if len(s) > 40 {
		return s[:37] + "..."
	}
	return s
}

// int64Value returns an integral number's value.
func (n *node) int64Value() (int64, error) {
	if n.kind != kNumber {
		return 0, fmt.Errorf("not a number")
	}
	if i, err := strconv.ParseInt(n.str, 10, 64); err == nil {
		return i, nil
	}
	f, err := strconv.ParseFloat(n.str, 64)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) || f >= 9.2e18 || f <= -9.2e18 {
		return 0, fmt.Errorf("out of range")
	}
	if f != math.Trunc(f) {
		return 0, fmt.Errorf("not an integer")
	}
	return int64(f), nil
}

// toJSON renders the subtree as JSON (for Document.Extra).
func (n *node) toJSON(b *bytes.Buffer) {
	switch n.kind {
	case kNull:
		b.WriteString("null")
	case kBool:
		b.WriteString(strconv.FormatBool(n.b))
	case kNumber:
		if json.Valid([]byte(n.str)) {
			b.WriteString(n.str)
		} else {
			s, _ := json.Marshal(n.str)
			b.Write(s)
		}
	case kString:
		s, _ := json.Marshal(n.str)
		b.Write(s)
	case kArray:
		b.WriteByte('[')
		for i, e := range n.arr {
			if i > 0 {
				b.WriteByte(',')
			}
			e.toJSON(b)
		}
		b.WriteByte(']')
	case kObject:
		b.WriteByte('{')
		for i, m := range n.members() {
			if i > 0 {
				b.WriteByte(',')
			}
			k, _ := json.Marshal(m.key)
			b.Write(k)
			b.WriteByte(':')
			m.val.toJSON(b)
		}
		b.WriteByte('}')
	}
}

// canonical renders the subtree so that equal JSON values (in the JSON
// schema sense: object member order ignored, 1 == 1.0) render equally.
func (n *node) canonical(b *strings.Builder) {
	switch n.kind {
	case kNumber:
		if f, err := strconv.ParseFloat(n.str, 64); err == nil {
			b.WriteString("n" + strconv.FormatFloat(f, 'g', -1, 64))
		} else {
			b.WriteString("n" + n.str)
		}
	case kArray:
		b.WriteString("[")
		for _, e := range n.arr {
			e.canonical(b)
			b.WriteString(",")
		}
		b.WriteString("]")
	case kObject:
		ms := n.members()
		sortMembers(ms)
		b.WriteString("{")
		for _, m := range ms {
			b.WriteString(strconv.Quote(m.key) + ":")
			m.val.canonical(b)
			b.WriteString(",")
		}
		b.WriteString("}")
	default:
		var tmp bytes.Buffer
		n.toJSON(&tmp)
		b.Write(tmp.Bytes())
	}
}

func sortMembers(ms []member) {
	for i := 1; i < len(ms); i++ {
		for j := i; j > 0 && ms[j].key < ms[j-1].key; j-- {
			ms[j], ms[j-1] = ms[j-1], ms[j]
		}
	}
}

// positions maps every path in the tree to its input position.
func (n *node) positions(path string, out map[string]int64) {
	out[path] = n.pos
	switch n.kind {
	case kArray:
		for i, e := range n.arr {
			e.positions(index(path, i), out)
		}
	case kObject:
		for _, m := range n.members() {
			m.val.positions(field(path, m.key), out)
		}
	}
}

// Limits that keep a hostile document from exhausting the stack or memory.
// A real Nailgun document is 10-30 KB with a few thousand values.
const (
	// MaxDocumentBytes bounds a provision document (the API's request body,
	// a file or stdin given to the CLI).
	MaxDocumentBytes = 1 << 20
	maxDepth         = 200
	maxNodes         = 1 << 18
	// YAML aliases: a few kilobytes of nested anchors expand to gigabytes
	// ("billion laughs"). The values and string bytes that aliases add are
	// budgeted on their own: far above what sharing a disk or image entry
	// needs, far below what would hurt the agent.
	maxAliasNodes = 10000
	maxAliasBytes = 1 << 20
)

// ReadDocument reads a provision document from r (a file, stdin) up to
// MaxDocumentBytes; a longer input is an error naming name, read no further.
func ReadDocument(r io.Reader, name string) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, MaxDocumentBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	if len(b) > MaxDocumentBytes {
		return nil, fmt.Errorf("%s: input larger than %d bytes, the limit for a provision document", name, MaxDocumentBytes)
	}
	return b, nil
}

// ReadDocumentFile is ReadDocument on the file at path.
func ReadDocumentFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ReadDocument(f, path)
}

// parseTree decodes JSON or YAML. A document whose first character is '{'
// or '[' is JSON (Nailgun's provision.json; errors carry exact byte
// offsets); anything else is YAML, which fuel-agent's loader also accepted.
// JSON that fails is not retried as YAML: YAML's flow syntax would accept
// many broken JSON documents with another meaning (a bare word as a string).
func parseTree(data []byte) (*node, error) {
	trimmed := bytes.TrimLeft(data, " \t\r\n\ufeff")
	isJSON := len(trimmed) > 0 && (trimmed[0] == '{' || trimmed[0] == '[')
	if len(data) > MaxDocumentBytes {
		format := "yaml"
		if isJSON {
			format = "json"
		}
		return nil, &SyntaxError{Format: format, Offset: -1, Msg: fmt.Sprintf("document is %d bytes, more than the %d allowed", len(data), MaxDocumentBytes)}
	}
	if isJSON {
		return parseJSON(data)
	}
	return parseYAML(data)
}

func parseJSON(data []byte) (*node, error) {
	p := &jsonParser{data: data, dec: json.NewDecoder(bytes.NewReader(data))}
	p.dec.UseNumber()
	n, err := p.value(0)
	if err != nil {
		return nil, err
	}
	if _, err := p.dec.Token(); err != io.EOF {
		if err == nil {
			return nil, p.convert(errors.New("unexpected data after the top-level value"))
		}
		return nil, p.convert(err)
	}
	return n, nil
}

type jsonParser struct {
	data  []byte
	dec   *json.Decoder
	nodes int
}

func (p *jsonParser) syntaxError(off int64, msg string) *SyntaxError {
	if off > int64(len(p.data)) {
		off = int64(len(p.data))
	}
	if off < 0 {
		off = 0
	}
	line := 1 + bytes.Count(p.data[:off], []byte("\n"))
	col := int(off) - bytes.LastIndexByte(p.data[:off], '\n')
	return &SyntaxError{Format: "json", Line: line, Column: col, Offset: off, Msg: msg}
}

func (p *jsonParser) convert(err error) error {
	// The token decoder's offsets are not reliable; a one-shot decode of
	// the whole input finds the same error with its exact offset.
	var v any
	if uerr := json.Unmarshal(p.data, &v); uerr != nil {
		err = uerr
	}
	var se *json.SyntaxError
	switch {
	case errors.As(err, &se):
		off := se.Offset - 1 // Offset counts the offending byte; report where it is
		if strings.Contains(se.Error(), "unexpected end") {
			off = se.Offset
		}
		return p.syntaxError(off, se.Error())
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return p.syntaxError(int64(len(p.data)), "unexpected end of input")
	default:
		return p.syntaxError(p.dec.InputOffset(), err.Error())
	}
}

func (p *jsonParser) value(depth int) (*node, error) {
	if depth > maxDepth {
		return nil, p.syntaxError(p.dec.InputOffset(), fmt.Sprintf("nested deeper than %d levels", maxDepth))
	}
	if p.nodes++; p.nodes > maxNodes {
		return nil, p.syntaxError(p.dec.InputOffset(), fmt.Sprintf("more than %d values", maxNodes))
	}
	pos := p.dec.InputOffset()
	tok, err := p.dec.Token()
	if err != nil {
		return nil, p.convert(err)
	}
	n := &node{pos: pos}
	switch t := tok.(type) {
	case nil:
		n.kind = kNull
	case bool:
		n.kind, n.b = kBool, t
	case json.Number:
		n.kind, n.str = kNumber, string(t)
	case string:
		n.kind, n.str = kString, t
	case json.Delim:
		switch t {
		case '[':
			n.kind = kArray
			for p.dec.More() {
				e, err := p.value(depth + 1)
				if err != nil {
					return nil, err
				}
				n.arr = append(n.arr, e)
			}
		case '{':
			n.kind = kObject
			for p.dec.More() {
				kt, err := p.dec.Token()
				if err != nil {
					return nil, p.convert(err)
				}
				key, ok := kt.(string)
				if !ok {
					return nil, p.syntaxError(p.dec.InputOffset(), "object key is not a string")
				}
				v, err := p.value(depth + 1)
				if err != nil {
					return nil, err
				}
				n.obj = append(n.obj, member{key: key, val: v})
			}
		default:
			return nil, p.syntaxError(pos, fmt.Sprintf("unexpected %q", t))
		}
		if _, err := p.dec.Token(); err != nil { // the closing delimiter
			return nil, p.convert(err)
		}
	}
	return n, nil
}

var yamlLine = regexp.MustCompile(`^(line (\d+): )`)

func parseYAML(data []byte) (n *node, err error) {
	var root yaml.Node
	func() {
		defer func() {
			if r := recover(); r != nil { // the YAML library must not take the agent down
				err = &SyntaxError{Format: "yaml", Offset: -1, Msg: fmt.Sprint("parser failure: ", r)}
			}
		}()
		err = yaml.Unmarshal(data, &root)
	}()
	if err != nil {
		var serr *SyntaxError
		if errors.As(err, &serr) {
			return nil, err
		}
		msg := strings.TrimPrefix(err.Error(), "yaml: ")
		line := 0
		if m := yamlLine.FindStringSubmatch(msg); m != nil {
			line, _ = strconv.Atoi(m[2])
			msg = strings.TrimPrefix(msg, m[0])
		}
		return nil, &SyntaxError{Format: "yaml", Line: line, Offset: -1, Msg: msg}
	}
	if root.Kind == 0 || len(root.Content) == 0 {
		return nil, &SyntaxError{Format: "yaml", Offset: -1, Msg: "empty document"}
	}
	c := &yamlConverter{}
	return c.convert(root.Content[0], 0)
}

type yamlConverter struct {
	nodes int
	// inAlias > 0 while an alias's target is being expanded: the values
	// made then count against the alias budget.
	inAlias               int
	aliasLine, aliasCol   int // the outermost alias being expanded
	aliasNodes, aliasSize int
}

// yaml11Bools are the plain scalars PyYAML (YAML 1.1, fuel-agent's loader)
// reads as booleans and yaml.v3 (YAML 1.2) reads as strings.
var yaml11Bools = map[string]bool{
	"yes": true, "Yes": true, "YES": true, "on": true, "On": true, "ON": true,
	"no": false, "No": false, "NO": false, "off": false, "Off": false, "OFF": false,
}

func (c *yamlConverter) convert(y *yaml.Node, depth int) (*node, error) {
	pos := int64(y.Line)<<20 | int64(y.Column)
	if depth > maxDepth {
		return nil, &SyntaxError{Format: "yaml", Line: y.Line, Column: y.Column, Offset: -1, Msg: fmt.Sprintf("nested deeper than %d levels", maxDepth)}
	}
	if c.nodes++; c.nodes > maxNodes {
		return nil, &SyntaxError{Format: "yaml", Line: y.Line, Column: y.Column, Offset: -1, Msg: fmt.Sprintf("more than %d values", maxNodes)}
	}
	if c.inAlias > 0 {
		c.aliasNodes++
		c.aliasSize += len(y.Value)
		if c.aliasNodes > maxAliasNodes || c.aliasSize > maxAliasBytes {
			return nil, &SyntaxError{Format: "yaml", Line: c.aliasLine, Column: c.aliasCol, Offset: -1,
				Msg: fmt.Sprintf("aliases expand to more than %d values or %d bytes; write the repeated parts out", maxAliasNodes, maxAliasBytes)}
		}
	}
	n := &node{pos: pos}
	switch y.Kind {
	case yaml.DocumentNode:
		if len(y.Content) == 0 {
			n.kind = kNull
			return n, nil
		}
		return c.convert(y.Content[0], depth+1)
	case yaml.AliasNode:
		if y.Alias == nil {
			return nil, &SyntaxError{Format: "yaml", Line: y.Line, Column: y.Column, Offset: -1, Msg: "unknown alias"}
		}
		if c.inAlias == 0 {
			c.aliasLine, c.aliasCol = y.Line, y.Column
		}
		c.inAlias++
		a, err := c.convert(y.Alias, depth+1)
		c.inAlias--
		if err != nil {
			return nil, err
		}
		a.pos = pos
		return a, nil
	case yaml.SequenceNode:
		n.kind = kArray
		for _, e := range y.Content {
			v, err := c.convert(e, depth+1)
			if err != nil {
				return nil, err
			}
			n.arr = append(n.arr, v)
		}
	case yaml.MappingNode:
		n.kind = kObject
		var merged []member
		for i := 0; i+1 < len(y.Content); i += 2 {
			k, v := y.Content[i], y.Content[i+1]
			val, err := c.convert(v, depth+1)
			if err != nil {
				return nil, err
			}
			if k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge" {
				// "<<: *base" (or a list of them): the explicit keys win.
				srcs := []*node{val}
				if val.kind == kArray {
					srcs = val.arr
				}
				for _, s := range srcs {
					if s.kind != kObject {
						return nil, &SyntaxError{Format: "yaml", Line: k.Line, Column: k.Column, Offset: -1, Msg: "merge key needs a mapping"}
					}
					merged = append(merged, s.obj...)
				}
				continue
			}
			key := k.Value
			if k.Kind != yaml.ScalarNode {
				return nil, &SyntaxError{Format: "yaml", Line: k.Line, Column: k.Column, Offset: -1, Msg: "mapping key is not a scalar"}
			}
			n.obj = append(n.obj, member{key: key, val: val})
		}
		if merged != nil {
			n.obj = append(merged, n.obj...)
		}
	case yaml.ScalarNode:
		switch y.ShortTag() {
		case "!!null":
			n.kind = kNull
		case "!!bool":
			var b bool
			if err := y.Decode(&b); err != nil {
				return nil, &SyntaxError{Format: "yaml", Line: y.Line, Column: y.Column, Offset: -1, Msg: err.Error()}
			}
			n.kind, n.b = kBool, b
		case "!!int":
			var i int64
			if err := y.Decode(&i); err != nil {
				// too large for int64: keep it a number, range is checked later
				n.kind, n.str = kNumber, strings.ReplaceAll(y.Value, "_", "")
				if _, ferr := strconv.ParseFloat(n.str, 64); ferr != nil {
					n.kind = kString
				}
				break
			}
			n.kind, n.str = kNumber, strconv.FormatInt(i, 10)
		case "!!float":
			var f float64
			if err := y.Decode(&f); err != nil {
				return nil, &SyntaxError{Format: "yaml", Line: y.Line, Column: y.Column, Offset: -1, Msg: err.Error()}
			}
			n.kind, n.str = kNumber, strconv.FormatFloat(f, 'g', -1, 64)
		default:
			n.kind, n.str = kString, y.Value
			if y.Style&(yaml.TaggedStyle|yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle|yaml.LiteralStyle|yaml.FoldedStyle) == 0 {
				if b, ok := yaml11Bools[y.Value]; ok {
					n.kind, n.str, n.b = kBool, "", b
				}
			}
		}
	default:
		return nil, &SyntaxError{Format: "yaml", Line: y.Line, Column: y.Column, Offset: -1, Msg: "unsupported YAML node"}
	}
	return n, nil
}
