// Package ocsftest checks records against the OCSF 1.8.0 schema, built from
// the schema's own files (dictionary, categories, base event, the Network
// Activity class and its base, profiles and the objects prism writes),
// vendored under schema/ with the schema's Apache-2.0 LICENSE and NOTICE.
//
// A record passes when every key is an attribute of its class or object,
// every value has the attribute's JSON type (after resolving the
// dictionary's data types, with their ranges and length limits), every
// required attribute is present, enumerated values are in the enumeration
// and their sibling captions match, objects meet their at_least_one /
// just_one constraints, and class_uid, category_uid and type_uid agree with
// the class. An object whose definition is not vendored is reported, not
// passed.
//
// The record itself is checked too, for what a JSON decoder would let
// through: one JSON object and nothing after it but white space (no
// second record on the line), no key twice in an object (decoders keep
// either one), metadata.version the vendored schema's version
// (version.json), metadata.profiles naming only profiles the schema has
// and every profile whose attributes the record uses, and every
// timestamp_t in epoch milliseconds between 2000 and 2200 (so a time in
// seconds, microseconds or nanoseconds is caught: the schema itself only
// says long_t).
package ocsftest

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"math"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
)

//go:embed all:schema
var files embed.FS

// attr is an attribute as a class or object uses it.
type attr struct {
	typ      string // dictionary type: an object name or a *_t type
	array    bool
	required bool
	enum     map[string]string // value -> caption
	sibling  string
	// profile names the profile that brings the attribute; a required
	// attribute of a profile is required only when the record says it uses
	// the profile (metadata.profiles).
	profile string
}

type object struct {
	name        string
	attrs       map[string]*attr
	atLeastOne  []string
	justOne     []string
	classUID    int
	categoryUID int
	caption     string
	catCaption  string
}

type dataType struct {
	base   string
	min    float64
	max    float64
	ranged bool
	maxLen int
	regex  *regexp.Regexp
}

// Schema is the loaded schema. It is safe for concurrent use: Load hands
// every test the same Schema, and parallel tests validate at once.
type Schema struct {
	dict  map[string]json.RawMessage
	types map[string]dataType
	class *object
	// version is the schema's version (version.json); profiles are the
	// names of its profiles.
	version  string
	profiles map[string]bool

	// mu guards objects, the object definitions loaded as records first
	// use them.
	mu      sync.Mutex
	objects map[string]*object
}

var (
	once   sync.Once
	loaded *Schema
	errLd  error
)

// Load returns the vendored schema with the Network Activity class.
func Load() (*Schema, error) {
	once.Do(func() { loaded, errLd = load() })
	return loaded, errLd
}

type rawAttr struct {
	Type        string                     `json:"type"`
	IsArray     bool                       `json:"is_array"`
	Requirement string                     `json:"requirement"`
	Sibling     string                     `json:"sibling"`
	Enum        map[string]json.RawMessage `json:"enum"`
}

type rawDef struct {
	Name        string                     `json:"name"`
	Caption     string                     `json:"caption"`
	Extends     string                     `json:"extends"`
	Category    string                     `json:"category"`
	UID         int                        `json:"uid"`
	Attributes  map[string]json.RawMessage `json:"attributes"`
	Constraints struct {
		AtLeastOne []string `json:"at_least_one"`
		JustOne    []string `json:"just_one"`
	} `json:"constraints"`
}

func readJSON(name string, v any) error {
	b, err := files.ReadFile(path.Join("schema", name))
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

func load() (*Schema, error) {
	s := &Schema{types: map[string]dataType{}, objects: map[string]*object{}, profiles: map[string]bool{}}
	var ver struct {
		Version string `json:"version"`
	}
	if err := readJSON("version.json", &ver); err != nil {
		return nil, err
	}
	if ver.Version == "" {
		return nil, fmt.Errorf("version.json: no version")
	}
	s.version = ver.Version
	profs, err := files.ReadDir("schema/profiles")
	if err != nil {
		return nil, err
	}
	for _, f := range profs {
		var prof rawDef
		if err := readJSON(path.Join("profiles", f.Name()), &prof); err != nil {
			return nil, err
		}
		s.profiles[prof.Name] = true
	}
	var dict struct {
		Attributes map[string]json.RawMessage `json:"attributes"`
		Types      struct {
			Attributes map[string]struct {
				Type   string    `json:"type"`
				Range  []float64 `json:"range"`
				MaxLen int       `json:"max_len"`
				Regex  string    `json:"regex"`
			} `json:"attributes"`
		} `json:"types"`
	}
	if err := readJSON("dictionary.json", &dict); err != nil {
		return nil, err
	}
	s.dict = dict.Attributes
	for name, t := range dict.Types.Attributes {
		dt := dataType{base: t.Type, maxLen: t.MaxLen}
		if dt.base == "" {
			dt.base = name
		}
		if len(t.Range) == 2 {
			dt.ranged, dt.min, dt.max = true, t.Range[0], t.Range[1]
		}
		if t.Regex != "" {
			if re, err := regexp.Compile(t.Regex); err == nil {
				dt.regex = re
			}
		}
		s.types[name] = dt
	}
	var cats struct {
		Attributes map[string]struct {
			UID     int    `json:"uid"`
			Caption string `json:"caption"`
		} `json:"attributes"`
	}
	if err := readJSON("categories.json", &cats); err != nil {
		return nil, err
	}
	class, err := s.loadDef("events", "network/network_activity.json")
	if err != nil {
		return nil, err
	}
	var top rawDef
	_ = readJSON("events/network/network.json", &top)
	cat := cats.Attributes[top.Category]
	class.categoryUID = cat.UID
	class.catCaption = cat.Caption
	class.classUID = cat.UID*1000 + class.classUID
	// The class and category uids are checked against the class itself
	// (the base event enumerates only 0 Unknown for them).
	for _, k := range []string{"class_uid", "category_uid"} {
		if a := class.attrs[k]; a != nil {
			a.enum = nil
		}
	}
	s.class = class
	return s, nil
}

// loadDef loads an event class or object with its extends chain and
// profiles; later definitions refine earlier ones.
func (s *Schema) loadDef(dir, file string) (*object, error) {
	var d rawDef
	if err := readJSON(path.Join(dir, file), &d); err != nil {
		return nil, err
	}
	o := &object{name: d.Name, attrs: map[string]*attr{}, classUID: d.UID, caption: d.Caption}
	if d.Extends != "" && d.Extends != "object" {
		var base *object
		var err error
		if dir == "events" {
			if d.Extends == "base_event" {
				base, err = s.loadDef(dir, "base_event.json")
			} else {
				base, err = s.loadDef(dir, path.Join(path.Dir(file), d.Extends+".json"))
			}
		} else {
			base, err = s.loadDef(dir, d.Extends+".json")
		}
		if err != nil {
			return nil, fmt.Errorf("%s extends %s: %w", d.Name, d.Extends, err)
		}
		for k, a := range base.attrs {
			c := *a
			o.attrs[k] = &c
		}
		o.atLeastOne, o.justOne = base.atLeastOne, base.justOne
	}
	if inc, ok := d.Attributes["$include"]; ok {
		var list []string
		if err := json.Unmarshal(inc, &list); err != nil {
			return nil, fmt.Errorf("%s: $include: %w", d.Name, err)
		}
		for _, p := range list {
			var prof rawDef
			if err := readJSON(p, &prof); err != nil {
				return nil, err
			}
			before := make(map[string]bool, len(o.attrs))
			for k := range o.attrs {
				before[k] = true
			}
			if err := s.merge(o, prof.Attributes); err != nil {
				return nil, err
			}
			for k, a := range o.attrs {
				if !before[k] {
					a.profile = prof.Name
				}
			}
		}
	}
	if err := s.merge(o, d.Attributes); err != nil {
		return nil, err
	}
	if len(d.Constraints.AtLeastOne) > 0 {
		o.atLeastOne = d.Constraints.AtLeastOne
	}
	if len(d.Constraints.JustOne) > 0 {
		o.justOne = d.Constraints.JustOne
	}
	return o, nil
}

func (s *Schema) merge(o *object, attrs map[string]json.RawMessage) error {
	for name, raw := range attrs {
		if name == "$include" {
			continue
		}
		a := o.attrs[name]
		if a == nil {
			a = &attr{enum: map[string]string{}}
			dr, ok := s.dict[name]
			if !ok {
				return fmt.Errorf("%s.%s: not in the dictionary", o.name, name)
			}
			var d rawAttr
			if err := json.Unmarshal(dr, &d); err != nil {
				return fmt.Errorf("dictionary %s: %w", name, err)
			}
			a.typ, a.array, a.sibling = d.Type, d.IsArray, d.Sibling
			addEnum(a, d.Enum)
			o.attrs[name] = a
		}
		var r rawAttr
		if err := json.Unmarshal(raw, &r); err != nil {
			return fmt.Errorf("%s.%s: %w", o.name, name, err)
		}
		if r.Requirement != "" {
			a.required = r.Requirement == "required"
		}
		if r.Type != "" {
			a.typ = r.Type
		}
		addEnum(a, r.Enum)
	}
	return nil
}

func addEnum(a *attr, e map[string]json.RawMessage) {
	for k, raw := range e {
		var v struct {
			Caption string `json:"caption"`
		}
		_ = json.Unmarshal(raw, &v)
		a.enum[k] = v.Caption
	}
}

func (s *Schema) object(name string) (*object, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if o, ok := s.objects[name]; ok {
		return o, nil
	}
	o, err := s.loadDef("objects", name+".json")
	if err != nil {
		return nil, fmt.Errorf("object %s is not vendored: %w", name, err)
	}
	s.objects[name] = o
	return o, nil
}

// Validate checks one ndjson record of the Network Activity class and
// returns every problem found, each prefixed with its attribute path.
func (s *Schema) Validate(record []byte) []string {
	var v map[string]any
	dec := json.NewDecoder(bytes.NewReader(record))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return []string{"not a JSON object: " + err.Error()}
	}
	var probs []string
	if rest := bytes.TrimSpace(record[dec.InputOffset():]); len(rest) > 0 {
		probs = append(probs, fmt.Sprintf("(record): %d bytes after the JSON object (%.20q)", len(rest), rest))
	}
	probs = append(probs, dupKeys(record)...)
	profiles := map[string]bool{}
	if md, ok := v["metadata"].(map[string]any); ok {
		if ver, ok := md["version"].(string); ok && ver != s.version {
			probs = append(probs, fmt.Sprintf("metadata.version: %q, want the schema's %q", ver, s.version))
		}
		if list, ok := md["profiles"].([]any); ok {
			for i, p := range list {
				name, _ := p.(string)
				if !s.profiles[name] {
					probs = append(probs, fmt.Sprintf("metadata.profiles[%d]: %v is not a profile of the schema", i, p))
				}
				profiles[name] = true
			}
		}
	}
	s.check(&probs, "", s.class, v, profiles)
	c := s.class
	want := func(key string, n int64) {
		got, ok := v[key].(json.Number)
		if !ok || got.String() != strconv.FormatInt(n, 10) {
			probs = append(probs, fmt.Sprintf("%s: want %d, got %v", key, n, v[key]))
		}
	}
	want("class_uid", int64(c.classUID))
	want("category_uid", int64(c.categoryUID))
	if act, ok := v["activity_id"].(json.Number); ok {
		a, _ := act.Int64()
		want("type_uid", int64(c.classUID)*100+a)
		if tn, ok := v["type_name"].(string); ok && tn != c.caption+": "+c.attrs["activity_id"].enum[act.String()] {
			probs = append(probs, fmt.Sprintf("type_name: %q does not match activity_id %s", tn, act))
		}
	}
	if n, ok := v["class_name"].(string); ok && n != c.caption {
		probs = append(probs, fmt.Sprintf("class_name: want %q, got %q", c.caption, n))
	}
	if n, ok := v["category_name"].(string); ok && n != c.catCaption {
		probs = append(probs, fmt.Sprintf("category_name: want %q, got %q", c.catCaption, n))
	}
	return probs
}

func (s *Schema) check(probs *[]string, at string, o *object, v map[string]any, profiles map[string]bool) {
	keys := make([]string, 0, len(v))
	for k := range v {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		p := join(at, k)
		a, ok := o.attrs[k]
		if !ok {
			*probs = append(*probs, p+": not an attribute of "+o.name)
			continue
		}
		if a.profile != "" && !profiles[a.profile] {
			*probs = append(*probs, fmt.Sprintf("%s: an attribute of profile %s, which metadata.profiles does not list", p, a.profile))
		}
		val := v[k]
		if a.array {
			list, ok := val.([]any)
			if !ok {
				*probs = append(*probs, p+": want an array")
				continue
			}
			for i, item := range list {
				s.value(probs, fmt.Sprintf("%s[%d]", p, i), a, item, profiles)
			}
			continue
		}
		s.value(probs, p, a, val, profiles)
		if len(a.enum) > 0 && a.sibling != "" {
			if cap, ok := v[a.sibling].(string); ok {
				id := fmt.Sprint(val)
				if id != "99" && a.enum[id] != "" && cap != a.enum[id] {
					*probs = append(*probs, fmt.Sprintf("%s: %q is not the caption of %s %s (%q)", join(at, a.sibling), cap, k, id, a.enum[id]))
				}
			}
		}
	}
	names := make([]string, 0, len(o.attrs))
	for k := range o.attrs {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		a := o.attrs[k]
		if _, ok := v[k]; !ok && a.required && (a.profile == "" || profiles[a.profile]) {
			*probs = append(*probs, join(at, k)+": required by "+o.name+" but missing")
		}
	}
	if len(o.atLeastOne) > 0 && count(v, o.atLeastOne) == 0 {
		*probs = append(*probs, fmt.Sprintf("%s: %s needs at least one of %s", orRoot(at), o.name, strings.Join(o.atLeastOne, ", ")))
	}
	if len(o.justOne) > 0 && count(v, o.justOne) != 1 {
		*probs = append(*probs, fmt.Sprintf("%s: %s needs exactly one of %s", orRoot(at), o.name, strings.Join(o.justOne, ", ")))
	}
}

func count(v map[string]any, names []string) int {
	n := 0
	for _, k := range names {
		if _, ok := v[k]; ok {
			n++
		}
	}
	return n
}

func orRoot(at string) string {
	if at == "" {
		return "(record)"
	}
	return at
}

func join(at, k string) string {
	if at == "" {
		return k
	}
	return at + "." + k
}

func (s *Schema) value(probs *[]string, p string, a *attr, val any, profiles map[string]bool) {
	if !strings.HasSuffix(a.typ, "_t") {
		m, ok := val.(map[string]any)
		if !ok {
			*probs = append(*probs, fmt.Sprintf("%s: want a %s object, got %T", p, a.typ, val))
			return
		}
		if a.typ == "object" {
			return // a free-form object (unmapped)
		}
		o, err := s.object(a.typ)
		if err != nil {
			*probs = append(*probs, p+": "+err.Error())
			return
		}
		s.check(probs, p, o, m, profiles)
		return
	}
	dt, ok := s.types[a.typ]
	if !ok {
		*probs = append(*probs, fmt.Sprintf("%s: unknown data type %s", p, a.typ))
		return
	}
	switch dt.base {
	case "string_t":
		str, ok := val.(string)
		if !ok {
			*probs = append(*probs, fmt.Sprintf("%s: %s wants a string, got %v", p, a.typ, val))
			return
		}
		if dt.maxLen > 0 && len(str) > dt.maxLen {
			*probs = append(*probs, fmt.Sprintf("%s: longer than %d", p, dt.maxLen))
		}
		if dt.regex != nil && !dt.regex.MatchString(str) {
			*probs = append(*probs, fmt.Sprintf("%s: %q is not a valid %s", p, str, a.typ))
		}
	case "integer_t", "long_t":
		n, ok := val.(json.Number)
		if !ok {
			*probs = append(*probs, fmt.Sprintf("%s: %s wants an integer, got %v", p, a.typ, val))
			return
		}
		i, err := n.Int64()
		if err != nil {
			*probs = append(*probs, fmt.Sprintf("%s: %s wants an integer, got %s", p, a.typ, n))
			return
		}
		if dt.base == "integer_t" && (i > math.MaxInt32 || i < math.MinInt32) {
			*probs = append(*probs, fmt.Sprintf("%s: %d does not fit integer_t", p, i))
		}
		if dt.ranged && (float64(i) < dt.min || float64(i) > dt.max) {
			*probs = append(*probs, fmt.Sprintf("%s: %d is outside %v..%v", p, i, dt.min, dt.max))
		}
		if a.typ == "timestamp_t" && (i < minTimestamp || i >= maxTimestamp) {
			*probs = append(*probs, fmt.Sprintf("%s: %d is not epoch milliseconds between 2000 and 2200", p, i))
		}
		if len(a.enum) > 0 {
			if _, ok := a.enum[n.String()]; !ok {
				*probs = append(*probs, fmt.Sprintf("%s: %s is not in the enumeration", p, n))
			}
		}
	case "float_t":
		if _, ok := val.(json.Number); !ok {
			*probs = append(*probs, fmt.Sprintf("%s: want a number, got %v", p, val))
		}
	case "boolean_t":
		if _, ok := val.(bool); !ok {
			*probs = append(*probs, fmt.Sprintf("%s: want a bool, got %v", p, val))
		}
	case "json_t":
	default:
		*probs = append(*probs, fmt.Sprintf("%s: data type %s (%s) is not checked", p, a.typ, dt.base))
	}
}

// The plausible window of a timestamp_t, epoch milliseconds: 2000-01-01
// to 2200-01-01 UTC. A time of this century in seconds is below it, in
// microseconds or nanoseconds above it.
const (
	minTimestamp = 946684800000
	maxTimestamp = 7258118400000
)

// dupKeys returns a problem for every key that appears twice in one
// object of the record: encoding/json keeps the last, other decoders the
// first, so the record means different things to different readers.
func dupKeys(record []byte) []string {
	dec := json.NewDecoder(bytes.NewReader(record))
	var probs []string
	var walk func(at string) error
	walk = func(at string) error {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		switch tok {
		case json.Delim('{'):
			seen := map[string]bool{}
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return err
				}
				k, _ := kt.(string)
				if seen[k] {
					probs = append(probs, join(at, k)+": duplicate key")
				}
				seen[k] = true
				if err := walk(join(at, k)); err != nil {
					return err
				}
			}
		case json.Delim('['):
			for i := 0; dec.More(); i++ {
				if err := walk(fmt.Sprintf("%s[%d]", at, i)); err != nil {
					return err
				}
			}
		default:
			return nil
		}
		_, err = dec.Token() // the closing delimiter
		return err
	}
	_ = walk("") // a syntax error is Validate's to report
	return probs
}
