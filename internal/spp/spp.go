// Package spp encodes and decodes Cloudflare's Simple Proxy Protocol (SPP),
// the fixed 38-byte header Spectrum and EdgeOne put in front of every UDP
// datagram so that an origin learns the real client of a flow:
//
//	offset  size  field
//	0       2     magic 0x56EC
//	2       16    client address (IPv6, or IPv4 as IPv4-mapped IPv6)
//	18      16    proxy address (same encoding)
//	34      2     client port
//	36      2     proxy port
//	38      ...   payload
//
// All fields are in network byte order. The origin prepends the same header
// to every reply so the proxy can tell which client the reply is for.
//
// No Go library implements it (pires/go-proxyproto#88), so this one does,
// without allocating: AppendHeader writes into a caller's buffer and Parse
// returns a sub-slice of its input.
package spp

import (
	"encoding/binary"
	"errors"
	"net/netip"
)

// Magic is the first two bytes of every SPP header.
const Magic uint16 = 0x56EC

// HeaderLen is the size of an SPP header.
const HeaderLen = 38

// Errors returned by Parse.
var (
	ErrShort    = errors.New("spp: datagram shorter than the 38-byte header")
	ErrBadMagic = errors.New("spp: magic is not 0x56EC")
)

// AppendHeader appends the SPP header for a datagram from client, received
// by the proxy at proxy, to dst and returns the extended slice. IPv4
// addresses are written IPv4-mapped; an invalid address is written as the
// unspecified address (::). It allocates only if dst lacks capacity.
func AppendHeader(dst []byte, client, proxy netip.AddrPort) []byte {
	var h [HeaderLen]byte
	PutHeader(h[:], client, proxy)
	return append(dst, h[:]...)
}

// PutHeader writes the header into b[:HeaderLen]. It panics if b is shorter,
// like binary.BigEndian.PutUint16. It is the in-place form the UDP proxy
// uses to fill the headroom it keeps in front of a received payload.
func PutHeader(b []byte, client, proxy netip.AddrPort) {
	_ = b[HeaderLen-1]
	binary.BigEndian.PutUint16(b[0:2], Magic)
	ca, pa := as16(client.Addr()), as16(proxy.Addr())
	copy(b[2:18], ca[:])
	copy(b[18:34], pa[:])
	binary.BigEndian.PutUint16(b[34:36], client.Port())
	binary.BigEndian.PutUint16(b[36:38], proxy.Port())
}

func as16(a netip.Addr) [16]byte {
	if !a.IsValid() {
		return [16]byte{}
	}
	return a.As16()
}

// Parse splits an SPP datagram into the addresses of its header and the
// payload, which aliases b. IPv4-mapped addresses are returned as IPv4, so a
// header written for 192.0.2.1 parses back as 192.0.2.1, not ::ffff:192.0.2.1.
func Parse(b []byte) (client, proxy netip.AddrPort, payload []byte, err error) {
	if len(b) < HeaderLen {
		return client, proxy, nil, ErrShort
	}
	if binary.BigEndian.Uint16(b[0:2]) != Magic {
		return client, proxy, nil, ErrBadMagic
	}
	ca := netip.AddrFrom16([16]byte(b[2:18])).Unmap()
	pa := netip.AddrFrom16([16]byte(b[18:34])).Unmap()
	client = netip.AddrPortFrom(ca, binary.BigEndian.Uint16(b[34:36]))
	proxy = netip.AddrPortFrom(pa, binary.BigEndian.Uint16(b[36:38]))
	return client, proxy, b[HeaderLen:], nil
}

// Valid reports whether b starts with an SPP header (length and magic).
func Valid(b []byte) bool {
	return len(b) >= HeaderLen && binary.BigEndian.Uint16(b[0:2]) == Magic
}
