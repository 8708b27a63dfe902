package pphdr

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net/netip"
	"strconv"
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
// speaks), and the header length, where the payload starts. v1 is
// accepted too, because nginx sends only v1, even over UDP.
func ParseUDP(b []byte) (src netip.AddrPort, n int, err error) {
	if bytes.HasPrefix(b, v2sig) {
		return parseV2(b)
	}
	return parseV1(b)
}

func parseV2(b []byte) (netip.AddrPort, int, error) {
	if len(b) < 16 {
		return netip.AddrPort{}, 0, ErrMalformed
	}
	verCmd, fam := b[12], b[13]
	n := 16 + int(binary.BigEndian.Uint16(b[14:16]))
	if verCmd>>4 != 2 || n > len(b) {
		return netip.AddrPort{}, 0, ErrMalformed
	}
	switch verCmd & 0x0F {
	case 0x0: // LOCAL: health check or the front proxy's own traffic
		return netip.AddrPort{}, n, nil
	case 0x1: // PROXY
	default:
		return netip.AddrPort{}, 0, ErrMalformed
	}
	a := b[16:n]
	switch fam >> 4 {
	case 0x1: // AF_INET
		if len(a) < 12 || !tlvsFit(a[12:]) {
			return netip.AddrPort{}, 0, ErrMalformed
		}
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte(a[0:4])), binary.BigEndian.Uint16(a[8:10])), n, nil
	case 0x2: // AF_INET6
		if len(a) < 36 || !tlvsFit(a[36:]) {
			return netip.AddrPort{}, 0, ErrMalformed
		}
		return netip.AddrPortFrom(netip.AddrFrom16([16]byte(a[0:16])).Unmap(), binary.BigEndian.Uint16(a[32:34])), n, nil
	}
	return netip.AddrPort{}, n, nil // AF_UNSPEC / AF_UNIX: no IP client
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

// parseV1 parses "PROXY TCP4|TCP6|UDP4|UDP6|UNKNOWN src dst sport dport\r\n".
func parseV1(b []byte) (netip.AddrPort, int, error) {
	end := bytes.Index(b[:min(len(b), v1Max+1)], []byte("\r\n"))
	if end < 0 {
		return netip.AddrPort{}, 0, ErrMalformed
	}
	n := end + 2
	f := bytes.Fields(b[:end]) // allocates; v1 is a trusted, rare path
	if len(f) >= 2 && string(f[1]) == "UNKNOWN" {
		return netip.AddrPort{}, n, nil
	}
	if len(f) != 6 {
		return netip.AddrPort{}, 0, ErrMalformed
	}
	a, err := netip.ParseAddr(string(f[2]))
	if err != nil {
		return netip.AddrPort{}, 0, ErrMalformed
	}
	p, err := strconv.ParseUint(string(f[4]), 10, 16)
	if err != nil {
		return netip.AddrPort{}, 0, ErrMalformed
	}
	return netip.AddrPortFrom(a.Unmap(), uint16(p)), n, nil
}
