package render

import (
	"bytes"
	"crypto/rand"
	mrand "math/rand/v2"
	"time"
	"unicode/utf8"
)

const hexDigits = "0123456789abcdef"

// jsonSafe marks the bytes that appear in a JSON string unescaped: the
// printable ASCII ones but the double quote and the backslash. It is
// encoding/json's safeSet: HTML characters (<, >, &) are NOT escaped. That
// is a deliberate choice: log records are read by log tools and people,
// not embedded in HTML, and "\u003c" in a ClientTlsClientHelloServerName
// would only confuse a grep. The output equals json.Encoder with
// SetEscapeHTML(false), byte for byte (tested). Bytes from utf8.RuneSelf
// up are not marked: they start or continue a multi-byte sequence, which
// the slow path checks. The table has 256 entries so that a byte indexes
// it without a bounds check.
var jsonSafe = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// AppendJSONString appends s as a quoted JSON string. Invalid UTF-8 becomes
// U+FFFD and U+2028/U+2029 are escaped, as encoding/json does.
//
// Nearly every string in a record is short printable ASCII (an app id,
// "tcp", "UNKNOWN", an address), so the first loop only looks for a byte
// that needs care and the string goes out in one piece when there is
// none.
func AppendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if !jsonSafe[s[i]] {
			return appendJSONStringFrom(b, s, i)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// appendJSONStringFrom is AppendJSONString for an s whose bytes before i
// need no escaping.
func appendJSONStringFrom(b []byte, s string, i int) []byte {
	b = append(b, '"')
	start := 0
	for i < len(s) {
		c := s[i]
		if c < utf8.RuneSelf {
			if jsonSafe[c] {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '\\', '"':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// csvNeedsQuote reports whether a CSV cell must be quoted (RFC 4180: it
// contains a comma, a double quote or a line break), or starts with a space
// or a tab (which some readers would trim).
func csvNeedsQuote(s []byte) bool {
	if len(s) == 0 {
		return false
	}
	if s[0] == ' ' || s[0] == '\t' {
		return true
	}
	for _, c := range s {
		switch c {
		case ',', '"', '\r', '\n':
			return true
		}
	}
	return false
}

// AppendCSVField appends s as one RFC 4180 cell: quoted when it has to be,
// with embedded quotes doubled.
func AppendCSVField(b []byte, s string) []byte {
	start := len(b)
	b = append(b, s...)
	return quoteCSVInPlace(b, start, nil)
}

// quoteCSVInPlace quotes the cell b[start:] if it needs quoting: for
// csvNeedsQuote's reasons, or because it contains delim, a job's own field
// delimiter (nil: the comma alone). Without that a "|" in an app id, or
// the colons of an address with ":", would split the row.
func quoteCSVInPlace(b []byte, start int, delim []byte) []byte {
	cell := b[start:]
	if !csvNeedsQuote(cell) && (len(delim) == 0 || !bytes.Contains(cell, delim)) {
		return b
	}
	quotes := 0
	for _, c := range cell {
		if c == '"' {
			quotes++
		}
	}
	n := len(cell)
	extra := quotes + 2
	for range extra {
		b = append(b, 0)
	}
	// Shift the cell right, doubling quotes, from the end.
	w := len(b) - 1
	b[w] = '"'
	w--
	for r := start + n - 1; r >= start; r-- {
		b[w] = b[r]
		w--
		if b[r] == '"' {
			b[w] = '"'
			w--
		}
	}
	b[w] = '"'
	return b
}

// seedRandom fills seed from the OS random source.
func seedRandom(seed []byte) {
	_, _ = rand.Read(seed)
}

// newUUIDv4 fills u with a random (version 4, RFC 9562 variant) UUID.
func newUUIDv4(rng *mrand.ChaCha8, u *[16]byte) {
	_, _ = rng.Read(u[:])
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
}

// appendUUID writes u in the 8-4-4-4-12 hex form.
func appendUUID(b []byte, u *[16]byte) []byte {
	for i, c := range u {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			b = append(b, '-')
		}
		b = append(b, hexDigits[c>>4], hexDigits[c&0xf])
	}
	return b
}

// appendUTCSeconds writes t in UTC as "2006-01-02T15:04:05" and, with
// micro, ".000000", then "Z": the EdgeOne and CloudConnexa layouts. It is
// time.AppendFormat's output for those layouts without parsing the layout
// for every field (the parse was a fifth of rendering an edgeone_l4 or
// cloudconnexa record: BenchmarkRender's profile). Years outside 0–9999
// go through AppendFormat, which knows how to write them.
func appendUTCSeconds(b []byte, t time.Time, micro bool) []byte {
	t = t.UTC()
	y, mo, d := t.Date()
	if y < 0 || y > 9999 {
		if micro {
			return t.AppendFormat(b, "2006-01-02T15:04:05.000000Z")
		}
		return t.AppendFormat(b, "2006-01-02T15:04:05Z")
	}
	h, mi, s := t.Clock()
	b = append(b, byte('0'+y/1000), byte('0'+y/100%10), byte('0'+y/10%10), byte('0'+y%10), '-',
		byte('0'+int(mo)/10), byte('0'+int(mo)%10), '-', byte('0'+d/10), byte('0'+d%10), 'T',
		byte('0'+h/10), byte('0'+h%10), ':', byte('0'+mi/10), byte('0'+mi%10), ':', byte('0'+s/10), byte('0'+s%10))
	if micro {
		us := t.Nanosecond() / 1000
		b = append(b, '.', byte('0'+us/100000), byte('0'+us/10000%10), byte('0'+us/1000%10),
			byte('0'+us/100%10), byte('0'+us/10%10), byte('0'+us%10))
	}
	return append(b, 'Z')
}
