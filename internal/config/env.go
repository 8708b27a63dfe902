package config

import (
	"os"
	"reflect"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Environment references: a string value may hold ${NAME}, replaced by the
// environment variable NAME after the file is decoded, so that secrets (a
// destination's token, an S3 secret key) stay out of the file. $${ writes
// a literal ${. Only string values are expanded; the expanded values are
// never logged or echoed in an error message.

// envRefs reports every ${NAME} in the file whose variable is not set, as
// issues at the value's line and key.
func envRefs(root *yaml.Node) []*Issue {
	var out []*Issue
	var walk func(path string, n *yaml.Node)
	walk = func(path string, n *yaml.Node) {
		switch n.Kind {
		case yaml.DocumentNode:
			for _, c := range n.Content {
				walk(path, c)
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				p := n.Content[i].Value
				if path != "" {
					p = path + "." + p
				}
				walk(p, n.Content[i+1])
			}
		case yaml.SequenceNode:
			for i, c := range n.Content {
				walk(path+"["+strconv.Itoa(i)+"]", c)
			}
		case yaml.ScalarNode:
			for _, name := range envNames(n.Value) {
				if _, ok := os.LookupEnv(name); !ok {
					out = append(out, &Issue{Line: n.Line, Key: path, Msg: "environment variable " + name + " is not set (referenced as ${" + name + "})"})
				}
			}
		}
	}
	walk("", root)
	return out
}

// envNames lists the variables s references.
func envNames(s string) []string {
	var out []string
	for {
		i := strings.Index(s, "${")
		if i < 0 {
			return out
		}
		if i > 0 && s[i-1] == '$' {
			s = s[i+2:]
			continue
		}
		j := strings.IndexByte(s[i:], '}')
		if j < 0 {
			return out
		}
		if name := s[i+2 : i+j]; validEnvName(name) {
			out = append(out, name)
		}
		s = s[i+j+1:]
	}
}

func validEnvName(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		if !(r == '_' || r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || i > 0 && r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

// expandEnv replaces ${NAME} (and $${) in s.
func expandEnv(s string) string {
	if !strings.Contains(s, "${") {
		return s
	}
	var b strings.Builder
	for {
		i := strings.Index(s, "${")
		if i < 0 {
			b.WriteString(s)
			return b.String()
		}
		if i > 0 && s[i-1] == '$' {
			b.WriteString(s[:i-1])
			b.WriteString("${")
			s = s[i+2:]
			continue
		}
		j := strings.IndexByte(s[i:], '}')
		name := ""
		if j >= 0 {
			name = s[i+2 : i+j]
		}
		if j < 0 || !validEnvName(name) {
			b.WriteString(s[:i+2])
			s = s[i+2:]
			continue
		}
		b.WriteString(s[:i])
		b.WriteString(os.Getenv(name))
		s = s[i+j+1:]
	}
}

// expandAll expands every settable string in v (a pointer to the config).
func expandAll(v reflect.Value) {
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			expandAll(v.Elem())
		}
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			if v.Type().Field(i).IsExported() {
				expandAll(v.Field(i))
			}
		}
	case reflect.Slice, reflect.Array:
		for i := 0; i < v.Len(); i++ {
			expandAll(v.Index(i))
		}
	case reflect.Map:
		if v.Type().Elem().Kind() != reflect.String {
			return
		}
		for _, k := range v.MapKeys() {
			ev := v.MapIndex(k)
			if x := expandEnv(ev.String()); x != ev.String() {
				nv := reflect.New(v.Type().Elem()).Elem()
				nv.SetString(x)
				v.SetMapIndex(k, nv)
			}
		}
	case reflect.String:
		if v.CanSet() {
			v.SetString(expandEnv(v.String()))
		}
	}
}
