package udpproxy

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"github.com/prismproxy/prism/internal/event"
	"github.com/prismproxy/prism/internal/testpeer"
)

// TestSocketsPerPort: a listener with udp.sockets 4 binds four
// SO_REUSEPORT sockets on one port; datagrams from many clients reach
// every one of them (the kernel spreads clients by 4-tuple hash), each
// client keeps one session whichever socket its datagrams arrive on, and
// every reply comes back to the client that asked.
func TestSocketsPerPort(t *testing.T) {
	const sockets, clients, rounds = 4, 64, 5
	o := testpeer.StartUDPEcho(t, "")
	em, reg := newCollector(), new(event.Registry)
	s := startServer(t, App{Pool: staticPool(t, o.Addr().String()), UDP: Config{Sockets: sockets}}, em, reg)
	if len(s.listeners) != sockets || len(s.Addrs()) != 1 {
		t.Fatalf("%d sockets, %d addresses; want %d sockets on 1 address", len(s.listeners), len(s.Addrs()), sockets)
	}
	for _, l := range s.listeners {
		if l.local != addrOf(s, 0) || l.table != s.listeners[0].table {
			t.Fatalf("socket on %v (table shared: %v), want all on %v sharing one table", l.local, l.table == s.listeners[0].table, addrOf(s, 0))
		}
	}
	cs := make([]*net.UDPConn, clients)
	for i := range cs {
		cs[i] = dial(t, addrOf(s, 0))
	}
	for r := 0; r < rounds; r++ {
		for i, c := range cs {
			msg := fmt.Sprintf("client %d round %d", i, r)
			if got := roundTrip(t, c, msg); got != msg {
				t.Fatalf("client %d got %q, want %q", i, got, msg)
			}
		}
	}
	for i, l := range s.listeners {
		if l.received.Load() == 0 {
			t.Errorf("socket %d received no datagram from %d clients", i, clients)
		}
	}
	if got := em.CountOf(event.Connect); got != clients {
		t.Fatalf("%d connect records for %d clients, want one session each", got, clients)
	}
	if n := s.Stats().Sessions; n != clients {
		t.Fatalf("%d sessions open, want %d", n, clients)
	}
	if got := s.Stats().ClientDatagrams; got != clients*rounds {
		t.Fatalf("%d client datagrams counted, want %d", got, clients*rounds)
	}
}

// TestSharedTableAcrossSockets: should a client's datagrams land on
// another socket of the port (the kernel's hash is not a promise: the
// group can change), that socket finds the client's session instead of
// opening a second one.
func TestSharedTableAcrossSockets(t *testing.T) {
	o := testpeer.StartUDPEcho(t, "")
	em := newCollector()
	s := startServer(t, App{Pool: staticPool(t, o.Addr().String()), UDP: Config{Sockets: 2}}, em, nil)
	a, b := s.listeners[0], s.listeners[1]
	k := key{peer: netip.MustParseAddrPort("127.0.0.9:4242")}
	now := time.Now().UnixNano()
	first, opened := a.lookup(k, now, []byte("one"))
	if first == nil || !opened {
		t.Fatalf("first socket: session %v opened %v, want a new one", first, opened)
	}
	again, opened := b.lookup(k, now, []byte("two"))
	if again != first || opened {
		t.Fatalf("second socket: session %p opened %v, want the first socket's %p", again, opened, first)
	}
	em.NextOf(t, event.Connect) // the session reached the origin
	if n := s.Stats().Sessions; n != 1 {
		t.Fatalf("%d sessions, want 1", n)
	}
}

// TestInheritsEverySocketOfThePort: a server that takes over a port with
// more SO_REUSEPORT sockets than its udp.sockets (a reload or binary
// upgrade that lowered it) reads every one of them: the kernel goes on
// hashing clients to all the sockets of the group, and one nobody reads
// would hold their datagrams until it closed and dropped them. A port
// with fewer takes them and binds the rest.
func TestInheritsEverySocketOfThePort(t *testing.T) {
	const clients = 64
	o := testpeer.StartUDPEcho(t, "")
	pool := staticPool(t, o.Addr().String())
	listen := listenOn(t, fmt.Sprintf("127.0.0.1:%d", testpeer.FreeUDPPort(t))) // a port with a hand-over key
	a := startServer(t, App{Pool: pool, Listen: listen, UDP: Config{Sockets: 4}}, nil, nil)
	addr := addrOf(a, 0)
	cs := make([]*net.UDPConn, clients)
	for i := range cs {
		cs[i] = dial(t, addr)
	}
	echoAll := func(round string) {
		t.Helper()
		for i, c := range cs {
			msg := fmt.Sprintf("client %d %s", i, round)
			if got := roundTrip(t, c, msg); got != msg {
				t.Fatalf("client %d got %q, want %q", i, got, msg)
			}
		}
	}
	echoAll("before")
	prev := a
	for _, n := range []int{2, 6} {
		h := prev.HandOff(func(string) bool { return true })
		if h.Len() != len(prev.listeners) {
			t.Fatalf("hand-over of %d sockets, want %d", h.Len(), len(prev.listeners))
		}
		want := max(n, h.Len())
		b := startServerWith(t, App{Pool: pool, Listen: listen, UDP: Config{Sockets: n}}, nil, nil, h)
		if len(b.listeners) != want || h.Len() != 0 {
			t.Fatalf("udp.sockets %d over %d inherited sockets: %d read, %d left unread; want %d read", n, len(prev.listeners), len(b.listeners), h.Len(), want)
		}
		echoAll(fmt.Sprintf("udp.sockets %d", n))
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		if err := prev.Shutdown(ctx); err != nil { // its sessions end; the sockets are b's
			t.Fatal(err)
		}
		cancel()
		echoAll(fmt.Sprintf("udp.sockets %d, previous server gone", n))
		for i, l := range b.listeners {
			if l.received.Load() == 0 {
				t.Errorf("udp.sockets %d: socket %d received no datagram from %d clients", n, i, clients)
			}
		}
		prev = b
	}
}

// TestInheritedSocketTakesTheReceiveBuffer: a server that takes over a
// port's socket (a reload or an upgrade) sets the receive buffer of its
// own config on it; the socket once kept the size it was bound with.
func TestInheritedSocketTakesTheReceiveBuffer(t *testing.T) {
	o := testpeer.StartUDPEcho(t, "")
	pool := staticPool(t, o.Addr().String())
	listen := listenOn(t, fmt.Sprintf("127.0.0.1:%d", testpeer.FreeUDPPort(t)))
	rcvbuf := func(s *Server) (n int) {
		t.Helper()
		rc, err := s.listeners[0].conn.SyscallConn()
		if err != nil {
			t.Fatal(err)
		}
		_ = rc.Control(func(fd uintptr) { n, _ = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF) })
		return n
	}
	a := startServer(t, App{Pool: pool, Listen: listen, UDP: Config{Sockets: 1, ReceiveBuffer: 128 << 10}}, nil, nil)
	before := rcvbuf(a)
	h := a.HandOff(func(string) bool { return true })
	b := startServerWith(t, App{Pool: pool, Listen: listen, UDP: Config{Sockets: 1, ReceiveBuffer: 96 << 10}}, nil, nil, h)
	// The kernel doubles what it is asked for (and caps it at
	// net.core.rmem_max): compare with what a fresh bind gets.
	after := rcvbuf(b)
	if after == before {
		t.Fatalf("SO_RCVBUF %d before and after taking over the socket with another receive_buffer", before)
	}
	fresh := startServer(t, App{Pool: pool, Listen: listenOn(t, "127.0.0.1:0"), UDP: Config{Sockets: 1, ReceiveBuffer: 96 << 10}}, nil, nil)
	if want := rcvbuf(fresh); after != want {
		t.Fatalf("SO_RCVBUF %d after the take-over, want %d as a fresh socket with the same receive_buffer", after, want)
	}
}
