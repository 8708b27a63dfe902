//go:build linux && !portable

package relay

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/prismproxy/prism/internal/event"
	"github.com/prismproxy/prism/internal/event/errstatus"
)

// The raw path's sockets (sock_linux.go) against the kernel on loopback.

func needSocks(t *testing.T) {
	t.Helper()
	if !SocksAvailable() {
		t.Skip("no event loop (PRISM_RELAY_POLLER=off?): the raw path is not used")
	}
}

// rawListener is a TCP listener with TCP_NODELAY set (as the proxy sets
// it) and an Acceptor on a pollable duplicate of it.
func rawListener(t *testing.T, wantLocal bool) (net.Listener, *os.File, *Acceptor) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	rc, err := l.(*net.TCPListener).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	dup, serr := -1, error(nil)
	if err := rc.Control(func(fd uintptr) {
		if serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_NODELAY, 1); serr == nil {
			dup, serr = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0)
		}
	}); err != nil || serr != nil {
		t.Fatal(err, serr)
	}
	f := os.NewFile(uintptr(dup), "listener")
	t.Cleanup(func() { f.Close() })
	frc, err := f.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	return l, f, NewAcceptor(frc, wantLocal)
}

func TestAcceptorAddressesAndNoDelay(t *testing.T) {
	needSocks(t)
	l, _, acc := rawListener(t, true)
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, peer, local, err := acc.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if want := c.LocalAddr().(*net.TCPAddr).AddrPort(); peer != want {
		t.Errorf("peer %v, want the client's %v", peer, want)
	}
	if want := l.Addr().(*net.TCPAddr).AddrPort(); local != want {
		t.Errorf("local %v, want the listener's %v", local, want)
	}
	// The proxy sets TCP_NODELAY once on the listener instead of per
	// connection: the accepted socket must have inherited it.
	if v, err := unix.GetsockoptInt(int(s.fd), unix.IPPROTO_TCP, unix.TCP_NODELAY); err != nil || v == 0 {
		t.Errorf("accepted socket TCP_NODELAY = %d (%v), want it inherited from the listener", v, err)
	}
	if fl, _ := unix.FcntlInt(uintptr(s.fd), unix.F_GETFL, 0); fl&unix.O_NONBLOCK == 0 {
		t.Error("accepted socket is blocking")
	}
	if !s.tcp || s.RTT() <= 0 {
		t.Errorf("tcp %v, RTT %v: want a TCP socket with an RTT sample", s.tcp, s.RTT())
	}
}

func TestAcceptorDeadline(t *testing.T) {
	needSocks(t)
	_, f, acc := rawListener(t, false)
	f.SetDeadline(time.Now().Add(50 * time.Millisecond))
	done := make(chan error, 1)
	go func() { _, _, _, err := acc.Accept(); done <- err }()
	select {
	case err := <-done:
		if !errstatus.IsTimeout(err) {
			t.Fatalf("Accept after the deadline: %v, want a timeout", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a deadline on the listener's file did not wake Accept")
	}
}

func TestConnectLocalIsImmediate(t *testing.T) {
	needSocks(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	s, up, err := Connect(l.Addr().(*net.TCPAddr).AddrPort(), "")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if !up {
		t.Fatal("a loopback origin was not connected when Connect returned: the dial would wait in a loop")
	}
	if v, _ := unix.GetsockoptInt(int(s.fd), unix.IPPROTO_TCP, unix.TCP_NODELAY); v == 0 {
		t.Error("dialed socket without TCP_NODELAY")
	}
}

func TestConnectUnix(t *testing.T) {
	needSocks(t)
	path := filepath.Join(t.TempDir(), "o.sock")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	s, up, err := Connect(netip.AddrPort{}, path)
	if err != nil || !up {
		t.Fatalf("Connect unix: up %v, %v", up, err)
	}
	defer s.Close()
	if s.tcp {
		t.Error("a unix socket marked TCP")
	}
}

// TestConnectErrorsAsNet checks that a refused dial reads as the net
// package's (records carry its text) and maps to 521.
func TestConnectErrorsAsNet(t *testing.T) {
	needSocks(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ap := l.Addr().(*net.TCPAddr).AddrPort()
	l.Close()
	_, _, err = Connect(ap, "")
	if err == nil {
		t.Fatal("Connect to a closed port succeeded")
	}
	_, nerr := net.Dial("tcp", ap.String())
	if nerr == nil || err.Error() != nerr.Error() {
		t.Errorf("raw error %q, net's %q", err, nerr)
	}
	if st := errstatus.Dial(err); st != event.StatusOriginConnRefused {
		t.Errorf("status %d, want %d", st, event.StatusOriginConnRefused)
	}
	_, _, err = Connect(netip.AddrPort{}, filepath.Join(t.TempDir(), "none.sock"))
	if st := errstatus.Dial(err); err == nil || st != event.StatusOriginConnRefused {
		t.Errorf("unix origin that is not there: %v, status %d", err, st)
	}
}

// fullQueue is a listener whose accept queue is full (backlog 0 holds
// one connection): a SYN to it is dropped and retransmitted after a
// second, so a connect to it stays in progress.
func fullQueue(t *testing.T) (netip.AddrPort, int) {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, _ := unix.Getsockname(fd)
	ap := netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), uint16(sa.(*unix.SockaddrInet4).Port))
	for range 4 {
		s, up, err := Connect(ap, "")
		if err != nil {
			t.Fatal(err)
		}
		if !up {
			s.Close()
			return ap, fd
		}
		t.Cleanup(func() { s.Close() })
	}
	t.Skip("could not fill a listen backlog on this kernel")
	return ap, fd
}

func TestWaitConnected(t *testing.T) {
	needSocks(t)
	ap, lfd := fullQueue(t)
	ctx := context.Background()

	s, up, err := Connect(ap, "")
	if err != nil || up {
		t.Fatalf("Connect to a full queue: up %v, %v", up, err)
	}
	err = s.WaitConnected(ctx, ap, "", time.Now().Add(100*time.Millisecond))
	s.Close()
	if !errstatus.IsTimeout(err) || errstatus.Dial(err) != event.StatusOriginConnTimeout {
		t.Fatalf("past the deadline: %v (status %d), want a timeout, 522", err, errstatus.Dial(err))
	}

	s, _, _ = Connect(ap, "")
	cctx, cancel := context.WithCancel(ctx)
	time.AfterFunc(50*time.Millisecond, cancel)
	err = s.WaitConnected(cctx, ap, "", time.Now().Add(10*time.Second))
	s.Close()
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled: %v, want context.Canceled", err)
	}

	// Room in the queue: the retransmitted SYN (after about a second)
	// gets through and the wait ends connected.
	s, _, _ = Connect(ap, "")
	defer s.Close()
	nfd, _, err := unix.Accept(lfd)
	if err != nil {
		t.Fatal(err)
	}
	unix.Close(nfd)
	if err := s.WaitConnected(ctx, ap, "", time.Now().Add(10*time.Second)); err != nil {
		t.Fatalf("after the queue had room: %v", err)
	}
}

// TestNewSocksRelays runs a relay between an accepted and a dialed raw
// socket: bytes both ways, half-close, exact counts.
func TestNewSocksRelays(t *testing.T) {
	needSocks(t)
	origin, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer origin.Close()
	go func() {
		c, err := origin.Accept()
		if err != nil {
			return
		}
		io.Copy(c, c) // echo until EOF, then close
		c.Close()
	}()
	l, _, acc := rawListener(t, false)
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cs, _, _, err := acc.Accept()
	if err != nil {
		t.Fatal(err)
	}
	og, up, err := Connect(origin.Addr().(*net.TCPAddr).AddrPort(), "")
	if err != nil || !up {
		t.Fatalf("Connect: %v %v", up, err)
	}
	r := NewSocks(cs, og, Options{})
	if r.fl == nil {
		t.Fatal("NewSocks did not take the loop path")
	}
	done := make(chan Result, 1)
	go func() { done <- r.Run() }()
	msg := bytes.Repeat([]byte("ping "), 1000)
	if _, err := c.Write(msg); err != nil {
		t.Fatal(err)
	}
	c.(*net.TCPConn).CloseWrite()
	got, err := io.ReadAll(c)
	if err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("echo: %d bytes, %v", len(got), err)
	}
	select {
	case res := <-done:
		if res.ClientBytes != int64(len(msg)) || res.OriginBytes != int64(len(msg)) || res.Status != event.StatusOK {
			t.Fatalf("result %+v", res)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("relay did not end")
	}
	if _, err := unix.FcntlInt(uintptr(cs.fd), unix.F_GETFD, 0); err != syscall.EBADF {
		t.Errorf("client socket still open after the relay ended (%v)", err)
	}
}
