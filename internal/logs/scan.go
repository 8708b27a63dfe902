package logs

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// A small JSON object scanner for log records: it splits one object into
// its members without building maps or interfaces, so that reading a
// record allocates nothing once the buffers have grown. It checks the
// whole JSON grammar (a truncated or corrupt line is an error, with the
// column where it went wrong).

type vkind uint8

const (
	vString vkind = iota + 1
	vNumber
	vBool
	vNull
	vObject
	vArray
)

func (k vkind) String() string {
	switch k {
	case vString:
		return "a string"
	case vNumber:
		return "a number"
	case vBool:
		return "a bool"
	case vNull:
		return "null"
	case vObject:
		return "an object"
	case vArray:
		return "an array"
	}
	return "nothing"
}

// value is one JSON value: b is the unescaped content of a string, the
// text of a number, or the raw bytes of an object or array.
type value struct {
	kind vkind
	b    []byte
	bl   bool
}

type member struct {
	key []byte
	val value
}

// syntaxError is a JSON grammar error at a byte offset of the line.
type syntaxError struct {
	off int
	msg string
}

func (e *syntaxError) Error() string {
	return fmt.Sprintf("malformed JSON at column %d: %s", e.off+1, e.msg)
}

type scanner struct {
	data []byte
	pos  int
	// scratch receives unescaped strings; its capacity is kept at least
	// len(data) so that appending never moves what earlier members point to.
	scratch []byte
}

// object scans data as one JSON object (surrounding spaces allowed) and
// appends its members to ms.
func (s *scanner) object(data []byte, ms []member) ([]member, error) {
	s.data, s.pos = data, 0
	if cap(s.scratch) < len(data) {
		s.scratch = make([]byte, 0, len(data)+len(data)/2)
	}
	s.scratch = s.scratch[:0]
	s.space()
	if s.pos >= len(s.data) {
		return ms, s.fail("empty line")
	}
	if s.data[s.pos] != '{' {
		return ms, s.fail("a record is a JSON object")
	}
	ms, err := s.members(ms)
	if err != nil {
		return ms, err
	}
	s.space()
	if s.pos != len(s.data) {
		return ms, s.fail("extra data after the object")
	}
	return ms, nil
}

// nested scans the members of an object value of the current line (the
// raw bytes of a member, already checked by the outer scan). Strings of
// the outer line and of raw together never exceed the line, so scratch
// does not move.
func (s *scanner) nested(raw []byte, ms []member) ([]member, error) {
	data, pos := s.data, s.pos
	s.data, s.pos = raw, 0
	ms, err := s.members(ms)
	s.data, s.pos = data, pos
	return ms, err
}

func (s *scanner) fail(msg string) error { return &syntaxError{off: s.pos, msg: msg} }

func (s *scanner) space() {
	for s.pos < len(s.data) {
		switch s.data[s.pos] {
		case ' ', '\t', '\r', '\n':
			s.pos++
		default:
			return
		}
	}
}

// members reads `{ "k": v, ... }` starting at '{'.
func (s *scanner) members(ms []member) ([]member, error) {
	s.pos++ // '{'
	s.space()
	if s.pos < len(s.data) && s.data[s.pos] == '}' {
		s.pos++
		return ms, nil
	}
	for {
		s.space()
		if s.pos >= len(s.data) {
			return ms, s.fail("unexpected end of line inside an object (truncated record?)")
		}
		if s.data[s.pos] != '"' {
			return ms, s.fail("want a quoted key")
		}
		k, err := s.str()
		if err != nil {
			return ms, err
		}
		s.space()
		if s.pos >= len(s.data) || s.data[s.pos] != ':' {
			return ms, s.fail("want ':' after a key")
		}
		s.pos++
		s.space()
		// fill the member in place: building it in a temporary and copying
		// it costs a store-forwarding stall per member
		ms = append(ms, member{})
		m := &ms[len(ms)-1]
		m.key = k
		if err := s.valueInto(&m.val); err != nil {
			return ms, err
		}
		s.space()
		if s.pos >= len(s.data) {
			return ms, s.fail("unexpected end of line inside an object (truncated record?)")
		}
		switch s.data[s.pos] {
		case ',':
			s.pos++
		case '}':
			s.pos++
			return ms, nil
		default:
			return ms, s.fail("want ',' or '}'")
		}
	}
}

func (s *scanner) valueInto(v *value) error {
	if s.pos >= len(s.data) {
		return s.fail("unexpected end of line, want a value (truncated record?)")
	}
	switch c := s.data[s.pos]; {
	case c == '"':
		b, err := s.str()
		v.kind, v.b = vString, b
		return err
	case c == '{' || c == '[':
		start := s.pos
		if err := s.skip(); err != nil {
			return err
		}
		v.kind = vObject
		if c == '[' {
			v.kind = vArray
		}
		v.b = s.data[start:s.pos]
		return nil
	case c == 't':
		v.kind, v.bl = vBool, true
		return s.lit("true")
	case c == 'f':
		v.kind = vBool
		return s.lit("false")
	case c == 'n':
		v.kind = vNull
		return s.lit("null")
	case c == '-' || c >= '0' && c <= '9':
		start := s.pos
		if err := s.number(); err != nil {
			return err
		}
		v.kind, v.b = vNumber, s.data[start:s.pos]
		return nil
	}
	return s.fail("want a value")
}

func (s *scanner) lit(word string) error {
	if len(s.data)-s.pos < len(word) || string(s.data[s.pos:s.pos+len(word)]) != word {
		return s.fail("invalid literal")
	}
	s.pos += len(word)
	return nil
}

func (s *scanner) number() error {
	d := s.data
	if d[s.pos] == '-' {
		s.pos++
	}
	digits := func() int {
		n := 0
		for s.pos < len(d) && d[s.pos] >= '0' && d[s.pos] <= '9' {
			s.pos++
			n++
		}
		return n
	}
	if s.pos < len(d) && d[s.pos] == '0' {
		s.pos++
	} else if digits() == 0 {
		return s.fail("invalid number")
	}
	if s.pos < len(d) && d[s.pos] == '.' {
		s.pos++
		if digits() == 0 {
			return s.fail("invalid number")
		}
	}
	if s.pos < len(d) && (d[s.pos] == 'e' || d[s.pos] == 'E') {
		s.pos++
		if s.pos < len(d) && (d[s.pos] == '+' || d[s.pos] == '-') {
			s.pos++
		}
		if digits() == 0 {
			return s.fail("invalid number")
		}
	}
	return nil
}

// skip passes over one object or array, checking its grammar.
func (s *scanner) skip() error {
	open := s.data[s.pos]
	if open == '{' {
		s.pos++
		s.space()
		if s.pos < len(s.data) && s.data[s.pos] == '}' {
			s.pos++
			return nil
		}
		for {
			s.space()
			if s.pos >= len(s.data) || s.data[s.pos] != '"' {
				return s.fail("want a quoted key (truncated record?)")
			}
			if err := s.skipString(); err != nil {
				return err
			}
			s.space()
			if s.pos >= len(s.data) || s.data[s.pos] != ':' {
				return s.fail("want ':' after a key")
			}
			s.pos++
			s.space()
			if err := s.skipValue(); err != nil {
				return err
			}
			s.space()
			if s.pos >= len(s.data) {
				return s.fail("unexpected end of line inside an object (truncated record?)")
			}
			if s.data[s.pos] == '}' {
				s.pos++
				return nil
			}
			if s.data[s.pos] != ',' {
				return s.fail("want ',' or '}'")
			}
			s.pos++
		}
	}
	s.pos++ // '['
	s.space()
	if s.pos < len(s.data) && s.data[s.pos] == ']' {
		s.pos++
		return nil
	}
	for {
		s.space()
		if err := s.skipValue(); err != nil {
			return err
		}
		s.space()
		if s.pos >= len(s.data) {
			return s.fail("unexpected end of line inside an array (truncated record?)")
		}
		if s.data[s.pos] == ']' {
			s.pos++
			return nil
		}
		if s.data[s.pos] != ',' {
			return s.fail("want ',' or ']'")
		}
		s.pos++
	}
}

func (s *scanner) skipValue() error {
	if s.pos >= len(s.data) {
		return s.fail("unexpected end of line, want a value (truncated record?)")
	}
	switch c := s.data[s.pos]; {
	case c == '"':
		return s.skipString()
	case c == '{' || c == '[':
		return s.skip()
	case c == 't':
		return s.lit("true")
	case c == 'f':
		return s.lit("false")
	case c == 'n':
		return s.lit("null")
	case c == '-' || c >= '0' && c <= '9':
		return s.number()
	}
	return s.fail("want a value")
}

func (s *scanner) skipString() error {
	mark := len(s.scratch)
	_, err := s.str()
	s.scratch = s.scratch[:mark]
	return err
}

// str reads a quoted string at s.pos and returns its content: a slice of
// the line when it has no escapes, else the unescaped text in scratch.
func (s *scanner) str() ([]byte, error) {
	d := s.data
	s.pos++ // opening quote
	start := s.pos
	// fast path: up to the next quote, a span of plain ASCII
	if q := bytes.IndexByte(d[start:], '"'); q >= 0 {
		span := d[start : start+q]
		if plainASCII(span) {
			s.pos = start + q + 1
			return span, nil
		}
	}
	for s.pos < len(d) {
		// the common bytes in one tight loop
		for s.pos < len(d) && plain[d[s.pos]] {
			s.pos++
		}
		if s.pos >= len(d) {
			break
		}
		c := d[s.pos]
		switch {
		case c == '"':
			b := d[start:s.pos]
			s.pos++
			return b, nil
		case c == '\\':
			return s.strEscaped(start)
		case c < 0x20:
			return nil, s.fail("control character in a string")
		case c >= utf8.RuneSelf:
			r, size := utf8.DecodeRune(d[s.pos:])
			if r == utf8.RuneError && size == 1 {
				return nil, s.fail("invalid UTF-8 in a string")
			}
			s.pos += size
		default:
			s.pos++
		}
	}
	return nil, s.fail("unterminated string (truncated record?)")
}

func (s *scanner) strEscaped(start int) ([]byte, error) {
	d := s.data
	out := len(s.scratch)
	s.scratch = append(s.scratch, d[start:s.pos]...)
	for s.pos < len(d) {
		c := d[s.pos]
		switch {
		case c == '"':
			s.pos++
			return s.scratch[out:len(s.scratch):len(s.scratch)], nil
		case c == '\\':
			if s.pos+1 >= len(d) {
				return nil, s.fail("unterminated string (truncated record?)")
			}
			e := d[s.pos+1]
			s.pos += 2
			switch e {
			case '"', '\\', '/':
				s.scratch = append(s.scratch, e)
			case 'b':
				s.scratch = append(s.scratch, '\b')
			case 'f':
				s.scratch = append(s.scratch, '\f')
			case 'n':
				s.scratch = append(s.scratch, '\n')
			case 'r':
				s.scratch = append(s.scratch, '\r')
			case 't':
				s.scratch = append(s.scratch, '\t')
			case 'u':
				r, err := s.hex4()
				if err != nil {
					return nil, err
				}
				if utf16.IsSurrogate(r) {
					r2 := rune(-1)
					if s.pos+1 < len(d) && d[s.pos] == '\\' && d[s.pos+1] == 'u' {
						s.pos += 2
						if r2, err = s.hex4(); err != nil {
							return nil, err
						}
					}
					r = utf16.DecodeRune(r, r2)
				}
				s.scratch = utf8.AppendRune(s.scratch, r)
			default:
				s.pos--
				return nil, s.fail("invalid escape")
			}
		case c < 0x20:
			return nil, s.fail("control character in a string")
		default:
			s.scratch = append(s.scratch, c)
			s.pos++
		}
	}
	return nil, s.fail("unterminated string (truncated record?)")
}

func (s *scanner) hex4() (rune, error) {
	if len(s.data)-s.pos < 4 {
		return 0, s.fail("short \\u escape")
	}
	n, err := strconv.ParseUint(string(s.data[s.pos:s.pos+4]), 16, 16)
	if err != nil {
		return 0, s.fail("invalid \\u escape")
	}
	s.pos += 4
	return rune(n), nil
}

// plain marks the bytes a string holds as they are: printable ASCII other
// than the quote and the backslash.
var plain = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// plainASCII reports whether b holds only printable ASCII without a
// backslash, eight bytes at a time. It does not look for quotes: the caller
// cuts b at the closing one.
func plainASCII(b []byte) bool {
	const (
		ones  = 0x0101010101010101
		highs = 0x8080808080808080
	)
	for len(b) >= 8 {
		w := binary.LittleEndian.Uint64(b)
		// a byte >= 0x80, or a byte < 0x20 (w - 0x20 per byte borrows into
		// its high bit), or a backslash (w ^ '\\' has a zero byte)
		x := w ^ (ones * '\\')
		if w&highs != 0 || (w-ones*0x20)&^w&highs != 0 || (x-ones)&^x&highs != 0 {
			return false
		}
		b = b[8:]
	}
	for _, c := range b {
		if !plain[c] && c != '"' {
			return false
		}
	}
	return true
}

var errNotInt = errors.New("not an integer")

// parseInt parses a JSON number that must be an integer (1e3 counts).
func parseInt(b []byte) (int64, error) {
	n := int64(0)
	neg := false
	i := 0
	if len(b) > 0 && b[0] == '-' {
		neg, i = true, 1
	}
	if i == len(b) || len(b)-i > 18 {
		return parseIntSlow(b)
	}
	for ; i < len(b); i++ {
		c := b[i]
		if c < '0' || c > '9' {
			return parseIntSlow(b)
		}
		n = n*10 + int64(c-'0')
	}
	if neg {
		n = -n
	}
	return n, nil
}

func parseIntSlow(b []byte) (int64, error) {
	if n, err := strconv.ParseInt(string(b), 10, 64); err == nil {
		return n, nil
	}
	f, err := strconv.ParseFloat(string(b), 64)
	if err != nil || f != float64(int64(f)) {
		return 0, errNotInt
	}
	return int64(f), nil
}
