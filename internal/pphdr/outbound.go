package pphdr

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/pires/go-proxyproto"
)

// sameFamily returns client and local as addresses of one family, for a
// header that has room for one: both IPv4 when both are, otherwise both
// as 16-byte IPv6, an IPv4 one as IPv4-mapped (::ffff:a.b.c.d). v4 says
// which.
func sameFamily(client, local netip.AddrPort) (c, l netip.AddrPort, v4 bool) {
	ca, la := client.Addr().Unmap(), local.Addr().Unmap()
	if ca.Is4() && la.Is4() {
		return netip.AddrPortFrom(ca, client.Port()), netip.AddrPortFrom(la, local.Port()), true
	}
	ca, la = netip.AddrFrom16(ca.As16()), netip.AddrFrom16(la.As16())
	return netip.AddrPortFrom(ca, client.Port()), netip.AddrPortFrom(la, local.Port()), false
}

// TCPHeader formats the PROXY header (version 1 or 2) prism writes to a
// TCP origin before anything else: PROXY TCP4/TCP6 with the client and
// the local (accepting) address, or, when either is not an IP address (a
// client on a unix socket), v1 UNKNOWN / v2 LOCAL. tlvs are added to a v2
// header (a v1 header has no room for them).
func TCPHeader(version byte, client, local netip.AddrPort, tlvs []proxyproto.TLV) ([]byte, error) {
	h := &proxyproto.Header{Version: version, Command: proxyproto.LOCAL, TransportProtocol: proxyproto.UNSPEC}
	if client.IsValid() && local.IsValid() {
		c, l, v4 := sameFamily(client, local)
		h.Command, h.TransportProtocol = proxyproto.PROXY, proxyproto.TCPv6
		if v4 {
			h.TransportProtocol = proxyproto.TCPv4
		}
		h.SourceAddr, h.DestinationAddr = net.TCPAddrFromAddrPort(c), net.TCPAddrFromAddrPort(l)
	}
	if version == 2 && tlvs != nil {
		if err := h.SetTLVs(tlvs); err != nil {
			return nil, fmt.Errorf("PROXY v2 TLVs: %w", err)
		}
	}
	return h.Format()
}

// UDPHeader formats the PROXY v2 header with transport UDP (DGRAM) that a
// UDP session puts in front of datagrams to its origin. It is built once
// per session.
func UDPHeader(client, local netip.AddrPort) ([]byte, error) {
	c, l, v4 := sameFamily(client, local)
	tp := proxyproto.UDPv6
	if v4 {
		tp = proxyproto.UDPv4
	}
	h := &proxyproto.Header{
		Version:           2,
		Command:           proxyproto.PROXY,
		TransportProtocol: tp,
		SourceAddr:        net.UDPAddrFromAddrPort(c),
		DestinationAddr:   net.UDPAddrFromAddrPort(l),
	}
	return h.Format()
}
