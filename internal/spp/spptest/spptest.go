// Package spptest is a Simple Proxy Protocol origin for tests: a UDP echo
// server that checks every datagram's header against the byte layout
// (decoded here by hand, not with package spp, so an encoder bug cannot
// hide behind a matching decoder bug) and echoes the payload back behind the
// same header, as Cloudflare requires of SPP origins.
package spptest

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
)

// Mode says how the origin answers.
type Mode int32

const (
	// Echo replies with the received header followed by the payload.
	Echo Mode = iota
	// NoHeader replies with the bare payload (an origin that does not speak
	// SPP); a proxy must drop such replies.
	NoHeader
	// Silent never replies.
	Silent
)

// Seen is one datagram the origin accepted.
type Seen struct {
	Client, Proxy netip.AddrPort
	From          netip.AddrPort // the proxy's origin-side socket
	Payload       string
}

// Origin is a running SPP echo origin on 127.0.0.1.
type Origin struct {
	conn *net.UDPConn
	mode atomic.Int32
	bad  atomic.Int64
	done chan struct{}

	mu   sync.Mutex
	seen []Seen
	ch   chan Seen
}

// Start runs an origin until the test ends.
func Start(t testing.TB) *Origin {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	o := &Origin{conn: c, done: make(chan struct{}), ch: make(chan Seen, 1024)}
	go o.serve()
	t.Cleanup(func() { c.Close(); <-o.done })
	return o
}

// Addr is the origin's address.
func (o *Origin) Addr() netip.AddrPort { return o.conn.LocalAddr().(*net.UDPAddr).AddrPort() }

// SetMode changes how the origin answers from the next datagram on.
func (o *Origin) SetMode(m Mode) { o.mode.Store(int32(m)) }

// Bad is the number of datagrams whose header did not match the layout.
func (o *Origin) Bad() int64 { return o.bad.Load() }

// Seen returns every well-formed datagram received so far.
func (o *Origin) Seen() []Seen {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]Seen(nil), o.seen...)
}

// C delivers each well-formed datagram as it arrives (buffered; datagrams
// beyond the buffer are still recorded in Seen).
func (o *Origin) C() <-chan Seen { return o.ch }

var errLayout = errors.New("not an SPP header")

// decode checks the layout byte by byte: magic 0x56EC, two 16-byte
// addresses, two ports, all big-endian.
func decode(b []byte) (client, proxy netip.AddrPort, payload []byte, err error) {
	if len(b) < 38 || b[0] != 0x56 || b[1] != 0xEC {
		return client, proxy, nil, errLayout
	}
	var ca, pa [16]byte
	copy(ca[:], b[2:18])
	copy(pa[:], b[18:34])
	client = netip.AddrPortFrom(netip.AddrFrom16(ca).Unmap(), binary.BigEndian.Uint16(b[34:36]))
	proxy = netip.AddrPortFrom(netip.AddrFrom16(pa).Unmap(), binary.BigEndian.Uint16(b[36:38]))
	return client, proxy, b[38:], nil
}

func (o *Origin) serve() {
	defer close(o.done)
	buf := make([]byte, 65536)
	for {
		n, from, err := o.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		client, proxy, payload, err := decode(buf[:n])
		if err != nil {
			o.bad.Add(1)
			continue
		}
		s := Seen{Client: client, Proxy: proxy, From: from, Payload: string(payload)}
		o.mu.Lock()
		o.seen = append(o.seen, s)
		o.mu.Unlock()
		select {
		case o.ch <- s:
		default:
		}
		switch Mode(o.mode.Load()) {
		case Echo:
			_, _ = o.conn.WriteToUDPAddrPort(buf[:n], from)
		case NoHeader:
			_, _ = o.conn.WriteToUDPAddrPort(payload, from)
		}
	}
}
