package config

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// index maps key paths ("apps[0].listen[1]") to source lines and back.
type index struct {
	lines  map[string]int
	byLine map[int]string
}

func newIndex(root *yaml.Node) *index {
	ix := &index{lines: map[string]int{}, byLine: map[int]string{}}
	if root != nil && root.Kind == yaml.DocumentNode && len(root.Content) > 0 {
		ix.walk("", root.Content[0])
	}
	return ix
}

func (ix *index) add(path string, line int) {
	ix.lines[path] = line
	if _, ok := ix.byLine[line]; !ok { // the first key on a line is the one an operator wrote there
		ix.byLine[line] = path
	}
}

func (ix *index) walk(path string, n *yaml.Node) {
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := k.Value
			if path != "" {
				p = path + "." + k.Value
			}
			ix.add(p, k.Line)
			ix.walk(p, v)
		}
	case yaml.SequenceNode:
		for i, v := range n.Content {
			p := path + "[" + strconv.Itoa(i) + "]"
			ix.add(p, v.Line)
			ix.walk(p, v)
		}
	}
}

// line returns the line of key, or of its nearest ancestor present in the
// file (a missing key is reported where its section starts).
func (ix *index) line(key string) int {
	for key != "" {
		if l, ok := ix.lines[key]; ok {
			return l
		}
		cut := strings.LastIndexAny(key, ".[")
		if cut <= 0 {
			break
		}
		key = key[:cut]
	}
	return 0
}

var yamlLine = regexp.MustCompile(`^line (\d+): (.*)$`)

// yamlIssues turns a yaml decode error into issues with lines and keys.
func yamlIssues(err error, ix *index) []*Issue {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		var out []*Issue
		for _, msg := range te.Errors {
			is := &Issue{Msg: msg}
			if m := yamlLine.FindStringSubmatch(msg); m != nil {
				is.Line, _ = strconv.Atoi(m[1])
				is.Msg = m[2]
				if ix != nil {
					is.Key = ix.byLine[is.Line]
				}
			}
			is.Msg = friendlyYAML(is.Msg)
			out = append(out, is)
		}
		return out
	}
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	is := &Issue{Msg: msg}
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		is.Line, _ = strconv.Atoi(m[1])
		is.Msg = m[2]
	}
	return []*Issue{is}
}

var (
	notFound  = regexp.MustCompile(`^field (\S+) not found in type (\S+)$`)
	cantUnmar = regexp.MustCompile("^cannot unmarshal !!(\\w+) `(.*)` into (\\S+)$")
)

func friendlyYAML(msg string) string {
	if m := notFound.FindStringSubmatch(msg); m != nil {
		return fmt.Sprintf("unknown key %q (check the spelling; see docs/config.md)", m[1])
	}
	if m := cantUnmar.FindStringSubmatch(msg); m != nil {
		want := m[3]
		switch want {
		case "time.Duration":
			want = "a duration such as 30s or 5m"
		case "int", "int64", "uint32", "uint16":
			want = "a whole number"
		case "bool":
			want = "true or false"
		case "float64":
			want = "a number"
		case "string":
			want = "a string"
		}
		if strings.HasPrefix(want, "[]") {
			want = "a list"
		}
		return fmt.Sprintf("%q is not %s", m[2], want)
	}
	return msg
}
