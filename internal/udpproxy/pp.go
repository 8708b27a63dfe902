package udpproxy

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"strconv"

	"github.com/pires/go-proxyproto"

	"github.com/prismproxy/prism/internal/spp"
)

// v2sig is the 12-byte PROXY protocol v2 signature.
var v2sig = []byte{0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A}

var errInbound = errors.New("malformed inbound PROXY header")

// hasProxyHeader reports whether a datagram starts like a PROXY v2 or v1
// header. Only datagrams from trusted front proxies are looked at.
func hasProxyHeader(b []byte) bool {
	return bytes.HasPrefix(b, v2sig) || bytes.HasPrefix(b, []byte("PROXY "))
}

// parseInbound parses the PROXY header at the start of a datagram from a
// trusted front proxy, without allocating for v2. It returns the source
// address it names (invalid for LOCAL / UNKNOWN: the front proxy itself
// speaks) and the header length. v1 is accepted too, because nginx sends
// only v1, even over UDP.
func parseInbound(b []byte) (src netip.AddrPort, n int, err error) {
	if bytes.HasPrefix(b, v2sig) {
		return parseV2(b)
	}
	return parseV1(b)
}

func parseV2(b []byte) (netip.AddrPort, int, error) {
	if len(b) < 16 {
		return netip.AddrPort{}, 0, errInbound
	}
	verCmd, fam := b[12], b[13]
	n := 16 + int(binary.BigEndian.Uint16(b[14:16]))
	if verCmd>>4 != 2 || n > len(b) {
		return netip.AddrPort{}, 0, errInbound
	}
	switch verCmd & 0x0F {
	case 0x0: // LOCAL: health check or the front proxy's own traffic
		return netip.AddrPort{}, n, nil
	case 0x1: // PROXY
	default:
		return netip.AddrPort{}, 0, errInbound
	}
	a := b[16:n]
	switch fam >> 4 {
	case 0x1: // AF_INET
		if len(a) < 12 || !tlvsFit(a[12:]) {
			return netip.AddrPort{}, 0, errInbound
		}
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte(a[0:4])), binary.BigEndian.Uint16(a[8:10])), n, nil
	case 0x2: // AF_INET6
		if len(a) < 36 || !tlvsFit(a[36:]) {
			return netip.AddrPort{}, 0, errInbound
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
	end := bytes.Index(b[:min(len(b), 108)], []byte("\r\n"))
	if end < 0 {
		return netip.AddrPort{}, 0, errInbound
	}
	n := end + 2
	f := bytes.Fields(b[:end]) // allocates; v1 is a trusted, rare path
	if len(f) >= 2 && string(f[1]) == "UNKNOWN" {
		return netip.AddrPort{}, n, nil
	}
	if len(f) != 6 {
		return netip.AddrPort{}, 0, errInbound
	}
	a, err := netip.ParseAddr(string(f[2]))
	if err != nil {
		return netip.AddrPort{}, 0, errInbound
	}
	p, err := strconv.ParseUint(string(f[4]), 10, 16)
	if err != nil {
		return netip.AddrPort{}, 0, errInbound
	}
	return netip.AddrPortFrom(a.Unmap(), uint16(p)), n, nil
}

// outboundHeader returns the header a session puts in front of datagrams
// to the origin: SPP, or PROXY v2 with transport UDP (DGRAM) formatted by
// go-proxyproto. It is built once per session.
func outboundHeader(mode string, client, local netip.AddrPort) ([]byte, error) {
	switch mode {
	case ProxySimple:
		return spp.AppendHeader(make([]byte, 0, spp.HeaderLen), client, local), nil
	case ProxyV2:
		c, l := client.Addr().Unmap(), local.Addr().Unmap()
		tp := proxyproto.UDPv4
		if !c.Is4() || !l.Is4() {
			tp = proxyproto.UDPv6
			c, l = netip.AddrFrom16(c.As16()), netip.AddrFrom16(l.As16())
		}
		h := &proxyproto.Header{
			Version:           2,
			Command:           proxyproto.PROXY,
			TransportProtocol: tp,
			SourceAddr:        net.UDPAddrFromAddrPort(netip.AddrPortFrom(c, client.Port())),
			DestinationAddr:   net.UDPAddrFromAddrPort(netip.AddrPortFrom(l, local.Port())),
		}
		return h.Format()
	}
	return nil, nil
}
