package udpproxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/prismproxy/prism/internal/event"
	"github.com/prismproxy/prism/internal/event/errstatus"
	"github.com/prismproxy/prism/internal/limit"
	"github.com/prismproxy/prism/internal/origin"
	"github.com/prismproxy/prism/internal/pphdr"
	"github.com/prismproxy/prism/internal/spp"
)

// Session states. A session starts pending (firewall, origin choice and
// first send in progress; datagrams are queued), becomes ready (relaying)
// or blocked (a firewall negative entry: datagrams are dropped without
// another lookup), and ends exactly once.
const (
	statePending int32 = iota
	stateReady
	stateBlocked
	stateEnded
)

// pendingQueue is how many datagrams a session queues while its origin
// flow is being set up; more are dropped and counted.
const pendingQueue = 16

// resolveTimeout bounds the origin choice (DNS) of a new session.
const resolveTimeout = 10 * time.Second

var errUnixOrigin = errors.New("unix socket origins are not supported for udp apps")

// session is one client flow on one listener.
type session struct {
	l      *listener
	srv    *Server
	key    key
	client netip.AddrPort // the real client
	live   *event.Live    // counters from the first datagram; base published at connect
	hdr    []byte         // outbound PROXY v2 / SPP header, nil when off
	last   atomic.Int64   // unix nanoseconds of the last datagram either way
	state  atomic.Int32
	// refused is the per-client limit that made a blocked entry (None: the
	// firewall did); limited says the session holds a limiter slot.
	refused limit.Which // written before the state becomes blocked, under mu
	limited atomic.Bool // Swap(false) gives the slot back exactly once

	mu      sync.Mutex // guards state changes, queue, conn and the base event before connect
	queue   [][]byte
	conn    *net.UDPConn
	rc      syscall.RawConn
	release func()

	// Where replies go, read by the listener's replier.
	name    unix.RawSockaddrInet6 // the client (the socket peer)
	namelen uint32
	oob     [oobSize]byte // IP(V6)_PKTINFO with the source replies leave from
	ooblen  int
	fd      int32 // origin socket descriptor, the replier's key; -1 before
}

func newSession(l *listener, k key, client netip.AddrPort, now int64) *session {
	start := time.Unix(0, now)
	ss := &session{l: l, srv: l.srv, key: k, client: client}
	ev := l.sessionEvent(k, client, start)
	ss.live = event.NewLive(ev)
	ss.last.Store(now)
	if m := l.srv.app.ProxyProtocol; m != ProxyOff {
		h, err := outboundHeader(m, client, ev.LocalAddr)
		if err != nil {
			l.srv.log.Error("cannot build the PROXY header for a session; sending without", "client", client.String(), "err", err)
		}
		ss.hdr = h
	}
	ss.namelen = putSockaddr(&ss.name, k.peer, l.v6)
	if l.pktinfo && k.local.IsValid() {
		ss.ooblen = putPktinfoSrc(ss.oob[:], k.local, l.v6)
	}
	ss.fd = -1
	return ss
}

// outboundHeader returns the header a session puts in front of datagrams
// to the origin: SPP, or PROXY v2 with transport UDP (DGRAM). It is built
// once per session.
func outboundHeader(mode string, client, local netip.AddrPort) ([]byte, error) {
	switch mode {
	case ProxySimple:
		return spp.AppendHeader(make([]byte, 0, spp.HeaderLen), client, local), nil
	case ProxyV2:
		return pphdr.UDPHeader(client, local)
	}
	return nil, nil
}

// accept takes one client datagram for the session. It returns true if the
// caller should send it to the origin now; otherwise the datagram was
// queued (pending) or dropped (blocked, ended), and counted.
func (ss *session) accept(payload []byte, now int64) bool {
	switch ss.state.Load() {
	case stateReady:
		ss.last.Store(now)
		ss.live.ClientBytes.Add(int64(len(payload)))
		return true
	case statePending:
		ss.mu.Lock()
		if ss.state.Load() != statePending {
			ss.mu.Unlock()
			return ss.accept(payload, now)
		}
		if len(ss.queue) >= pendingQueue {
			ss.mu.Unlock()
			ss.srv.c.pending.Add(1)
			return false
		}
		ss.queue = append(ss.queue, append([]byte(nil), payload...))
		ss.live.ClientBytes.Add(int64(len(payload)))
		ss.mu.Unlock()
		return false
	case stateBlocked:
		ss.last.Store(now)
		if ss.refused != limit.None {
			ss.srv.c.limit[ss.refused].Add(1)
		} else {
			ss.srv.c.filtered.Add(1)
		}
		return false
	}
	ss.srv.c.noSess.Add(1)
	return false
}

// run sets the session up (firewall, origin choice, first send with
// failover) and hands the origin socket to the listener's replier; the
// goroutine ends once the session relays.
func (ss *session) run() {
	defer ss.srv.sessWG.Done()
	srv := ss.srv
	ss.mu.Lock()
	ev := *ss.live.Base()
	ss.mu.Unlock()

	// Firewall: a blocked client becomes a negative entry that drops its
	// datagrams until it has been silent for the idle timeout. A client
	// over a per-client limit likewise.
	blocked := srv.app.Firewall != nil && srv.app.Firewall.Apply(ss.client.Addr(), &ev)
	refused := limit.None
	if !blocked {
		if refused = srv.lim.AdmitAddr(ss.client.Addr(), time.Now()); refused == limit.None {
			ss.limited.Store(true) // given back in finish
		}
	}
	if blocked || refused != limit.None {
		ss.mu.Lock()
		if ss.state.Load() != statePending {
			ss.mu.Unlock()
			if ss.limited.Swap(false) {
				srv.lim.ReleaseAddr(ss.client.Addr())
			}
			return
		}
		ss.refused = refused
		ss.state.Store(stateBlocked)
		if refused != limit.None {
			srv.c.limit[refused].Add(int64(len(ss.queue)))
		} else {
			srv.c.filtered.Add(int64(len(ss.queue)))
		}
		ss.queue = nil
		ss.mu.Unlock()
		srv.unadmit(ss.client.Addr())
		if srv.nBlocked.Add(1) > int64(srv.app.UDP.MaxSessions) {
			// Too many negative entries (a spoofed flood): keep none for
			// this client; its next datagram is looked up again.
			defer ss.finish(event.ClientFiltered, event.StatusFiltered, event.SideProxy, event.ReasonClosed, "")
		}
		now := time.Now()
		ev.Type, ev.Status = event.ClientFiltered, event.StatusFiltered
		ev.Time, ev.DisconnectTime = now, now
		detail := "client matched " + ev.FirewallMatch
		switch {
		case refused != limit.None:
			detail = "client over limits." + refused.Key()
		case ev.FirewallMatch == event.FirewallUnknown:
			detail = "no rule matched (firewall default: block)"
		}
		ev.CloseSide, ev.CloseReason, ev.Detail = event.SideProxy, event.ReasonClosed, detail // refused by prism (spec §7.5)
		srv.em.Emit(&ev)
		return
	}
	ss.setBase(&ev)

	ctx, cancel := context.WithTimeout(srv.ctx, resolveTimeout)
	targets, fail := srv.app.Pool.Candidates(ctx, ss.client.Addr(), ss.l.offset)
	cancel()
	if fail != nil {
		ev.OriginAddr = fail.Addr
		ev.OriginName = ""
		ss.setBase(&ev)
		ss.finish(event.ResolveOrigin, fail.Status, event.SideOrigin, event.ReasonCreatePeer, fail.Detail)
		return
	}

	ss.mu.Lock()
	if ss.state.Load() != statePending {
		ss.mu.Unlock()
		return
	}
	conn, tgt, err := ss.dial(targets)
	setOrigin(&ev, tgt)
	if conn == nil {
		*ss.live.Base() = ev
		ss.mu.Unlock()
		ss.finish(event.OriginError, errstatus.Dial(err), event.SideOrigin, event.ReasonCreatePeer, err.Error())
		return
	}
	rc, err := conn.SyscallConn()
	if err != nil {
		conn.Close()
		*ss.live.Base() = ev
		ss.mu.Unlock()
		ss.finish(event.OriginError, event.StatusOriginConnInternal, event.SideProxy, event.ReasonCreatePeer, err.Error())
		return
	}
	// The rest of the queue follows the first datagram, in order.
	for _, q := range ss.queue[1:] {
		if ss.srv.every {
			q = append(ss.hdr[:len(ss.hdr):len(ss.hdr)], q...)
		}
		if _, err := conn.Write(q); err != nil {
			srv.c.sendOrigin.Add(1)
		}
	}
	ss.queue = nil
	ss.conn, ss.rc = conn, rc
	if err := ss.l.rep.watch(ss); err != nil {
		*ss.live.Base() = ev
		ss.mu.Unlock()
		ss.finish(event.OriginError, event.StatusOriginConnInternal, event.SideProxy, event.ReasonCreatePeer, err.Error())
		return
	}
	ss.release = srv.app.Pool.Acquire(tgt)
	now := time.Now()
	ev.Type, ev.Status = event.Connect, event.StatusConnect
	ev.Time, ev.ConnectTime = now, now
	*ss.live.Base() = ev
	srv.em.Emit(&ev)
	srv.reg.Add(ss.live)
	ss.state.Store(stateReady)
	ss.mu.Unlock()
}

func (ss *session) setBase(ev *event.Event) {
	ss.mu.Lock()
	*ss.live.Base() = *ev
	ss.mu.Unlock()
}

func setOrigin(ev *event.Event, t origin.Target) {
	ev.OriginAddr, ev.OriginPath, ev.OriginName = t.Addr, t.Path, t.Name
	switch {
	case t.Path != "":
		ev.OriginProto = event.ProtoUnix
	case t.Addr.IsValid():
		ev.OriginProto = event.ProtoUDP
	}
}

// dial opens a connected socket to the first target that takes the
// session's first datagram. A UDP "connect" only fixes the peer; what can
// fail is the send (no route, or a refusal the kernel already knows of).
// It returns the last target tried and its error when all fail.
func (ss *session) dial(targets []origin.Target) (*net.UDPConn, origin.Target, error) {
	var last origin.Target
	var lastErr error = errors.New("no origin candidates")
	if len(ss.queue) == 0 {
		return nil, last, errors.New("internal error: session without a first datagram")
	}
	first := ss.queue[0]
	if ss.hdr != nil {
		first = append(ss.hdr[:len(ss.hdr):len(ss.hdr)], first...)
	}
	for i, t := range targets {
		last = t
		if t.Path != "" {
			lastErr = fmt.Errorf("origin %s: %w", t.Path, errUnixOrigin)
			continue
		}
		c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(t.Addr))
		if err != nil {
			lastErr = fmt.Errorf("dial origin %s: %w", t.Addr, err)
			continue
		}
		if _, err := c.Write(first); err != nil {
			c.Close()
			lastErr = fmt.Errorf("send to origin %s: %w", t.Addr, err)
			if i+1 < len(targets) {
				ss.srv.log.Debug("origin send failed, trying next", "origin", t.Addr.String(), "err", err)
			}
			continue
		}
		return c, t, nil
	}
	return nil, last, lastErr
}

// originFailed ends an established session after its origin socket
// reported an error (ICMP port unreachable → ECONNREFUSED, and the like).
// The replier may see the error while run still holds mu to finish the
// set-up, hence the lock.
func (ss *session) originFailed(e syscall.Errno) {
	ss.mu.Lock()
	addr := ss.live.Base().OriginAddr
	ss.mu.Unlock()
	ss.finish(event.Disconnect, errstatus.Datagram(e), event.SideOrigin, event.ReasonPeerError,
		"origin "+addr.String()+": "+e.Error())
}

// finish ends the session once and emits its terminal record: a
// disconnect with typ's status for an established session, typ itself for
// one still being set up (a disconnect requested then — idle or shutdown —
// becomes originError 524, since there was no connect), nothing for a
// firewall negative entry (its clientFiltered record was emitted already).
func (ss *session) finish(typ event.Type, status int, side event.Side, reason event.Reason, detail string) {
	srv := ss.srv
	ss.mu.Lock()
	prev := ss.state.Load()
	if prev == stateEnded {
		ss.mu.Unlock()
		return
	}
	ss.state.Store(stateEnded)
	conn, release := ss.conn, ss.release
	if prev == statePending && len(ss.queue) > 0 {
		// The origin flow never came up (its record says why): what
		// waited for it is dropped, and counted.
		srv.c.setup.Add(int64(len(ss.queue)))
	}
	ss.queue = nil
	var ev event.Event
	if prev == statePending {
		ev = *ss.live.Base()
	}
	ss.mu.Unlock()

	ss.l.remove(ss)
	if conn != nil {
		ss.l.rep.forget(ss)
		_ = conn.Close()
	}
	if release != nil {
		release()
	}
	if prev == stateBlocked {
		srv.nBlocked.Add(-1)
		return
	}
	srv.unadmit(ss.client.Addr())
	if ss.limited.Swap(false) {
		srv.lim.ReleaseAddr(ss.client.Addr())
	}
	if prev == stateReady {
		// Out of the registry before the terminal record (event.Registry).
		srv.reg.Remove(ss.live)
		ev = *ss.live.Base()
		ev.ClientBytes = ss.live.ClientBytes.Load()
		ev.OriginBytes = ss.live.OriginBytes.Load()
	} else if typ == event.Disconnect {
		typ, status = event.OriginError, event.StatusOriginConnInternal
		detail = "session ended before its origin flow was up: " + detail
	}
	now := time.Now()
	ev.Type, ev.Status = typ, status
	ev.Time, ev.DisconnectTime = now, now
	ev.CloseSide, ev.CloseReason, ev.Detail = side, reason, detail
	srv.em.Emit(&ev)
	if typ != event.Disconnect || status != event.StatusOK {
		srv.log.Debug("udp session ended", "session", ev.SessionID.String(), "event", typ.String(), "status", status, "detail", detail)
	}
}
