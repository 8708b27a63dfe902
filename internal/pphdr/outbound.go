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

// tcpPair and udpPair hold the two addresses of one header and their
// bytes: go-proxyproto takes net.Addr values, and one allocation for both
// (instead of one per address and per IP slice) keeps the per-connection
// cost down.
type (
	tcpPair struct {
		ip [2][16]byte
		a  [2]net.TCPAddr
	}
	udpPair struct {
		ip [2][16]byte
		a  [2]net.UDPAddr
	}
)

// ipsInto writes the addresses of client and local (of one family, v4 or
// not) into buf and returns them as net.IPs over it: 4 bytes for IPv4, 16
// for IPv6.
func ipsInto(buf *[2][16]byte, client, local netip.AddrPort, v4 bool) (c, l net.IP) {
	if v4 {
		c4, l4 := client.Addr().As4(), local.Addr().As4()
		return append(buf[0][:0], c4[:]...), append(buf[1][:0], l4[:]...)
	}
	buf[0], buf[1] = client.Addr().As16(), local.Addr().As16()
	return buf[0][:], buf[1][:]
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
		p := new(tcpPair)
		ci, li := ipsInto(&p.ip, c, l, v4)
		p.a = [2]net.TCPAddr{{IP: ci, Port: int(c.Port())}, {IP: li, Port: int(l.Port())}}
		h.Command, h.TransportProtocol = proxyproto.PROXY, proxyproto.TCPv6
		if v4 {
			h.TransportProtocol = proxyproto.TCPv4
		}
		h.SourceAddr, h.DestinationAddr = &p.a[0], &p.a[1]
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
	p := new(udpPair)
	ci, li := ipsInto(&p.ip, c, l, v4)
	p.a = [2]net.UDPAddr{{IP: ci, Port: int(c.Port())}, {IP: li, Port: int(l.Port())}}
	h := &proxyproto.Header{Version: 2, Command: proxyproto.PROXY, TransportProtocol: proxyproto.UDPv6,
		SourceAddr: &p.a[0], DestinationAddr: &p.a[1]}
	if v4 {
		h.TransportProtocol = proxyproto.UDPv4
	}
	return h.Format()
}
