package pphdr

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"net/netip"

	"github.com/pires/go-proxyproto"
)

// v1Max is the length of the longest PROXY v1 line, CRLF included.
const v1Max = 107

// BufferV1 makes sure a PROXY v1 line that arrives in several segments is
// buffered whole before ReadTCP sees it: go-proxyproto rejects a v1 header
// that does not come in one read, which would turn a slow but timely
// header into an invalid one. It reads until the buffer holds the line's
// LF, 107 bytes (the longest v1 line) or bytes that cannot start a v1
// header, or a read fails (at a deadline: the header did not arrive in
// time), and returns that read's error.
func BufferV1(br *bufio.Reader) error {
	for {
		b, _ := br.Peek(br.Buffered())
		if k := min(len(b), 5); string(b[:k]) != "PROXY"[:k] || bytes.IndexByte(b, '\n') >= 0 || len(b) >= v1Max {
			return nil
		}
		if _, err := br.Peek(len(b) + 1); err != nil {
			return err
		}
	}
}

// ReadTCP reads one PROXY v1/v2 header from br, leaving br at the first
// byte after it. go-proxyproto splits a v2 header's TLVs only when asked,
// so a TLV whose length runs past the header's end would be accepted: it
// is checked here, and such a header is malformed. Without a header at all
// the error is proxyproto.ErrNoProxyProtocol.
func ReadTCP(br *bufio.Reader) (*proxyproto.Header, error) {
	h, err := proxyproto.Read(br)
	if err != nil {
		return nil, err
	}
	if h.Version == 2 {
		if _, err := h.TLVs(); err != nil {
			return nil, fmt.Errorf("PROXY v2 header: %w", err)
		}
	}
	return h, nil
}

// TCPSource is the client a header read by ReadTCP names: its source
// address, IPv4-mapped addresses unmapped. ok is false for a LOCAL or
// UNKNOWN header and for one without an IP source (AF_UNIX): the peer
// speaks for itself.
//
// A v2 header of a UDP family (DGRAM) names its client as a TCP one does:
// its address block is the same, and ParseUDP reads both kinds too, so one
// header names one client on both transports. Falling back to the socket
// peer (the spec's UNSPEC mode, which PROXY with UNSPEC itself does not
// get: ReadTCP refuses it) made the front the client of every connection
// it relayed, without a word.
func TCPSource(h *proxyproto.Header) (src netip.AddrPort, ok bool) {
	if !h.Command.IsProxy() {
		return netip.AddrPort{}, false
	}
	var ap netip.AddrPort
	switch a := h.SourceAddr.(type) {
	case *net.TCPAddr:
		ap = a.AddrPort()
	case *net.UDPAddr:
		ap = a.AddrPort()
	default:
		return netip.AddrPort{}, false
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), true
}
