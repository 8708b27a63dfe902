package pphdr

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net/netip"
	"strconv"

	"github.com/pires/go-proxyproto"
)

// v2sig is the 12-byte PROXY protocol v2 signature.
var v2sig = []byte{0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A}

// ErrMalformed is ParseUDP's error: the datagram starts like a PROXY
// header but is not a whole, valid one.
var ErrMalformed = errors.New("malformed inbound PROXY header")

// HasUDPHeader reports whether a datagram starts like a PROXY v2 or v1
// header.
func HasUDPHeader(b []byte) bool {
	return bytes.HasPrefix(b, v2sig) || bytes.HasPrefix(b, []byte("PROXY "))
}

// ParseUDP parses the PROXY header at the start of a datagram from a
// trusted front proxy, without allocating for v2. It returns the source
// address it names, IPv4-mapped addresses unmapped (invalid for LOCAL /
// UNKNOWN, or an address family without an IP: the front proxy itself
// speaks), the header length, where the payload starts, and whether the
// header is a v2 LOCAL one: the front sent the datagram on its own behalf
// (a health check), which the TCP path does not take for a client either.
// A v1 UNKNOWN header is not LOCAL: the peer is the client, as on TCP.
// v1 is accepted too, because nginx sends only v1, even over UDP.
//
// A header is valid by the rules ReadTCP applies to a stream (those of
// go-proxyproto, and a v2 TLV vector of whole entries): one header means
// the same on both transports, and one that either refuses is malformed
// here too, never read for a client address. In v1 that is the exact
// "PROXY TCP4|TCP6 src dst sport dport" line (single spaces, addresses of
// the family named, ports 0-65535 without a leading zero, at most 107
// bytes, CRLF; anything may follow UNKNOWN); in v2 the version and
// command bytes 0x20 (LOCAL) and 0x21 (PROXY), the defined family and
// transport bytes (PROXY not with UNSPEC), an address block of the
// family's length (a shorter one is skipped for LOCAL) and a length of at
// most proxyproto.MaxV2HeaderSize. Stream and datagram transports are
// both accepted: nginx names its UDP clients TCP4 or TCP6.
func ParseUDP(b []byte) (src netip.AddrPort, n int, local bool, err error) {
	if bytes.HasPrefix(b, v2sig) {
		return parseV2(b)
	}
	src, n, err = parseV1(b)
	return src, n, false, err
}

// v2AddrLen is the length of the address block of each defined v2
// address family and transport byte (spec section 2.2); other bytes are
// not in the map.
var v2AddrLen = map[byte]int{
	0x00: 0,   // UNSPEC
	0x11: 12,  // TCP over IPv4
	0x12: 12,  // UDP over IPv4
	0x21: 36,  // TCP over IPv6
	0x22: 36,  // UDP over IPv6
	0x31: 216, // UNIX stream
	0x32: 216, // UNIX datagram
}

func parseV2(b []byte) (netip.AddrPort, int, bool, error) {
	if len(b) < 16 {
		return netip.AddrPort{}, 0, false, ErrMalformed
	}
	verCmd, fam := b[12], b[13]
	length := int(binary.BigEndian.Uint16(b[14:16]))
	n := 16 + length
	if n > len(b) || length > int(proxyproto.MaxV2HeaderSize) {
		return netip.AddrPort{}, 0, false, ErrMalformed
	}
	var local bool
	switch verCmd {
	case 0x20: // LOCAL: health check or the front proxy's own traffic
		local = true
	case 0x21: // PROXY
	default:
		return netip.AddrPort{}, 0, false, ErrMalformed
	}
	alen, ok := v2AddrLen[fam]
	if !ok || fam == 0x00 && !local {
		return netip.AddrPort{}, 0, false, ErrMalformed
	}
	a := b[16:n]
	if len(a) < alen {
		if local { // a LOCAL block is discarded, whatever its length
			return netip.AddrPort{}, n, true, nil
		}
		return netip.AddrPort{}, 0, false, ErrMalformed
	}
	if !tlvsFit(a[alen:]) {
		return netip.AddrPort{}, 0, false, ErrMalformed
	}
	if local {
		return netip.AddrPort{}, n, true, nil
	}
	switch fam >> 4 {
	case 0x1: // AF_INET
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte(a[0:4])), binary.BigEndian.Uint16(a[8:10])), n, false, nil
	case 0x2: // AF_INET6
		return netip.AddrPortFrom(netip.AddrFrom16([16]byte(a[0:16])).Unmap(), binary.BigEndian.Uint16(a[32:34])), n, false, nil
	}
	return netip.AddrPort{}, n, false, nil // AF_UNIX: no IP client
}

// tlvsFit reports whether b, the TLV vector after a v2 header's
// addresses, is a whole number of type-length-value entries: a length that
// runs past the header's end makes the header malformed.
func tlvsFit(b []byte) bool {
	for len(b) > 0 {
		if len(b) < 3 {
			return false
		}
		n := 3 + int(binary.BigEndian.Uint16(b[1:3]))
		if n > len(b) {
			return false
		}
		b = b[n:]
	}
	return true
}

// parseV1 parses "PROXY TCP4|TCP6 src dst sport dport\r\n" and
// "PROXY UNKNOWN...\r\n", as go-proxyproto does for a stream.
func parseV1(b []byte) (netip.AddrPort, int, error) {
	lf := bytes.IndexByte(b[:min(len(b), v1Max)], '\n')
	if lf < 1 || b[lf-1] != '\r' { // the first LF ends the line, after a CR
		return netip.AddrPort{}, 0, ErrMalformed
	}
	n := lf + 1
	var f [6][]byte
	k, more := splitV1(b[:lf-1], &f)
	if k < 2 || string(f[0]) != "PROXY" {
		return netip.AddrPort{}, 0, ErrMalformed
	}
	var v6 bool
	switch string(f[1]) {
	case "UNKNOWN": // the rest of the line is ignored
		return netip.AddrPort{}, n, nil
	case "TCP4":
	case "TCP6":
		v6 = true
	default:
		return netip.AddrPort{}, 0, ErrMalformed
	}
	if k != 6 || more {
		return netip.AddrPort{}, 0, ErrMalformed
	}
	src, ok1 := v1Addr(f[2], v6)
	_, ok2 := v1Addr(f[3], v6)
	sport, ok3 := v1Port(f[4])
	_, ok4 := v1Port(f[5])
	if !ok1 || !ok2 || !ok3 || !ok4 {
		return netip.AddrPort{}, 0, ErrMalformed
	}
	return netip.AddrPortFrom(src.Unmap(), sport), n, nil
}

// splitV1 splits a v1 line at single spaces (an empty field between two)
// into f, and reports how many fields it holds and whether there are more
// than f has room for.
func splitV1(line []byte, f *[6][]byte) (k int, more bool) {
	for {
		i := bytes.IndexByte(line, ' ')
		if k == len(f) {
			return k, true
		}
		if i < 0 {
			f[k] = line
			return k + 1, false
		}
		f[k] = line[:i]
		k++
		line = line[i+1:]
	}
}

// v1Addr parses a v1 address of the family the line names: IPv4 for TCP4,
// IPv6 (IPv4-mapped included) for TCP6, never with a zone.
func v1Addr(b []byte, v6 bool) (netip.Addr, bool) {
	a, err := netip.ParseAddr(string(b))
	if err != nil || a.Zone() != "" || a.Is6() != v6 {
		return netip.Addr{}, false
	}
	return a, true
}

// v1Port parses a v1 port: decimal 0-65535 without sign or leading zero.
func v1Port(b []byte) (uint16, bool) {
	if len(b) > 1 && b[0] == '0' {
		return 0, false
	}
	p, err := strconv.ParseUint(string(b), 10, 16)
	return uint16(p), err == nil
}
