package tlsedge

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

const (
	recordHeaderLen   = 5
	maxPlaintext      = 1 << 14             // TLSPlaintext limit: what a client puts in one record
	maxRecordPayload  = maxPlaintext + 2048 // TLSCiphertext limit, as crypto/tls reads records
	maxHandshakeBytes = 1 << 16             // crypto/tls refuses larger handshake messages too
	helloBufSize      = 2048                // most ClientHellos (even with ML-KEM key shares) fit
	// maxHelloWire bounds the bytes a connection may send, record headers
	// included, before its ClientHello is complete: the largest hello
	// crypto/tls takes (a 4-byte header and maxHandshakeBytes) in full
	// records, as clients send them (65,565 bytes): the edge reads every
	// such hello that crypto/tls would accept. Counting only handshake bytes let a hello sent as
	// 1-byte records (6 wire bytes per byte) hold about 0.6 MB per
	// connection.
	maxHelloWire     = 4 + maxHandshakeBytes + recordHeaderLen*((4+maxHandshakeBytes+maxPlaintext-1)/maxPlaintext)
	typeHandshake    = 0x16
	typeClientHello  = 0x01
	extServerName    = 0
	extSupportedVers = 43
	// maxServerNameLen is the longest host name DNS allows in text form
	// (255 octets on the wire), a trailing dot aside. A longer SNI names
	// no host at all; it is refused (errInvalidSNI), never cut to fit: a
	// cut name could match sni_allow or a route that the full name, which
	// the origin still receives, does not.
	maxServerNameLen = 253
)

var (
	// errNotTLS: the first bytes are not a TLS handshake record.
	errNotTLS = errors.New("not a TLS handshake record")
	// errBadHello: a TLS record whose ClientHello is malformed.
	errBadHello = errors.New("malformed ClientHello")
	// errHelloTooLarge: the ClientHello is not complete within maxHelloWire
	// bytes on the wire. It is a malformed hello (errors.Is errBadHello).
	errHelloTooLarge = fmt.Errorf("%w: not complete within %d bytes on the wire", errBadHello, maxHelloWire)
	// errInvalidSNI: a well-formed ClientHello whose server name cannot be
	// a host name (errSNITooLong, errSNINotASCII wrap it). The edge
	// refuses it with 400 INVALID_SNI in every mode. It is not an
	// errBadHello, which passthrough lets through.
	errInvalidSNI = errors.New("server name cannot be a host name")
	// errSNITooLong: the name is longer than maxServerNameLen.
	errSNITooLong = fmt.Errorf("%w: longer than the %d bytes of a DNS name", errInvalidSNI, maxServerNameLen)
	// errSNINotASCII: the name holds a byte that is not ASCII. RFC 6066
	// host names are ASCII (an IDN is sent as its A-label, "xn--…"); a
	// non-ASCII name would be matched after a Unicode case mapping
	// (U+212A KELVIN SIGN folds to "k") by sni_allow, the routes or the
	// certificates while the origin receives other bytes than the name
	// checked.
	errSNINotASCII = fmt.Errorf("%w: not ASCII (host names are sent as A-labels)", errInvalidSNI)
)

// clientHello is what the edge needs from a ClientHello before any
// handshake: the SNI and the highest version offered.
type clientHello struct {
	serverName string // as sent (ASCII, at most maxServerNameLen bytes but a trailing dot; else errInvalidSNI, for the log); "" none
	maxVersion uint16 // highest version offered (supported_versions, else legacy_version)
}

// readClientHello reads from r until it holds one complete ClientHello, and
// returns it with every byte read so far (to be replayed). On error the
// bytes read so far are still returned: errNotTLS and errBadHello say the
// stream is something else; errInvalidSNI comes with the hello, its
// serverName (cut to maxServerNameLen bytes, valid UTF-8) for the log
// only; any other error comes from r.
func readClientHello(r io.Reader) (clientHello, []byte, error) {
	buf := make([]byte, 0, helloBufSize)
	// need makes sure buf holds at least n bytes.
	need := func(n int) error {
		if n > maxHelloWire {
			return errHelloTooLarge
		}
		for len(buf) < n {
			if cap(buf) < n {
				nb := make([]byte, len(buf), min(max(n, 2*cap(buf)), maxHelloWire))
				copy(nb, buf)
				buf = nb
			}
			m, err := r.Read(buf[len(buf):cap(buf)])
			buf = buf[:len(buf)+m]
			if err != nil && len(buf) < n {
				if err == io.EOF {
					err = io.ErrUnexpectedEOF
				}
				return err
			}
		}
		return nil
	}

	var hs []byte   // the handshake message, assembled across records
	var joined bool // hs is a copy (the message spans records)
	pos := 0
	for {
		if err := need(pos + recordHeaderLen); err != nil {
			if len(buf) > pos && !plausibleHeader(buf[pos:]) {
				if pos == 0 {
					return clientHello{}, buf, errNotTLS
				}
				return clientHello{}, buf, errBadHello
			}
			return clientHello{}, buf, err
		}
		h := buf[pos : pos+recordHeaderLen]
		if !plausibleHeader(h) {
			if pos == 0 {
				return clientHello{}, buf, errNotTLS
			}
			return clientHello{}, buf, errBadHello
		}
		n := int(binary.BigEndian.Uint16(h[3:5]))
		if n == 0 || n > maxRecordPayload {
			return clientHello{}, buf, errBadHello
		}
		if err := need(pos + recordHeaderLen + n); err != nil {
			return clientHello{}, buf, err
		}
		frag := buf[pos+recordHeaderLen : pos+recordHeaderLen+n]
		pos += recordHeaderLen + n
		switch {
		case hs == nil:
			hs = frag
		case !joined:
			hs = append(append(make([]byte, 0, len(hs)+len(frag)), hs...), frag...)
			joined = true
		default:
			hs = append(hs, frag...)
		}
		if len(hs) < 4 {
			continue
		}
		if hs[0] != typeClientHello {
			return clientHello{}, buf, errBadHello
		}
		msgLen := int(hs[1])<<16 | int(hs[2])<<8 | int(hs[3])
		if msgLen > maxHandshakeBytes {
			return clientHello{}, buf, errBadHello
		}
		if len(hs) >= 4+msgLen {
			ch, err := parseClientHello(hs[4 : 4+msgLen])
			if err == errBadHello {
				return clientHello{}, buf, err
			}
			return ch, buf, err
		}
	}
}

// plausibleHeader reports whether b (at least one byte) starts like a TLS
// handshake record: type 22, major version 3.
func plausibleHeader(b []byte) bool {
	if b[0] != typeHandshake {
		return false
	}
	return len(b) < 2 || b[1] == 3
}

// parseClientHello parses the body of a ClientHello (after the 4-byte
// handshake header). It checks every length against the bytes present.
// It returns errBadHello, or errInvalidSNI with the hello (see
// readClientHello).
func parseClientHello(b []byte) (clientHello, error) {
	var ch clientHello
	var sniErr error // errInvalidSNI, once the rest is known to be well formed
	seenSNI := false
	if len(b) < 2+32+1 {
		return ch, errBadHello
	}
	ch.maxVersion = binary.BigEndian.Uint16(b)
	b = b[2+32:]
	// legacy_session_id
	sid := int(b[0])
	if len(b) < 1+sid+2 {
		return ch, errBadHello
	}
	b = b[1+sid:]
	// cipher_suites
	cs := int(binary.BigEndian.Uint16(b))
	if len(b) < 2+cs+1 {
		return ch, errBadHello
	}
	b = b[2+cs:]
	// legacy_compression_methods
	cm := int(b[0])
	if len(b) < 1+cm {
		return ch, errBadHello
	}
	b = b[1+cm:]
	if len(b) == 0 {
		return ch, nil // no extensions (SSLv3-era hello)
	}
	if len(b) < 2 {
		return ch, errBadHello
	}
	el := int(binary.BigEndian.Uint16(b))
	b = b[2:]
	if len(b) < el {
		return ch, errBadHello
	}
	b = b[:el]
	for len(b) > 0 {
		if len(b) < 4 {
			return ch, errBadHello
		}
		typ := binary.BigEndian.Uint16(b)
		n := int(binary.BigEndian.Uint16(b[2:]))
		if len(b) < 4+n {
			return ch, errBadHello
		}
		data := b[4 : 4+n]
		b = b[4+n:]
		switch typ {
		case extServerName:
			// A second server_name extension is malformed, as crypto/tls
			// has it: an origin reading the other one would be routed by
			// a name the edge did not check.
			name, err := parseServerName(data)
			if err == errBadHello || seenSNI {
				return ch, errBadHello
			}
			ch.serverName, sniErr, seenSNI = name, err, true
		case extSupportedVers:
			if len(data) < 1 || int(data[0]) != len(data)-1 || data[0]%2 != 0 {
				return ch, errBadHello
			}
			var best uint16
			for v := data[1:]; len(v) >= 2; v = v[2:] {
				x := binary.BigEndian.Uint16(v)
				if x&0x0f0f == 0x0a0a { // GREASE
					continue
				}
				best = max(best, x)
			}
			if best != 0 {
				ch.maxVersion = best
			}
		}
	}
	return ch, sniErr
}

// parseServerName returns the host_name entry of a server_name extension
// ("" none), or errBadHello, also for a second host_name (RFC 6066, and
// crypto/tls, refuse one). A name longer than maxServerNameLen comes with
// errSNITooLong, cut to that length for the log; a name that is not ASCII
// with errSNINotASCII (invalid UTF-8 replaced, for the log).
func parseServerName(d []byte) (string, error) {
	if len(d) < 2 {
		return "", errBadHello
	}
	l := int(binary.BigEndian.Uint16(d))
	d = d[2:]
	if len(d) != l {
		return "", errBadHello
	}
	var name []byte
	found := false
	for len(d) > 0 {
		if len(d) < 3 {
			return "", errBadHello
		}
		typ := d[0]
		n := int(binary.BigEndian.Uint16(d[1:]))
		if len(d) < 3+n {
			return "", errBadHello
		}
		if typ == 0 { // host_name
			if found {
				return "", errBadHello
			}
			name, found = d[3:3+n], true
		}
		d = d[3+n:]
	}
	var err error
	if len(bytes.TrimSuffix(name, []byte("."))) > maxServerNameLen {
		name, err = name[:maxServerNameLen], errSNITooLong
	} else if !isASCII(name) {
		err = errSNINotASCII
	}
	return strings.ToValidUTF8(string(name), string(utf8.RuneError)), err
}

func isASCII(b []byte) bool {
	for _, c := range b {
		if c >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// normName is the form names are compared in: ASCII lower case, no
// trailing dot. Only A-Z are folded: strings.ToLower would also map
// non-ASCII letters (U+212A KELVIN SIGN to "k"), so a name other than the
// one matched could pass sni_allow or a route. It allocates only when
// there is an upper-case letter to fold.
func normName(s string) string {
	s = strings.TrimSuffix(s, ".")
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if 'A' <= b[j] && b[j] <= 'Z' {
					b[j] += 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}

// nameMatches reports whether name (normalised) matches pattern
// (normalised): equal, or pattern "*.rest" and name one label under rest.
func nameMatches(pattern, name string) bool {
	if pattern == name {
		return true
	}
	if rest, ok := strings.CutPrefix(pattern, "*."); ok {
		label, parent, found := strings.Cut(name, ".")
		return found && label != "" && parent == rest
	}
	return false
}
