package testpeer

import (
	"io"
	"net"
	"net/netip"
	"sync"
	"testing"
)

// The Go origins below stand in where no real program is needed: a TCP or
// UDP server on a fresh loopback port (or a unix socket) that lives until
// the test ends (cleanup closes it and waits for its goroutines).

// Serve runs handler for every connection to a fresh loopback TCP listener
// and returns its address. The connection is closed when handler returns.
func Serve(t testing.TB, handler func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testpeer: listen: %v", err)
	}
	ServeListener(t, ln, handler)
	return ln.Addr().String()
}

// ServeListener runs handler for every connection accepted on ln until
// the test ends; cleanup closes ln and waits for the handlers.
func ServeListener(t testing.TB, ln net.Listener, handler func(net.Conn)) {
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				handler(c)
			})
		}
	})
}

// Echo is a TCP origin that echoes every connection until EOF, then closes.
func Echo(t testing.TB) string {
	t.Helper()
	return Serve(t, func(c net.Conn) { _, _ = io.Copy(c, c) })
}

// EchoUnix is an echo origin listening on a unix socket at path.
func EchoUnix(t testing.TB, path string) {
	t.Helper()
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatalf("testpeer: listen: %v", err)
	}
	ServeListener(t, ln, func(c net.Conn) { _, _ = io.Copy(c, c) })
}

// Sink is a TCP origin that reads until EOF and never writes: it keeps its
// end open for as long as the peer keeps its own.
func Sink(t testing.TB) string {
	t.Helper()
	return Serve(t, func(c net.Conn) { _, _ = io.Copy(io.Discard, c) })
}

// ClosedPort returns a loopback TCP address with nothing listening.
func ClosedPort(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testpeer: listen: %v", err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// ServeUDP runs handler for every datagram to a fresh loopback UDP socket
// and returns the socket. b is valid only during the call; handler replies
// through c.
func ServeUDP(t testing.TB, handler func(c *net.UDPConn, b []byte, from netip.AddrPort)) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatalf("testpeer: listen udp: %v", err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 65536)
		for {
			n, from, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			handler(c, buf[:n], from)
		}
	}()
	t.Cleanup(func() { c.Close(); <-done })
	return c
}

// UDPAddr is the address of a socket from ServeUDP.
func UDPAddr(c *net.UDPConn) netip.AddrPort { return c.LocalAddr().(*net.UDPAddr).AddrPort() }

// UDPEcho is a UDP origin that echoes every datagram, after a prefix, and
// keeps a copy of each on Got (while Got has room).
type UDPEcho struct {
	Got  chan []byte
	conn *net.UDPConn
}

// StartUDPEcho starts a UDPEcho that puts prefix before every reply.
func StartUDPEcho(t testing.TB, prefix string) *UDPEcho {
	t.Helper()
	o := &UDPEcho{Got: make(chan []byte, 4096)}
	out := make([]byte, 0, 65536)
	o.conn = ServeUDP(t, func(c *net.UDPConn, b []byte, from netip.AddrPort) {
		select {
		case o.Got <- append([]byte(nil), b...):
		default:
		}
		out = append(append(out[:0], prefix...), b...)
		_, _ = c.WriteToUDPAddrPort(out, from)
	})
	return o
}

// Addr is the origin's address.
func (o *UDPEcho) Addr() netip.AddrPort { return UDPAddr(o.conn) }

// QuietUDPEcho is a UDP echo origin that keeps nothing and allocates
// nothing per datagram (for load).
func QuietUDPEcho(t testing.TB) netip.AddrPort {
	t.Helper()
	return UDPAddr(ServeUDP(t, func(c *net.UDPConn, b []byte, from netip.AddrPort) {
		_, _ = c.WriteToUDPAddrPort(b, from)
	}))
}
