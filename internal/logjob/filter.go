package logjob

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"

	"github.com/prismproxy/prism/internal/render"
)

// The Logpush filter language (spec §6):
//
//	{"where": {"and": [{"key": "ClientCountry", "operator": "eq", "value": "gb"},
//	                   {"or": [{"key": "Status", "operator": "geq", "value": 400}, ...]}]}}
//
// A condition compares one field of the dataset (selected or not) with a
// value of the field's type: strings with strings, ints with integral
// numbers, bools with true/false, timestamps as the job renders them (ints
// in unixnano/unix, strings in rfc3339). A filter is an include gate: the
// records it matches are kept.

type op uint8

const (
	opAnd op = iota + 1
	opOr
	opEq
	opNeq
	opLt
	opLeq
	opGt
	opGeq
	opStartsWith
	opEndsWith
	opNotStartsWith
	opNotEndsWith
	opContains
	opNotContains
	opIn
	opNotIn
)

var opNames = map[string]op{
	"eq": opEq, "!eq": opNeq, "lt": opLt, "leq": opLeq, "gt": opGt, "geq": opGeq,
	"startsWith": opStartsWith, "endsWith": opEndsWith,
	"!startsWith": opNotStartsWith, "!endsWith": opNotEndsWith,
	"contains": opContains, "!contains": opNotContains,
	"in": opIn, "!in": opNotIn,
}

const opList = "eq, !eq, lt, leq, gt, geq, startsWith, endsWith, !startsWith, !endsWith, contains, !contains, in, !in"

// cond is one node of a compiled filter: a group (and/or) or a comparison.
type cond struct {
	op   op
	kids []cond // groups

	ref  render.FieldRef
	str  []byte
	num  int64
	bl   bool
	strs [][]byte
	nums []int64
	bls  []bool
}

// Filter is a compiled filter. A nil *Filter matches everything.
type Filter struct {
	root    cond
	scratch []byte
}

// CompileFilter parses and checks spec against the dataset of enc (field
// names, value types, operators). The error names the problem and where it
// is ("where.and[1].value: ...").
func CompileFilter(spec string, enc *render.Encoder) (*Filter, error) {
	spec = strings.TrimSpace(spec)
	if spec == "" {
		return nil, nil
	}
	dec := json.NewDecoder(strings.NewReader(spec))
	dec.UseNumber()
	var top any
	if err := dec.Decode(&top); err != nil {
		return nil, fmt.Errorf("malformed filter JSON: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("malformed filter JSON: extra data after the filter object")
	}
	obj, ok := top.(map[string]any)
	if !ok {
		return nil, errors.New(`a filter is an object {"where": {...}}`)
	}
	for k := range obj {
		if k != "where" {
			return nil, fmt.Errorf(`unknown key %q at the top of the filter (want only "where")`, k)
		}
	}
	where, ok := obj["where"]
	if !ok {
		return nil, errors.New(`the filter has no "where"`)
	}
	c, err := compileNode(where, "where", enc)
	if err != nil {
		return nil, err
	}
	return &Filter{root: c}, nil
}

func compileNode(v any, path string, enc *render.Encoder) (cond, error) {
	obj, ok := v.(map[string]any)
	if !ok {
		return cond{}, fmt.Errorf("%s: want an object (a condition or an and/or group)", path)
	}
	_, hasAnd := obj["and"]
	_, hasOr := obj["or"]
	if hasAnd || hasOr {
		if len(obj) != 1 {
			return cond{}, fmt.Errorf("%s: a group has exactly one key, \"and\" or \"or\"", path)
		}
		g, name := opAnd, "and"
		if hasOr {
			g, name = opOr, "or"
		}
		list, ok := obj[name].([]any)
		if !ok || len(list) == 0 {
			return cond{}, fmt.Errorf("%s.%s: want a non-empty array of conditions", path, name)
		}
		c := cond{op: g, kids: make([]cond, len(list))}
		for i, kid := range list {
			k, err := compileNode(kid, fmt.Sprintf("%s.%s[%d]", path, name, i), enc)
			if err != nil {
				return cond{}, err
			}
			c.kids[i] = k
		}
		return c, nil
	}
	return compileLeaf(obj, path, enc)
}

func compileLeaf(obj map[string]any, path string, enc *render.Encoder) (cond, error) {
	for k := range obj {
		if k != "key" && k != "operator" && k != "value" {
			return cond{}, fmt.Errorf("%s: unknown key %q in a condition (want key, operator, value, or an and/or group)", path, k)
		}
	}
	key, ok := obj["key"].(string)
	if !ok {
		return cond{}, fmt.Errorf("%s.key: want a field name string", path)
	}
	opName, ok := obj["operator"].(string)
	if !ok {
		return cond{}, fmt.Errorf("%s.operator: want one of %s", path, opList)
	}
	o, ok := opNames[opName]
	if !ok {
		return cond{}, fmt.Errorf("%s.operator: unknown operator %q (want one of %s)", path, opName, opList)
	}
	val, ok := obj["value"]
	if !ok {
		return cond{}, fmt.Errorf("%s.value: missing", path)
	}
	ref, err := enc.Lookup(key)
	if err != nil {
		return cond{}, fmt.Errorf("%s.key: %w", path, err)
	}
	c := cond{op: o, ref: ref}
	vpath := path + ".value"
	switch o {
	case opIn, opNotIn:
		list, ok := val.([]any)
		if !ok || len(list) == 0 {
			return cond{}, fmt.Errorf("%s: operator %q needs a non-empty array of %s values", vpath, opName, ref.Kind)
		}
		for i, item := range list {
			ipath := fmt.Sprintf("%s[%d]", vpath, i)
			switch ref.Kind {
			case render.KindString:
				s, err := wantString(item, ipath, key, opName)
				if err != nil {
					return cond{}, err
				}
				c.strs = append(c.strs, []byte(s))
			case render.KindInt:
				n, err := wantInt(item, ipath, key, opName)
				if err != nil {
					return cond{}, err
				}
				c.nums = append(c.nums, n)
			case render.KindBool:
				b, err := wantBool(item, ipath, key, opName)
				if err != nil {
					return cond{}, err
				}
				c.bls = append(c.bls, b)
			}
		}
		return c, nil
	case opStartsWith, opEndsWith, opNotStartsWith, opNotEndsWith, opContains, opNotContains:
		if ref.Kind != render.KindString {
			return cond{}, fmt.Errorf("%s: operator %q works on string fields; %s is %s", path+".operator", opName, key, ref.Kind)
		}
	case opLt, opLeq, opGt, opGeq:
		if ref.Kind == render.KindBool {
			return cond{}, fmt.Errorf("%s: operator %q does not apply to bool field %s", path+".operator", opName, key)
		}
	}
	switch ref.Kind {
	case render.KindString:
		s, err := wantString(val, vpath, key, opName)
		if err != nil {
			return cond{}, err
		}
		c.str = []byte(s)
	case render.KindInt:
		if c.num, err = wantInt(val, vpath, key, opName); err != nil {
			return cond{}, err
		}
	case render.KindBool:
		if c.bl, err = wantBool(val, vpath, key, opName); err != nil {
			return cond{}, err
		}
	}
	return c, nil
}

func typeName(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case json.Number:
		return "a number"
	case bool:
		return "a bool"
	case nil:
		return "null"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}

func wantString(v any, path, key, opName string) (string, error) {
	s, ok := v.(string)
	if !ok {
		return "", fmt.Errorf("%s: field %s is a string, so %q needs a string value, got %s", path, key, opName, typeName(v))
	}
	return s, nil
}

func wantInt(v any, path, key, opName string) (int64, error) {
	n, ok := v.(json.Number)
	if !ok {
		return 0, fmt.Errorf("%s: field %s is an int, so %q needs an integer value, got %s", path, key, opName, typeName(v))
	}
	i, err := strconv.ParseInt(string(n), 10, 64)
	if err != nil {
		if f, ferr := n.Float64(); ferr == nil && f == math.Trunc(f) && math.Abs(f) < 1<<63 {
			return int64(f), nil // 1e3 is an integer too
		}
		return 0, fmt.Errorf("%s: field %s is an int, so %q needs an integer value, got %s", path, key, opName, n)
	}
	return i, nil
}

func wantBool(v any, path, key, opName string) (bool, error) {
	b, ok := v.(bool)
	if !ok {
		return false, fmt.Errorf("%s: field %s is a bool, so %q needs true or false, got %s", path, key, opName, typeName(v))
	}
	return b, nil
}

// Match reports whether the event bound to enc (enc.Bind) passes f.
func (f *Filter) Match(enc *render.Encoder) bool {
	if f == nil {
		return true
	}
	return f.eval(&f.root, enc)
}

func (f *Filter) eval(c *cond, enc *render.Encoder) bool {
	switch c.op {
	case opAnd:
		for i := range c.kids {
			if !f.eval(&c.kids[i], enc) {
				return false
			}
		}
		return true
	case opOr:
		for i := range c.kids {
			if f.eval(&c.kids[i], enc) {
				return true
			}
		}
		return false
	}
	switch c.ref.Kind {
	case render.KindInt:
		v := enc.Int(c.ref)
		switch c.op {
		case opEq:
			return v == c.num
		case opNeq:
			return v != c.num
		case opLt:
			return v < c.num
		case opLeq:
			return v <= c.num
		case opGt:
			return v > c.num
		case opGeq:
			return v >= c.num
		case opIn, opNotIn:
			in := false
			for _, n := range c.nums {
				if n == v {
					in = true
					break
				}
			}
			return in == (c.op == opIn)
		}
	case render.KindBool:
		v := enc.Bool(c.ref)
		switch c.op {
		case opEq:
			return v == c.bl
		case opNeq:
			return v != c.bl
		case opIn, opNotIn:
			in := false
			for _, b := range c.bls {
				if b == v {
					in = true
					break
				}
			}
			return in == (c.op == opIn)
		}
	case render.KindString:
		f.scratch = enc.AppendText(f.scratch[:0], c.ref)
		v := f.scratch
		switch c.op {
		case opEq:
			return bytes.Equal(v, c.str)
		case opNeq:
			return !bytes.Equal(v, c.str)
		case opLt:
			return bytes.Compare(v, c.str) < 0
		case opLeq:
			return bytes.Compare(v, c.str) <= 0
		case opGt:
			return bytes.Compare(v, c.str) > 0
		case opGeq:
			return bytes.Compare(v, c.str) >= 0
		case opStartsWith:
			return bytes.HasPrefix(v, c.str)
		case opNotStartsWith:
			return !bytes.HasPrefix(v, c.str)
		case opEndsWith:
			return bytes.HasSuffix(v, c.str)
		case opNotEndsWith:
			return !bytes.HasSuffix(v, c.str)
		case opContains:
			return bytes.Contains(v, c.str)
		case opNotContains:
			return !bytes.Contains(v, c.str)
		case opIn, opNotIn:
			in := false
			for _, s := range c.strs {
				if bytes.Equal(v, s) {
					in = true
					break
				}
			}
			return in == (c.op == opIn)
		}
	}
	return false
}
