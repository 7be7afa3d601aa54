package provision

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strconv"
	"strings"
)

// decoder fills a typed value from a tree by the json tags of its fields.
// It never stops at a bad value: the value is left zero and the problem is
// recorded with its path. Scalars are coerced the way a YAML or Python
// producer may have written them (a number where a string is expected, "1"
// or 1 for a flag); a structure where a scalar is expected is a problem.
//
// Inside ks_spaces the schema checker (schema.go) is the judge of types,
// with fuel-agent's JSON-schema strictness, so the decoder stays quiet there.
type decoder struct {
	problems problems
	quiet    int
}

var rawMessageType = reflect.TypeOf(json.RawMessage(nil))

func (d *decoder) report(path, format string, args ...any) {
	if d.quiet == 0 {
		d.problems.add(path, format, args...)
	}
}

func (d *decoder) decode(n *node, v reflect.Value, path string) {
	if n == nil {
		return
	}
	if v.Type() == rawMessageType {
		var b bytes.Buffer
		n.toJSON(&b)
		v.SetBytes(b.Bytes())
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		if n.kind == kNull {
			v.SetZero()
			return
		}
		nv := reflect.New(v.Type().Elem())
		d.decode(n, nv.Elem(), path)
		v.Set(nv)
	case reflect.String:
		switch n.kind {
		case kNull:
		case kString, kNumber:
			v.SetString(n.str)
		case kBool:
			v.SetString(strconv.FormatBool(n.b))
		default:
			d.report(path, "must be a string, got %s", n.describe())
		}
	case reflect.Int, reflect.Int64, reflect.Int32:
		switch n.kind {
		case kNull:
		case kNumber:
			i, err := n.int64Value()
			if err != nil || v.OverflowInt(i) {
				d.report(path, "must be an integer, got %s", n.describe())
				return
			}
			v.SetInt(i)
		case kString:
			i, err := strconv.ParseInt(strings.TrimSpace(n.str), 10, 64)
			if err != nil || v.OverflowInt(i) {
				d.report(path, "must be an integer, got %s", n.describe())
				return
			}
			v.SetInt(i)
		case kBool:
			if n.b {
				v.SetInt(1)
			}
		default:
			d.report(path, "must be an integer, got %s", n.describe())
		}
	case reflect.Bool:
		switch n.kind {
		case kNull:
		case kBool:
			v.SetBool(n.b)
		case kNumber:
			i, err := n.int64Value()
			if err != nil || (i != 0 && i != 1) {
				d.report(path, "must be a boolean, got %s", n.describe())
				return
			}
			v.SetBool(i == 1)
		case kString:
			switch strings.ToLower(strings.TrimSpace(n.str)) {
			case "true", "1", "yes", "on":
				v.SetBool(true)
			case "false", "0", "no", "off", "":
			default:
				d.report(path, "must be a boolean, got %s", n.describe())
			}
		default:
			d.report(path, "must be a boolean, got %s", n.describe())
		}
	case reflect.Slice:
		switch n.kind {
		case kNull:
		case kArray:
			s := reflect.MakeSlice(v.Type(), len(n.arr), len(n.arr))
			for i, e := range n.arr {
				d.decode(e, s.Index(i), index(path, i))
			}
			v.Set(s)
		default:
			d.report(path, "must be an array, got %s", n.describe())
		}
	case reflect.Map:
		switch n.kind {
		case kNull:
		case kObject:
			m := reflect.MakeMapWithSize(v.Type(), len(n.obj))
			for _, mb := range n.members() {
				e := reflect.New(v.Type().Elem()).Elem()
				d.decode(mb.val, e, field(path, mb.key))
				m.SetMapIndex(reflect.ValueOf(mb.key), e)
			}
			v.Set(m)
		default:
			d.report(path, "must be an object, got %s", n.describe())
		}
	case reflect.Struct:
		switch n.kind {
		case kNull:
		case kObject:
			t := v.Type()
			for i := 0; i < t.NumField(); i++ {
				name := jsonName(t.Field(i))
				if name == "" {
					continue
				}
				fp := field(path, name)
				quiet := fp == pathKsSpaces
				if quiet {
					d.quiet++
				}
				d.decode(n.get(name), v.Field(i), fp)
				if quiet {
					d.quiet--
				}
			}
		default:
			d.report(path, "must be an object, got %s", n.describe())
		}
	default:
		d.report(path, "cannot decode into %s", v.Type())
	}
}

// jsonName is a struct field's JSON key, "" for fields not in JSON.
func jsonName(f reflect.StructField) string {
	if !f.IsExported() {
		return ""
	}
	tag := f.Tag.Get("json")
	if tag == "-" {
		return ""
	}
	name, _, _ := strings.Cut(tag, ",")
	if name == "" {
		return f.Name
	}
	return name
}

// jsonNames lists the JSON keys of a struct type.
func jsonNames(t reflect.Type) map[string]bool {
	out := map[string]bool{}
	for i := 0; i < t.NumField(); i++ {
		if n := jsonName(t.Field(i)); n != "" {
			out[n] = true
		}
	}
	return out
}
