//go:build !portable

package relay

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Kernel sockets without a net.Conn: the raw path of a plain TCP app.
//
// A connection that only relays (no TLS, no PROXY header to read) needs
// nothing of the net package: accepted and dialed as raw descriptors and
// given to NewSocks, its sockets are never registered in the runtime's
// netpoller (one epoll_ctl ADD and one DEL each), need no netFD, pollDesc,
// finalizer or addresses, no getsockname/getpeername, no dup(2) and close
// for the hand-over to the loop, and a dial to an origin that answers at
// once (on the same host or link) does not park its goroutine. Measured
// on short connections (docs/benchmarks.md, "Short connections: the raw
// path"): 32 system calls per connection through the net package, 19
// here (nginx makes 20), and 1.2–1.5× less proxy CPU per connection.

// Sock is a connected (or connecting) kernel stream socket held as a raw
// descriptor. Its holder closes it, or hands it to NewSocks.
type Sock struct {
	fd  int32
	ok  bool // fd is a descriptor (the zero Sock holds none)
	tcp bool
}

// Close closes the socket.
func (s Sock) Close() error {
	if !s.ok {
		return nil
	}
	return rawClose(int(s.fd))
}

// RTT is the TCP_INFO smoothed RTT of a TCP socket, 0 for others.
func (s Sock) RTT() time.Duration {
	if !s.ok || !s.tcp {
		return 0
	}
	return fdRTT(int(s.fd))
}

// Write writes b whole to a socket that has room for it (a PROXY header
// into a fresh connection): it does not wait.
func (s Sock) Write(b []byte) error {
	for len(b) > 0 {
		n, err := rawSend(int(s.fd), b)
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			return errors.New("write: socket send buffer full")
		case err != nil:
			return os.NewSyscallError("write", err)
		}
		b = b[n:]
	}
	return nil
}

// SocksAvailable reports whether NewSocks can take sockets to an event
// loop here (Linux, epoll, not turned off by PRISM_RELAY_POLLER=off).
func SocksAvailable() bool { return getLoop(0) != nil }

// Acceptor accepts connections on one listening socket as Socks. It
// waits in the runtime netpoller, as net.Listener.Accept does (a deadline
// on, or closing, what rc belongs to ends the wait). One goroutine uses
// it at a time; an accept allocates nothing.
type Acceptor struct {
	rc        syscall.RawConn
	wantLocal bool
	fn        func(uintptr) bool
	sa        rawSockaddr
	nfd       int
	err       error
}

// NewAcceptor accepts on rc, a pollable descriptor of a listening socket
// (an *os.File's, say: a net.Listener's RawConn cannot wait). wantLocal
// asks each connection for its own address (a listener on a wildcard
// address); without it Accept returns no local address.
func NewAcceptor(rc syscall.RawConn, wantLocal bool) *Acceptor {
	a := &Acceptor{rc: rc, wantLocal: wantLocal}
	a.fn = a.try
	return a
}

func (a *Acceptor) try(fd uintptr) bool {
	for {
		a.nfd, a.err = rawAccept4(int(fd), &a.sa)
		switch a.err {
		case unix.EINTR, unix.ECONNABORTED:
			continue // as the net package does: the next one
		case unix.EAGAIN:
			return false
		}
		return true
	}
}

// Accept returns the next connection, non-blocking, with the peer's
// address, and its own address if the Acceptor wants it.
func (a *Acceptor) Accept() (s Sock, peer, local netip.AddrPort, err error) {
	if rerr := a.rc.Read(a.fn); rerr != nil {
		return Sock{}, peer, local, &net.OpError{Op: "accept", Net: "tcp", Err: rerr}
	}
	if a.err != nil {
		return Sock{}, peer, local, &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", a.err)}
	}
	s = Sock{fd: int32(a.nfd), ok: true}
	peer, s.tcp = a.sa.addrPort()
	if a.wantLocal && rawGetsockname(a.nfd, &a.sa) == nil {
		local, _ = a.sa.addrPort()
	}
	return s, peer, local, nil
}

// Connect starts a connection to addr (TCP, with TCP_NODELAY) or, when
// path is set, to the unix socket at path. connected is true when it is
// up already, as it is for an origin on the same host: the handshake ran
// within connect(2), and a second connect(2) says so. Otherwise WaitConnected
// waits for it. On error there is no socket.
func Connect(addr netip.AddrPort, path string) (s Sock, connected bool, err error) {
	var sa rawSockaddr
	family := unix.AF_UNIX
	if path != "" {
		if !sa.setUnix(path) {
			return Sock{}, false, dialError(addr, path, os.NewSyscallError("connect", unix.EINVAL))
		}
	} else {
		family = sa.setInet(addr, zoneID(addr.Addr().Zone()))
	}
	fd, err := rawSocket(family)
	if err != nil {
		return Sock{}, false, dialError(addr, path, os.NewSyscallError("socket", err))
	}
	s = Sock{fd: int32(fd), ok: true, tcp: path == ""}
	if s.tcp {
		if err := rawSetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1); err != nil {
			rawClose(fd)
			return Sock{}, false, dialError(addr, path, os.NewSyscallError("setsockopt", err))
		}
	}
	for {
		err = rawConnect(fd, &sa)
		if err != unix.EINTR {
			break
		}
	}
	switch err {
	case nil:
		return s, true, nil
	case unix.EINPROGRESS:
		// The handshake with a local origin completed inside connect(2)
		// (its SYN-ACK waited in the socket's backlog until connect let
		// go of the socket): a second connect returns 0 once the
		// connection is up, EALREADY while it is still on its way.
		switch err = rawConnect(fd, &sa); err {
		case nil, unix.EISCONN:
			return s, true, nil
		case unix.EALREADY, unix.EINPROGRESS, unix.EINTR:
			return s, false, nil
		}
	}
	rawClose(fd)
	return Sock{}, false, dialError(addr, path, os.NewSyscallError("connect", err))
}

func zoneID(zone string) uint32 {
	if zone == "" {
		return 0
	}
	if ifi, err := net.InterfaceByName(zone); err == nil {
		return uint32(ifi.Index)
	}
	return 0
}

// dialError is err as the net package's dialer reports it, so that its
// text and classification (errstatus.Dial) stay the same.
func dialError(addr netip.AddrPort, path string, err error) error {
	if path != "" {
		return &net.OpError{Op: "dial", Net: "unix", Addr: &net.UnixAddr{Name: path, Net: "unix"}, Err: err}
	}
	return &net.OpError{Op: "dial", Net: "tcp", Addr: net.TCPAddrFromAddrPort(addr), Err: err}
}

// WaitConnected waits until the connection Connect started is up, failed,
// deadline passed (an error that is a timeout; a zero deadline is none),
// or ctx is done.
// It waits in an event loop's epoll set, without a goroutine of its own
// or the runtime netpoller. On error the caller still closes s.
func (s Sock) WaitConnected(ctx context.Context, addr netip.AddrPort, path string, deadline time.Time) error {
	lp := getLoop(int(s.fd))
	if lp == nil {
		return dialError(addr, path, errors.New("no event loop to wait in"))
	}
	w := &connWait{ch: make(chan struct{}, 1)}
	lp.mu.Lock()
	slot, gen := lp.alloc(w)
	lp.mu.Unlock()
	ev := unix.EpollEvent{Events: unix.EPOLLOUT | unix.EPOLLET, Fd: slot << 1, Pad: gen}
	if err := rawEpollCtl(lp.epfd, unix.EPOLL_CTL_ADD, int(s.fd), &ev); err != nil {
		lp.mu.Lock()
		lp.freeSlot(slot, w)
		lp.mu.Unlock()
		return dialError(addr, path, os.NewSyscallError("epoll_ctl", err))
	}
	var expired <-chan time.Time
	if !deadline.IsZero() {
		t := time.NewTimer(time.Until(deadline))
		defer t.Stop()
		expired = t.C
	}
	var werr error
	select {
	case <-w.ch:
	case <-expired:
		werr = os.ErrDeadlineExceeded
	case <-ctx.Done():
		werr = ctx.Err()
	}
	_ = rawEpollCtl(lp.epfd, unix.EPOLL_CTL_DEL, int(s.fd), nil)
	lp.mu.Lock()
	lp.freeSlot(slot, w)
	lp.mu.Unlock()
	if werr != nil {
		return dialError(addr, path, werr)
	}
	n, err := rawGetsockoptInt(int(s.fd), unix.SOL_SOCKET, unix.SO_ERROR)
	if err == nil && n != 0 {
		err = syscall.Errno(n)
	}
	if err != nil {
		return dialError(addr, path, os.NewSyscallError("connect", err))
	}
	return nil
}

// connWait is a connecting socket in a loop's epoll set: its first
// writability (up, or failed) wakes the dialer.
type connWait struct{ ch chan struct{} }

func (w *connWait) ready(int32, uint32) {
	select {
	case w.ch <- struct{}{}:
	default:
	}
}

// NewSocks prepares a relay between two connected sockets, as New does
// for two net.Conns; it owns them from now on. Callers check
// SocksAvailable first; without a loop the sockets are wrapped in
// net.Conns for the goroutine path.
func NewSocks(client, origin Sock, opts Options) *Relay {
	r := &Relay{opts: opts}
	if lp := getLoop(int(client.fd)); lp != nil {
		r.fl = &fdConn{r: r, lp: lp, fd: [2]int32{client.fd, origin.fd}, tcp: [2]bool{client.tcp, origin.tcp}}
		return r
	}
	return New(fileConn(client), fileConn(origin), opts)
}

// fileConn wraps s in a net.Conn (a duplicate; s is closed).
func fileConn(s Sock) net.Conn {
	f := os.NewFile(uintptr(s.fd), "sock")
	c, err := net.FileConn(f)
	f.Close()
	if err != nil { // out of descriptors: a conn that ends at once
		var peer net.Conn
		c, peer = net.Pipe()
		peer.Close()
	}
	return c
}
