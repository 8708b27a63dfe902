package deliver

import (
	"fmt"
	"reflect"
	"strings"

	"go.yaml.in/yaml/v3"
)

// strictDecode decodes n into v after checking that every mapping key in n
// names a field of v (recursively), as the config's strict decoder does
// for every other section: a yaml.Node's own Decode accepts unknown keys.
// The errors are yaml.TypeError lines ("line N: field x not found in type
// T"), which the config package turns into file:line: key: unknown key.
func strictDecode(n *yaml.Node, v any) error {
	var msgs []string
	unknownKeys(n, reflect.TypeOf(v), &msgs)
	if err := n.Decode(v); err != nil {
		if te, ok := err.(*yaml.TypeError); ok {
			msgs = append(msgs, te.Errors...)
		} else {
			return err
		}
	}
	if len(msgs) > 0 {
		return &yaml.TypeError{Errors: msgs}
	}
	return nil
}

func unknownKeys(n *yaml.Node, t reflect.Type, msgs *[]string) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			return
		}
		if reflect.PointerTo(t).Implements(unmarshalerType) {
			return // decodes itself
		}
		fields := yamlFields(t)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			ft, ok := fields[k.Value]
			if !ok {
				*msgs = append(*msgs, fmt.Sprintf("line %d: field %s not found in type %s", k.Line, k.Value, t.String()))
				continue
			}
			unknownKeys(n.Content[i+1], ft, msgs)
		}
	case reflect.Slice, reflect.Array:
		if n.Kind == yaml.SequenceNode {
			for _, c := range n.Content {
				unknownKeys(c, t.Elem(), msgs)
			}
		}
	case reflect.Map:
		if n.Kind == yaml.MappingNode {
			for i := 1; i < len(n.Content); i += 2 {
				unknownKeys(n.Content[i], t.Elem(), msgs)
			}
		}
	}
}

var unmarshalerType = reflect.TypeFor[yaml.Unmarshaler]()

// yamlFields maps a struct's yaml keys to field types, following inline
// fields.
func yamlFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("yaml")
		name, opts, _ := strings.Cut(tag, ",")
		if name == "-" {
			continue
		}
		if strings.Contains(opts, "inline") {
			for k, v := range yamlFields(f.Type) {
				out[k] = v
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		out[name] = f.Type
	}
	return out
}
