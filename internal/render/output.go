package render

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// OutputOptions are Logpush's record-level output options (its
// output_options minus the batch-level ones, which the log job applies).
// A nil string keeps the output type's default: for ndjson record_prefix
// "{", record_suffix "}\n" and field_delimiter ","; for csv no prefix,
// record_suffix "\n" and field_delimiter ",".
type OutputOptions struct {
	RecordPrefix   *string
	RecordSuffix   *string
	FieldDelimiter *string
	// RecordTemplate replaces the delimited list of fields: text, {{.Field}}
	// (the field's value as the output type writes it; null/empty when the
	// field is not in the job's fields), {{"constant"}} and {{/* comment */}}.
	RecordTemplate string
	// EscapeJNDI writes every "${" of a record as "x{" (Logpush's
	// CVE-2021-44228 option).
	EscapeJNDI bool
}

// tmplPart is one piece of a parsed record template: text, or a field
// (index into the encoder's selection, -1 when the field is not selected).
type tmplPart struct {
	text  string
	field int
	isFld bool
}

// parseTemplate parses Logpush's text/template subset. selected maps field
// names of the dataset to their position in the job's selection (-1: a
// field of the dataset that is not selected).
func parseTemplate(s string, known map[string]int) ([]tmplPart, error) {
	var out []tmplPart
	for s != "" {
		i := strings.Index(s, "{{")
		if i < 0 {
			out = append(out, tmplPart{text: s})
			break
		}
		if i > 0 {
			out = append(out, tmplPart{text: s[:i]})
		}
		s = s[i+2:]
		j := closeAction(s)
		if j < 0 {
			return nil, errors.New("unclosed {{")
		}
		act := strings.TrimSpace(s[:j])
		s = s[j+2:]
		switch {
		case strings.HasPrefix(act, "/*"):
			if !strings.HasSuffix(act, "*/") {
				return nil, fmt.Errorf("unclosed comment {{%s}}", act)
			}
		case strings.HasPrefix(act, "."):
			name := act[1:]
			pos, ok := known[name]
			if !ok {
				return nil, fmt.Errorf("unknown field %q in {{%s}}", name, act)
			}
			out = append(out, tmplPart{field: pos, isFld: true})
		case strings.HasPrefix(act, `"`) || strings.HasPrefix(act, "`"):
			text, err := strconv.Unquote(act)
			if err != nil {
				return nil, fmt.Errorf("bad constant {{%s}}", act)
			}
			out = append(out, tmplPart{text: text})
		default:
			return nil, fmt.Errorf("{{%s}}: only {{.Field}}, {{\"text\"}} and {{/* comments */}} are allowed", act)
		}
	}
	return out, nil
}

// closeAction returns the index of the "}}" that ends the action starting
// s, skipping a quoted constant ({{"}}"}}), or -1.
func closeAction(s string) int {
	i := len(s) - len(strings.TrimLeft(s, " \t"))
	if i < len(s) && (s[i] == '"' || s[i] == '`') {
		q := s[i]
		for i++; i < len(s) && s[i] != q; i++ {
			if q == '"' && s[i] == '\\' {
				i++
			}
		}
		if i >= len(s) {
			return -1
		}
		if j := strings.Index(s[i:], "}}"); j >= 0 {
			return i + j
		}
		return -1
	}
	return strings.Index(s, "}}")
}

// setOutput applies o to a new encoder (after its selection is known).
func (enc *Encoder) setOutput(o OutputOptions) error {
	if enc.out == CSV {
		enc.recPrefix, enc.recSuffix, enc.fieldDelim = nil, []byte("\n"), []byte(",")
	} else {
		enc.recPrefix, enc.recSuffix, enc.fieldDelim = []byte("{"), []byte("}\n"), []byte(",")
	}
	if o.RecordPrefix != nil {
		enc.recPrefix = []byte(*o.RecordPrefix)
	}
	if o.RecordSuffix != nil {
		enc.recSuffix = []byte(*o.RecordSuffix)
	}
	if o.FieldDelimiter != nil {
		enc.fieldDelim = []byte(*o.FieldDelimiter)
	}
	enc.jndi = o.EscapeJNDI
	if o.EscapeJNDI {
		enc.recPrefix, enc.recSuffix, enc.fieldDelim = EscapeJNDI(enc.recPrefix), EscapeJNDI(enc.recSuffix), EscapeJNDI(enc.fieldDelim)
	}
	if o.RecordTemplate != "" {
		known := make(map[string]int, len(enc.ds.fields))
		for i := range enc.ds.fields {
			known[enc.ds.fields[i].name] = -1
		}
		for n, i := range enc.sel {
			known[enc.ds.fields[i].name] = n
		}
		parts, err := parseTemplate(o.RecordTemplate, known)
		if err != nil {
			return fmt.Errorf("record_template: %w", err)
		}
		enc.tmpl = parts
		if enc.jndi {
			for i := range enc.tmpl {
				enc.tmpl[i].text = string(EscapeJNDI([]byte(enc.tmpl[i].text)))
			}
		}
	}
	if enc.out == CSV && o.FieldDelimiter != nil && len(enc.header) > 0 {
		if string(enc.fieldDelim) != "," {
			enc.csvDelim = enc.fieldDelim
		}
		enc.header = enc.header[:0]
		for n, i := range enc.sel {
			if n > 0 {
				enc.header = append(enc.header, enc.fieldDelim...)
			}
			start := len(enc.header)
			enc.header = append(enc.header, enc.ds.fields[i].name...)
			enc.header = quoteCSVInPlace(enc.header, start, enc.csvDelim)
		}
		enc.header = append(enc.header, '\n')
	}
	return nil
}

// appendTemplate renders the bound record through the job's template.
func (enc *Encoder) appendTemplate(b []byte) []byte {
	for _, p := range enc.tmpl {
		if !p.isFld {
			b = append(b, p.text...)
			continue
		}
		if p.field < 0 {
			if enc.out != CSV {
				b = append(b, "null"...)
			}
			continue
		}
		f := &enc.ds.fields[enc.sel[p.field]]
		if enc.out == CSV {
			b = enc.appendValueCSV(b, f)
		} else {
			b = enc.appendValueJSON(b, f)
		}
	}
	return b
}

// EscapeJNDI replaces every "${" in p by "x{", in place, and returns p.
func EscapeJNDI(p []byte) []byte {
	for i := 0; i+1 < len(p); i++ {
		if p[i] == '$' && p[i+1] == '{' {
			p[i] = 'x'
		}
	}
	return p
}
