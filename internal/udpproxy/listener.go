package udpproxy

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/prismproxy/prism/internal/event"
	"github.com/prismproxy/prism/internal/pphdr"
)

// key identifies a session on one listener: the socket peer, the real
// client when a trusted front proxy named one (zero otherwise), and, on a
// wildcard socket, the local address the client sent to (zero otherwise).
// errRestartSys is the kernel's ERESTARTSYS (512): a recvmmsg sleeping on
// a blocking socket that a signal interrupts after some datagrams returns
// those and leaves ERESTARTSYS as the socket's pending error, which the
// next call on the socket (a receive or a send, in whichever process shares
// the socket) returns instead of doing its work. prism's own calls never
// sleep (MSG_DONTWAIT), but a process it shares a socket with may.
const errRestartSys = syscall.Errno(512)

type key struct {
	peer   netip.AddrPort
	client netip.AddrPort
	local  netip.Addr
}

// table is the sessions of one listen port, shared by the port's
// SO_REUSEPORT sockets: the kernel's 4-tuple hash keeps a client on one
// socket, and if it does not (a socket of the group closed), the client's
// datagrams still find its one session.
type table struct {
	mu       sync.RWMutex
	sessions map[key]*session
	alias    map[netip.AddrPort]*session // trusted front peer → its latest proxied session
}

func newTable() *table {
	return &table{sessions: map[key]*session{}, alias: map[netip.AddrPort]*session{}}
}

// listener is one bound UDP socket (one port of a listen entry; with
// udp.sockets > 1 one of the port's SO_REUSEPORT sockets, each with its
// own receive loop and replier).
type listener struct {
	srv     *Server
	conn    *net.UDPConn
	rc      syscall.RawConn
	v6      bool // AF_INET6 socket (possibly dual-stack)
	pktinfo bool // bound to a wildcard address: learn and reply from the destination address
	local   netip.AddrPort
	offset  int      // port - range low, for origin port-range mapping
	rep     *replier // relays the replies of this listener's sessions

	key      string        // "udp host:port" as configured (reload hand-over; "#i" for the port's socket i > 0)
	handed   bool          // the socket went to the next server: not closed here
	prev     *listener     // the replaced server's listener on this socket: its sessions go on
	loopDone chan struct{} // closed when the read loop returned

	*table                 // shared by the port's sockets
	primary   bool         // the port's first socket (Addrs, sweeps and shutdown go by it)
	reuseport bool         // SO_REUSEPORT: the port has more than one socket
	received  atomic.Int64 // datagrams read from this socket

	// Owned by the loop goroutine.
	cur    *batch
	n      int
	rerr   syscall.Errno
	readFn func(fd uintptr) bool
	sendFn func(fd uintptr) bool
	sendHs []mmsghdr
	sendN  int
	sendE  syscall.Errno
}

// bind opens one socket of a listen port. t is the port's session table
// (nil for its first socket: bind makes one); reuseport asks for
// SO_REUSEPORT, so that more sockets can bind the same port.
func (s *Server) bind(host string, port uint16, offset int, t *table, reuseport bool) (*listener, error) {
	l := &listener{srv: s, offset: offset, table: t, primary: t == nil, reuseport: reuseport, loopDone: make(chan struct{})}
	if l.table == nil {
		l.table = newTable()
	}
	network, addr := "udp", net.JoinHostPort(host, strconv.Itoa(int(port)))
	if host == "0.0.0.0" {
		network = "udp4"
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		l.pktinfo = true
	}
	lc := net.ListenConfig{Control: func(network, _ string, c syscall.RawConn) error {
		l.v6 = network == "udp6"
		var serr error
		if err := c.Control(func(fd uintptr) {
			if l.reuseport {
				if serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1); serr != nil {
					serr = fmt.Errorf("SO_REUSEPORT: %w", serr)
					return
				}
			}
			if l.pktinfo {
				serr = setPktinfo(fd, l.v6)
			}
		}); err != nil {
			return err
		}
		return serr
	}}
	pc, err := lc.ListenPacket(context.Background(), network, addr)
	if err != nil {
		return nil, fmt.Errorf("udp app %s: listen %s: %w", s.id, addr, err)
	}
	l.conn = pc.(*net.UDPConn)
	if err := l.conn.SetReadBuffer(s.app.UDP.ReceiveBuffer); err != nil {
		s.log.Warn("cannot set the UDP receive buffer", "addr", addr, "bytes", s.app.UDP.ReceiveBuffer, "err", err)
	}
	la := l.conn.LocalAddr().(*net.UDPAddr).AddrPort()
	l.local = netip.AddrPortFrom(la.Addr().Unmap(), la.Port())
	if l.rc, err = l.conn.SyscallConn(); err != nil {
		l.conn.Close()
		return nil, err
	}
	if l.rep, err = newReplier(l); err != nil {
		l.conn.Close()
		return nil, fmt.Errorf("udp app %s: listen %s: %w", s.id, addr, err)
	}
	l.readFn = l.readable
	l.sendFn = l.sendOrigin
	return l, nil
}

// loop reads batches until the socket is closed.
func (l *listener) loop() {
	defer l.srv.readers.Done()
	defer close(l.loopDone)
	for {
		if err := l.rc.Read(l.readFn); err != nil {
			return // closed
		}
		if l.rerr == unix.EINTR || l.rerr == errRestartSys {
			continue // interrupted by a signal (an upgrade's SIGUSR2, for one): read again
		}
		if l.rerr != 0 {
			// Errors on an unconnected socket are reports about earlier
			// sends (e.g. ICMP for a vanished client); nothing to do but
			// not spin.
			now := time.Now().UnixNano()
			if ok, n := l.srv.errLog.allow(now); ok {
				l.srv.log.Warn("udp listener read error", "addr", l.local.String(), "err", l.rerr.Error(), "suppressed", n)
			}
			continue
		}
		l.process(l.cur, l.n)
		l.srv.pool.put(l.cur)
		l.cur = nil
	}
}

// readable runs when the socket may be readable. It takes a batch from the
// pool only for the duration of a read, so an idle listener holds none.
func (l *listener) readable(fd uintptr) bool {
	if l.cur == nil {
		l.cur = l.srv.pool.get()
		l.cur.prepareRecv(headroom, true, l.pktinfo)
	}
	n, e := recvmmsg(fd, l.cur.hs[:])
	if e == unix.EAGAIN {
		l.srv.pool.put(l.cur)
		l.cur = nil
		return false
	}
	l.cur.dirty = n
	l.n, l.rerr = n, e
	if e != 0 {
		l.srv.pool.put(l.cur)
		l.cur = nil
	}
	return true
}

// process forwards a received batch: every datagram goes to its session,
// consecutive datagrams of one session in one sendmmsg.
func (l *listener) process(b *batch, n int) {
	s := l.srv
	now := time.Now().UnixNano()
	s.c.clientDgrams.Add(int64(n))
	l.received.Add(int64(n))
	var run *session
	runStart := 0
	var last *session
	var lastKey key
	for i := 0; i < n; i++ {
		h := &b.hs[i]
		if h.Hdr.Flags&unix.MSG_TRUNC != 0 {
			s.c.truncated.Add(1)
			l.flush(b, run, runStart, i)
			run = nil
			continue
		}
		peer := sockaddrToAddrPort(&b.names[i])
		k := key{peer: peer}
		if l.pktinfo {
			k.local = pktinfoDst(b.oob[i][:h.Hdr.Controllen])
		}
		data := b.buf(i)[headroom : headroom+int(h.Len)]
		off := 0
		var ss *session
		if pphdr.Trusted(s.app.Trusted, peer.Addr()) {
			var ok bool
			ss, k, off, ok = l.inbound(k, data)
			if !ok {
				l.flush(b, run, runStart, i)
				run = nil
				continue
			}
		}
		payload := data[off:]
		if len(payload) > s.app.UDP.MaxDatagramSize {
			// max_datagram_size bounds what is relayed: the payload, after
			// a trusted front's header (the receive slot has room for one).
			s.c.truncated.Add(1)
			l.flush(b, run, runStart, i)
			run = nil
			continue
		}
		if ss == nil {
			if last != nil && k == lastKey {
				ss = last
			} else {
				var opened bool
				ss, opened = l.lookup(k, now, payload)
				if opened { // the datagram is queued in the new session
					last, lastKey = ss, k
					l.flush(b, run, runStart, i)
					run = nil
					continue
				}
				if ss != nil && k.client.IsValid() {
					// A header naming a client of an open session: the
					// front's header-less datagrams belong to it from now
					// (within a batch, last already is the one pointed at).
					l.point(k.peer, ss)
				}
			}
		}
		if ss == nil {
			l.flush(b, run, runStart, i)
			run = nil
			continue
		}
		last, lastKey = ss, k
		if !ss.accept(payload, now) {
			// Pending (queued), blocked or ended: not for sending now.
			l.flush(b, run, runStart, i)
			run = nil
			continue
		}
		start := headroom + off
		// The session's own server says where its header goes: a session
		// of a replaced server (reload) goes on with its old settings,
		// and ss.hdr is the header those settings made.
		if ss.srv.every {
			start -= len(ss.hdr)
			copy(b.buf(i)[start:], ss.hdr)
		}
		b.setPayload(i, b.buf(i)[start:headroom+int(h.Len)])
		if run != ss {
			l.flush(b, run, runStart, i)
			run, runStart = ss, i
		}
	}
	l.flush(b, run, runStart, n)
}

// inbound handles a datagram from a trusted front proxy: a PROXY header
// names the real client (and is stripped); a datagram without one belongs
// to the front peer's latest proxied session (header on the first datagram
// only), or, if there is none, to the peer itself. A v2 LOCAL header is
// the front's health check (spec §7.1, as on TCP): counted, and dropped
// with whatever payload follows it, before any session, record or origin
// send. A payload after LOCAL is the front's own traffic, not a client's,
// and prism has no client to relay it for.
func (l *listener) inbound(k key, data []byte) (*session, key, int, bool) {
	if pphdr.HasUDPHeader(data) {
		src, n, local, err := pphdr.ParseUDP(data)
		if err != nil {
			l.srv.c.badInbound.Add(1)
			return nil, k, 0, false
		}
		if local {
			l.srv.c.healthChecks.Add(1)
			if l.srv.log.Enabled(context.Background(), slog.LevelDebug) { // as TCP logs it, without the cost when off
				l.srv.log.Debug("health check from a trusted front", "peer", k.peer.String(), "detail", "PROXY v2 LOCAL header")
			}
			return nil, k, 0, false
		}
		if src.IsValid() {
			k.client = src
		}
		return nil, k, n, true
	}
	l.mu.RLock()
	ss := l.alias[k.peer]
	l.mu.RUnlock()
	if ss != nil && ss.state.Load() == stateEnded {
		// A replaced server's session that a header pointed this table
		// at (point): its end cleared only its own table's alias.
		l.mu.Lock()
		if l.alias[k.peer] == ss {
			delete(l.alias, k.peer)
		}
		l.mu.Unlock()
		ss = nil
	}
	for p := l.prev; ss == nil && p != nil; p = p.prev {
		// The front proxy's latest session may be one of the server this
		// one replaced (a reload), which it goes on with: without this its
		// header-less datagrams opened a session of the front proxy itself.
		p.mu.RLock()
		ss = p.alias[k.peer]
		p.mu.RUnlock()
	}
	if ss != nil && ss.key.local == k.local {
		return ss, ss.key, 0, true
	}
	return nil, k, 0, true
}

// lookup finds the session of k, or opens one with payload as its first
// datagram (opened is then true).
func (l *listener) lookup(k key, now int64, payload []byte) (ss *session, opened bool) {
	l.mu.RLock()
	ss = l.sessions[k]
	l.mu.RUnlock()
	if ss != nil {
		return ss, false
	}
	live := false
	for p := l.prev; p != nil; p = p.prev {
		// A session of the server this one replaced (config reload) goes
		// on with its own settings until it ends.
		p.mu.Lock()
		ss = p.sessions[k]
		p.mu.Unlock()
		if ss != nil {
			return ss, false
		}
		live = live || (p.srv != nil && !p.srv.closing.Load())
	}
	if !live {
		l.prev = nil // every replaced server is gone: stop looking (only this loop reads prev)
	}
	if l.srv.closing.Load() || l.srv.draining.Load() {
		l.srv.c.draining.Add(1) // no new session: counted, as every drop is
		return nil, false
	}
	client := k.peer
	if k.client.IsValid() {
		client = k.client
	}
	if ok, which := l.srv.admit(client.Addr()); !ok {
		if ok, n := l.srv.capLog.allow(now); ok {
			l.srv.log.Warn("udp session cap reached; dropping datagrams that would open new sessions",
				"cap", which, "client", client.Addr().String(), "suppressed", n)
		}
		return nil, false
	}
	ss = newSession(l, k, client, now)
	ss.queue = append(ss.queue, append([]byte(nil), payload...))
	ss.live.ClientBytes.Add(int64(len(payload)))
	l.mu.Lock()
	if prev := l.sessions[k]; prev != nil { // another socket of the port opened it meanwhile
		l.mu.Unlock()
		l.srv.unadmit(client.Addr())
		return prev, false
	}
	l.sessions[k] = ss
	if k.client.IsValid() {
		l.alias[k.peer] = ss
	}
	l.mu.Unlock()
	l.srv.sessWG.Add(1)
	go ss.run()
	return ss, true
}

// point makes ss the latest proxied session of the trusted front peer,
// the one its header-less datagrams belong to, as a header naming its
// client just came. The write lock is taken only when the alias changes
// (a front that puts the header on every datagram of one client changes
// nothing), and never for an ended session, which would stay pointed at.
func (t *table) point(peer netip.AddrPort, ss *session) {
	t.mu.RLock()
	same := t.alias[peer] == ss
	t.mu.RUnlock()
	if same {
		return
	}
	t.mu.Lock()
	if ss.state.Load() != stateEnded { // finish sets it before remove takes the lock
		t.alias[peer] = ss
	}
	t.mu.Unlock()
}

// remove takes ss out of the tables, if it is still there.
func (l *listener) remove(ss *session) {
	l.mu.Lock()
	if l.sessions[ss.key] == ss {
		delete(l.sessions, ss.key)
	}
	if l.alias[ss.key.peer] == ss {
		delete(l.alias, ss.key.peer)
	}
	l.mu.Unlock()
}

// snapshot appends the current sessions of the port to buf.
func (t *table) snapshot(buf []*session) []*session {
	t.mu.RLock()
	for _, ss := range t.sessions {
		buf = append(buf, ss)
	}
	t.mu.RUnlock()
	return buf
}

// flush sends messages [from, to) of b to run's origin in one sendmmsg.
// A full origin socket buffer drops the rest rather than stall the
// listener (and every other session on it).
func (l *listener) flush(b *batch, run *session, from, to int) {
	if run == nil || from >= to {
		return
	}
	l.sendHs, l.sendN, l.sendE = b.hs[from:to], 0, 0
	err := run.rc.Write(l.sendFn)
	if err != nil { // closed: the session just ended
		l.srv.c.noSess.Add(int64(to - from))
		return
	}
	if l.sendE != 0 {
		l.srv.c.sendOrigin.Add(int64(to - from - l.sendN))
		if l.sendE != unix.EAGAIN && l.sendE != unix.ENOBUFS {
			run.originFailed(l.sendE)
		}
	}
}

func (l *listener) sendOrigin(fd uintptr) bool {
	for l.sendN < len(l.sendHs) {
		n, e := sendmmsg(fd, l.sendHs[l.sendN:])
		if e != 0 {
			l.sendE = e
			return true
		}
		l.sendN += n
	}
	return true
}

// sessionEvent is the base record of a new session.
func (l *listener) sessionEvent(k key, client netip.AddrPort, start time.Time) event.Event {
	ev := event.New(l.srv.id, event.NewID(start))
	ev.Time, ev.StartTime = start, start
	ev.ClientProto = event.ProtoUDP
	ev.PeerAddr = k.peer
	ev.ClientAddr = client
	ev.LocalAddr = l.local
	if k.local.IsValid() {
		ev.LocalAddr = netip.AddrPortFrom(k.local, l.local.Port())
	}
	ev.ProxyProtocol = l.srv.app.ProxyProtocol
	ev.OriginProto = originProto(l.srv.app.Pool) // until an origin is chosen (spec §7.3)
	return ev
}

// originProto is the transport of the app's origins: "unix" for a pool of
// unix sockets (*origin.Pool says so), else "udp".
func originProto(p Origins) string {
	if pp, ok := p.(interface{ Proto(string) string }); ok {
		return pp.Proto(event.ProtoUDP)
	}
	return event.ProtoUDP
}
