package udpproxy

import (
	"fmt"
	"net"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/prismproxy/prism/internal/testpeer"
)

// TestBlockingListenerSocket: O_NONBLOCK belongs to the socket, which
// every process holding it shares (a binary upgrade hands it on; the
// process it came from, if an older prism, may put it in blocking mode).
// On a blocking socket the listener's raw recvmmsg must not sleep in the
// kernel (it would hold the datagrams it got until the batch filled, and a
// signal interrupting it leaves ERESTARTSYS as the socket's pending error,
// which the next reply sent on the socket would meet instead of being
// sent), and a hand-over must still end the read loop.
func TestBlockingListenerSocket(t *testing.T) {
	const clients, rounds = 16, 20
	o := testpeer.StartUDPEcho(t, "")
	s := startServer(t, App{Pool: staticPool(t, o.Addr().String())}, nil, nil)
	l := s.listeners[0]
	var serr error
	if err := l.rc.Control(func(fd uintptr) { serr = unix.SetNonblock(int(fd), false) }); err != nil || serr != nil {
		t.Fatal(err, serr)
	}
	cs := make([]*net.UDPConn, clients)
	for i := range cs {
		cs[i] = dial(t, addrOf(s, 0))
	}
	lost := 0
	buf := make([]byte, 64)
	for r := range rounds {
		for i, c := range cs {
			msg := fmt.Sprintf("client %d round %d", i, r)
			if _, err := c.Write([]byte(msg)); err != nil {
				t.Fatal(err)
			}
			_ = c.SetReadDeadline(time.Now().Add(time.Second))
			if n, err := c.Read(buf); err != nil {
				lost++
			} else if string(buf[:n]) != msg {
				t.Fatalf("client %d got %q, want %q", i, buf[:n], msg)
			}
		}
	}
	if lost > 0 {
		t.Errorf("%d of %d datagrams not echoed within 1s on a blocking listener socket (stats %+v)", lost, clients*rounds, s.Stats())
	}
	done := make(chan struct{})
	go func() { s.HandOff(func(string) bool { return true }).Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(waitFor):
		t.Fatal("HandOff did not end the read loop of a blocking socket")
	}
}
