package proxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/pires/go-proxyproto"

	"github.com/prismproxy/prism/internal/event"
	"github.com/prismproxy/prism/internal/event/errstatus"
	"github.com/prismproxy/prism/internal/limit"
	"github.com/prismproxy/prism/internal/origin"
	"github.com/prismproxy/prism/internal/pphdr"
	"github.com/prismproxy/prism/internal/relay"
	"github.com/prismproxy/prism/internal/tlsedge"
)

type tcpApp struct {
	srv       *Server
	cfg       App // as handed to New
	pool      *origin.Pool
	sem       chan struct{}
	fw        Firewall
	ppVersion byte
	listeners []*listener
	edge      *tlsedge.Edge  // nil: no TLS handling at all
	routes    []*origin.Pool // passthrough SNI routes, by tlsedge route index
	terminate bool           // edge TLS is terminated (flexible, full, strict)
	originTLS bool           // TLS to the origin (full, strict)
	lim       *limit.Limiter // per-client limits; nil: none
	dialTime  origin.Latency // how long dials took (all attempts of one connection)
	raw       bool           // TCP listeners take the raw path (see newTCPApp)
}

// session is one connection being handled; Shutdown uses it to stop the
// connection at the drain deadline, whatever phase it is in.
//
// It is also the context.Context of the phases before the relay: those
// that wait on the client (inbound PROXY header, edge TLS handshake,
// ClientHello peek) and those that make the origin leg (origin lookup,
// dial, origin TLS handshake): done when the session is stopped, by
// Shutdown or an operator's CloseSession. A stop wakes a wait on the
// client with a past deadline, which a phase setting its own deadline
// would undo; each phase checks Err right after it sets or clears its
// deadline (see readProxyHeader, tlsedge.Edge.Terminate), so a stop is
// never lost whenever it lands. Done is for waits that are not on the
// socket (a handshake slot, a lookup, a dial in a relay event loop): its
// channel is made only when asked for. AfterFunc lets a context made
// over the session (the dial's and handshakes' timeouts) follow its stop
// without a goroutine of its own.
type session struct {
	id      event.ID
	mu      sync.Mutex
	stopped bool     // next to mu: the struct stays in the 96-byte size class
	client  net.Conn // nil on the raw path
	origin  net.Conn // nil on the raw path
	relay   *relay.Relay
	detail  string        // why it was stopped, for the terminal record ("" at shutdown)
	done    chan struct{} // Done's, closed by stopWith; nil until asked for
	after   *afterFunc    // AfterFunc's, run by stopWith
}

// afterFunc is a function registered with session.AfterFunc, in a list.
type afterFunc struct {
	f    func()
	next *afterFunc
}

func (ss *session) stop() { ss.stopWith("") }

// stopWith stops the session, the first time only: its first stop says
// why it ended (as the relay keeps its first cause).
func (ss *session) stopWith(detail string) {
	ss.mu.Lock()
	if ss.stopped {
		ss.mu.Unlock()
		return
	}
	ss.stopped = true
	ss.detail = detail
	if ss.done != nil {
		close(ss.done)
	}
	after := ss.after
	ss.after = nil
	if ss.relay != nil {
		ss.relay.StopWith(detail)
	} else {
		// Not relaying yet: unblock whatever handshake is in progress; a
		// lookup or dial ends with the session as its context.
		if ss.client != nil {
			_ = ss.client.SetDeadline(time.Unix(1, 0))
		}
		if ss.origin != nil {
			_ = ss.origin.SetDeadline(time.Unix(1, 0))
		}
	}
	ss.mu.Unlock()
	for ; after != nil; after = after.next {
		go after.f() // as context.AfterFunc; f may look at the session (Err)
	}
}

// stopState says whether the session was stopped, and the stop's detail.
func (ss *session) stopState() (stopped bool, detail string) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return ss.stopped, ss.detail
}

// The context.Context of the session (see session).

func (ss *session) Deadline() (time.Time, bool) { return time.Time{}, false }
func (ss *session) Value(any) any               { return nil }

func (ss *session) Done() <-chan struct{} {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.done == nil {
		ss.done = make(chan struct{})
		if ss.stopped {
			close(ss.done)
		}
	}
	return ss.done
}

func (ss *session) Err() error {
	if stopped, _ := ss.stopState(); stopped {
		return errStopped
	}
	return nil
}

// AfterFunc arranges for f to run on a goroutine of its own once the
// session is stopped (at once if it is already), and returns a stop that
// undoes that, reporting whether it did so before f was started. It is
// context's hook for contexts that are not its own: context.WithTimeout,
// WithCancel and AfterFunc over the session register with it instead of
// starting a goroutine that waits on Done (context.go, propagateCancel).
func (ss *session) AfterFunc(f func()) (stop func() bool) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.stopped {
		go f()
		return func() bool { return false }
	}
	n := &afterFunc{f: f, next: ss.after}
	ss.after = n
	return func() bool {
		ss.mu.Lock()
		defer ss.mu.Unlock()
		for p := &ss.after; *p != nil; p = &(*p).next {
			if *p == n {
				*p = n.next
				return true
			}
		}
		return false // run by the stop, or stopped before
	}
}

// errStopped is the session's context error: the proxy stopped it.
var errStopped = fmt.Errorf("connection stopped by the proxy: %w", context.Canceled)

// endIfStopped writes the terminal record of a connection that a stop
// (the drain deadline, an operator's CloseSession) ended in a phase
// before it was up, and reports whether it did. The phase woke to a past
// deadline (or to the session's context), so what it saw, a timeout or a
// cut handshake, is not the client's doing: the record is the phase's
// event typ with status, written as a close by the proxy (side proxy,
// reason closed: EdgeOne net_exception_closed, docs/logging.md), its
// detail the stop's ("shutdown" when it has none) and the phase.
func (a *tcpApp) endIfStopped(ss *session, c leg, ev *event.Event, typ event.Type, status int, phase string, err error) bool {
	stopped, why := ss.stopState()
	if !stopped {
		return false
	}
	if why == "" {
		why = "shutdown"
	}
	a.end(c, ev, typ, status, event.SideProxy, event.ReasonClosed, why+" while "+phase+": "+err.Error())
	return true
}

// leg is one side of a connection as handle holds it: a net.Conn, or on
// the raw path (a plain TCP app on Linux, see tcpApp.raw) a kernel socket
// that the relay's event loop takes over, for which no net.Conn is made.
type leg struct {
	c net.Conn
	s relay.Sock
}

func (g leg) close() {
	if g.c != nil {
		_ = g.c.Close()
		return
	}
	_ = g.s.Close()
}

// rtt is the leg's TCP_INFO RTT (0 for unix sockets).
func (g leg) rtt() time.Duration {
	if g.c != nil {
		return relay.RTT(g.c)
	}
	return g.s.RTT()
}

func (ss *session) setOrigin(c net.Conn) {
	ss.mu.Lock()
	ss.origin = c
	if ss.stopped {
		_ = c.SetDeadline(time.Unix(1, 0))
	}
	ss.mu.Unlock()
}

// setRelay publishes r; if the session was already stopped it stops r.
// From now on the relay owns the conns (on its loop path it has closed
// them and kept the sockets): the session lets go of them, so that an
// idle connection does not keep two closed net.Conns alive (about 0.6 KiB
// of netFD and addresses).
func (ss *session) setRelay(r *relay.Relay) {
	ss.mu.Lock()
	ss.relay = r
	ss.client, ss.origin = nil, nil
	if ss.stopped {
		r.StopWith(ss.detail)
	}
	ss.mu.Unlock()
}

func addrPortOf(a net.Addr) netip.AddrPort {
	switch v := a.(type) {
	case *net.TCPAddr:
		ap := v.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	case *net.UDPAddr:
		ap := v.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	return netip.AddrPort{}
}

// handle takes one accepted connection through its whole lifecycle. Once
// both legs are up it hands the connection to the relay and returns, so an
// idle connection holds no goroutine; done runs exactly once, when the
// connection has ended and its terminal record was emitted.
//
// c is the accepted connection; on the raw path peer and local are its
// addresses (from accept), on the net.Conn way they come from c. in is
// the accept loop when it handles the connection itself (nil: handle has
// a goroutine of its own); handle yields it before anything that may wait.
func (a *tcpApp) handle(l *listener, c leg, peer, local netip.AddrPort, done func(), in *inline) {
	s := a.srv
	handedOff := false
	start := time.Now()
	// The record is built in place in the Live that will carry it while
	// the connection is open: one allocation for both (the Live is
	// garbage if the connection ends before its connect record).
	live := new(event.Live)
	ev := live.Base()
	*ev = event.New(a.cfg.ID, event.NewID(start))
	ev.StartTime, ev.Time = start, start
	ev.ProxyProtocol = a.cfg.ProxyProtocol
	ev.OriginProto = a.pool.Proto(event.ProtoTCP) // until an origin is chosen (spec §7.3)
	if l.path != "" {
		ev.ClientProto = event.ProtoUnix
		ev.ClientPath = l.path
	} else {
		ev.ClientProto = event.ProtoTCP
		if c.c != nil {
			peer, local = addrPortOf(c.c.RemoteAddr()), addrPortOf(c.c.LocalAddr())
		}
		ev.PeerAddr = peer
		ev.ClientAddr = ev.PeerAddr
		ev.LocalAddr = local
	}

	ss := &session{id: ev.SessionID, client: c.c}
	if !s.track(ss) {
		// The drain deadline passed before handle began (the connection
		// waited for a global slot, see awaitSlot, or for its goroutine):
		// no stop can reach it now, and it was accepted, so it ends here
		// with its record, as one stopped before it was up.
		a.end(c, ev, event.ClientFiltered, event.StatusInternal, event.SideProxy, event.ReasonClosed,
			"shutdown: the drain deadline passed before the connection was handled")
		c.close()
		done()
		return
	}
	defer func() {
		if !handedOff {
			s.untrack(ss) // before the close: no stop may reach a reused descriptor
			c.close()
			done()
		}
	}()

	// 1. Inbound PROXY header, from trusted front proxies only. A health
	// check of the front writes no record; a missing or invalid header is
	// one clientFiltered record (spec §7.1): a disconnect only follows a
	// connect.
	var prefix []byte
	if l.path == "" && pphdr.Trusted(a.cfg.Trusted, ev.PeerAddr.Addr()) {
		var err error
		prefix, err = a.readProxyHeader(ss, c.c, ev) // never the raw path (tcpApp.raw)
		if err != nil {
			if errors.Is(err, errHealthCheck) {
				s.healthChecks.Add(1)
				s.log.Debug("health check from a trusted front", "app", ev.App, "peer", ev.PeerAddr.String(), "detail", err.Error())
				return
			}
			if a.endIfStopped(ss, c, ev, event.ClientFiltered, event.StatusInternal, "reading the inbound PROXY header", err) {
				return
			}
			status, reason := event.StatusInternal, event.ReasonPeerError
			if isTimeout(err) {
				status, reason = event.StatusClientTimeout, event.ReasonTimeout
			}
			a.end(c, ev, event.ClientFiltered, status, event.SideClient, reason, "inbound PROXY header: "+err.Error())
			return
		}
	}

	// 2. IP firewall and geo.
	if a.fw != nil && a.fw.Apply(ev.ClientAddr.Addr(), ev) {
		detail := "client matched " + ev.FirewallMatch
		if ev.FirewallMatch == event.FirewallUnknown {
			detail = "no rule matched (firewall default: block)"
		}
		a.end(c, ev, event.ClientFiltered, event.StatusFiltered, event.SideProxy, event.ReasonClosed, detail) // refused by prism (spec §7.5)
		return
	}

	// Per-client limits (connections, prefix, rate), once the client is known.
	if !a.admitClient(c, ev, start, &done) {
		return
	}

	// 3. Edge TLS: terminate, or peek at the ClientHello for its SNI.
	clientConn := c.c
	pool := a.pool
	if a.edge != nil {
		ev.TLSMode = a.edge.Mode()
		switch {
		case a.terminate:
			tc, status, err := a.edge.Terminate(ss, tlsedge.WithPrefix(c.c, prefix), ev)
			if err != nil && a.endIfStopped(ss, c, ev, event.TLSError, event.StatusInternal, "in the edge TLS handshake", err) {
				return
			}
			if errors.Is(err, tlsedge.ErrHandshakeLimit) {
				a.end(c, ev, event.ClientFiltered, event.StatusFiltered, event.SideProxy, event.ReasonClosed, err.Error())
				return
			}
			if err != nil {
				a.end(c, ev, event.TLSError, status, event.SideClient, event.ReasonPeerError, err.Error())
				return
			}
			clientConn, prefix = tc, nil
		case a.edge.NeedsPeek():
			sni, peeked, status, err := a.edge.Peek(ss, tlsedge.WithPrefix(c.c, prefix), ev)
			if err != nil && a.endIfStopped(ss, c, ev, event.TLSError, event.StatusInternal, "reading the ClientHello", err) {
				return
			}
			if err != nil {
				a.end(c, ev, event.TLSError, status, event.SideClient, event.ReasonPeerError, err.Error())
				return
			}
			prefix = peeked // includes the PROXY-header leftovers it replayed
			if i, ok := a.edge.RouteFor(sni); ok {
				pool = a.routes[i]
				ev.OriginProto = pool.Proto(event.ProtoTCP)
			}
		}
	}

	// 4. Resolve the origin. From here the session is the context of
	// what makes the origin leg: a stop (Shutdown, CloseSession) cuts a
	// lookup, a dial or the origin TLS handshake in progress.
	if pool.Resolves() {
		in.yield() // a DNS lookup may wait
	}
	targets, fail := pool.Candidates(ss, ev.ClientAddr.Addr(), l.offset)
	if fail != nil {
		ev.OriginAddr = fail.Addr
		if a.endIfStopped(ss, c, ev, event.ResolveOrigin, event.StatusResolveInternal, "resolving the origin", errors.New(fail.Detail)) {
			return
		}
		a.end(c, ev, event.ResolveOrigin, fail.Status, event.SideOrigin, event.ReasonCreatePeer, fail.Detail)
		return
	}

	// 5. Dial with failover.
	dialStart := time.Now()
	oc, target, status, err := a.dial(ss, pool, targets, clientConn == nil, in)
	a.dialTime.Observe(time.Since(dialStart))
	a.setOrigin(ev, target)
	if err != nil {
		if a.endIfStopped(ss, c, ev, event.OriginError, event.StatusOriginConnInternal, "dialing the origin", err) {
			return
		}
		a.end(c, ev, event.OriginError, status, event.SideOrigin, event.ReasonCreatePeer, err.Error())
		return
	}
	if oc.c != nil {
		ss.setOrigin(oc.c)
	}
	release := pool.Acquire(target)
	defer func() {
		if !handedOff {
			oc.close()
			release()
		}
	}()

	// PROXY header to the origin, in the clear before any origin TLS.
	if a.ppVersion != 0 {
		if err := a.writeProxyHeader(oc, ev); err != nil {
			a.end(c, ev, event.OriginError, event.StatusOriginUnknown, event.SideOrigin, event.ReasonCreatePeer, "write PROXY header: "+err.Error())
			return
		}
	}
	originConn := oc.c
	if a.originTLS {
		// A stop wakes this handshake with the past deadline it sets on
		// oc.c (ss.setOrigin above), and through the session as its
		// context (DialTLS's timeout over it takes no goroutine: see
		// session.AfterFunc). Nothing here reports to the pool's passive
		// ejection, which the dial already told of its success.
		tc, err := a.edge.DialTLS(ss, oc.c, ev)
		if err != nil && a.endIfStopped(ss, c, ev, event.OriginError, event.StatusOriginConnInternal, "in the origin TLS handshake", err) {
			return // prism's stop, not the origin's failure (docs/config.md: 524)
		}
		if err != nil {
			a.end(c, ev, event.OriginError, event.StatusOriginUnknown, event.SideOrigin, event.ReasonCreatePeer, err.Error())
			return
		}
		originConn = tc
	}

	// 6. Both legs up.
	now := time.Now()
	ev.ConnectTime, ev.Time = now, now
	ev.Type, ev.Status = event.Connect, event.StatusConnect
	ev.ClientRTT, ev.OriginRTT = c.rtt(), oc.rtt() // from the handshakes
	s.em.Emit(ev)
	s.reg.Add(live)

	// 7. Relay.
	opts := relay.Options{IdleTimeout: a.cfg.IdleTimeout, ClientPrefix: prefix, Live: live,
		ClientRTT: ev.ClientRTT, OriginRTT: ev.OriginRTT, // sampled above: the relay need not read TCP_INFO again
		KeepAlive: relayKeepAlive, // set once the connection goes quiet, not per short connection
		Mode:      a.cfg.RelayMode}
	var r *relay.Relay
	if clientConn == nil { // the raw path: both legs are sockets
		r = relay.NewSocks(c.s, oc.s, opts)
	} else {
		r = relay.New(clientConn, originConn, opts)
	}
	ss.setRelay(r)
	handedOff = true
	r.Start(func(res relay.Result) {
		// 8. Close. The relay has closed both legs. The session leaves the
		// registry before its terminal record is emitted (see event.Registry).
		s.reg.Remove(live)
		// The record is rebuilt from the Live's copy of the connect
		// record, so that this callback does not keep a second copy
		// alive for the whole life of an idle connection; in a pooled
		// Event (Emit copies what it keeps).
		ev := eventPool.Get().(*event.Event)
		*ev = *live.Base()
		ev.ClientBytes, ev.OriginBytes = res.ClientBytes, res.OriginBytes
		if res.ClientRTT > 0 { // a later sample never replaces a real one with 0 (spec §7.2)
			ev.ClientRTT = res.ClientRTT
		}
		if res.OriginRTT > 0 {
			ev.OriginRTT = res.OriginRTT
		}
		a.finish(ev, event.Disconnect, res.Status, res.Side, res.Reason, res.Detail)
		*ev = event.Event{}
		eventPool.Put(ev)
		release()
		s.untrack(ss)
		done()
	})
}

// eventPool holds the Events terminal records are built in.
var eventPool = sync.Pool{New: func() any { return new(event.Event) }}

func (a *tcpApp) setOrigin(ev *event.Event, t origin.Target) {
	ev.OriginAddr = t.Addr
	ev.OriginPath = t.Path
	ev.OriginName = t.Name
	if t.Path != "" {
		ev.OriginProto = event.ProtoUnix
	} else if t.Addr.IsValid() {
		ev.OriginProto = event.ProtoTCP
	}
}

// end emits the terminal record of a connection that ends before the
// relay, with the client leg's RTT from TCP_INFO: every TCP record carries
// one (spec §7.2). c is the accepted socket, still open.
func (a *tcpApp) end(c leg, ev *event.Event, typ event.Type, status int, side event.Side, reason event.Reason, detail string) {
	if ev.ClientProto == event.ProtoTCP && ev.ClientRTT == 0 {
		ev.ClientRTT = c.rtt()
	}
	a.finish(ev, typ, status, side, reason, detail)
}

// finish emits the terminal record.
func (a *tcpApp) finish(ev *event.Event, typ event.Type, status int, side event.Side, reason event.Reason, detail string) {
	now := time.Now()
	ev.Type, ev.Status = typ, status
	ev.Time, ev.DisconnectTime = now, now
	ev.CloseSide, ev.CloseReason, ev.Detail = side, reason, detail
	a.srv.em.Emit(ev)
	if typ != event.Disconnect || status != event.StatusOK {
		a.srv.log.Debug("connection ended", "app", ev.App, "session", ev.SessionID.String(), "event", typ.String(), "status", status, "detail", detail)
	}
}

// errHealthCheck marks a connection from a trusted front that is a health
// check, not a client: it closed (FIN or RST) before sending a byte, or its
// PROXY v2 header says LOCAL (the front opened it on its own behalf).
var errHealthCheck = errors.New("health check")

// readProxyHeader reads a PROXY v1/v2 header within the header timeout and
// replaces the event's client address with the one it carries. It returns
// any bytes read past the header, which belong to the client's stream.
// A health check returns an error wrapping errHealthCheck; a header that
// has not arrived whole by the timeout, an error that isTimeout accepts.
// ctx is the session: a stop before the header's deadline was set, or
// before it was cleared, would be undone by it, so it is checked after
// each (see session).
func (a *tcpApp) readProxyHeader(ctx context.Context, c net.Conn, ev *event.Event) ([]byte, error) {
	timeout := a.cfg.HeaderTimeout
	deadline := time.Now().Add(timeout)
	_ = c.SetReadDeadline(deadline)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	br := bufio.NewReaderSize(c, 512)
	if _, err := br.Peek(1); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) {
			// Closed (with FIN, or RST as HAProxy closes its checks)
			// before sending a byte: a load balancer's plain TCP check.
			return nil, fmt.Errorf("trusted peer %s closed before sending a byte: %w", ev.PeerAddr, errHealthCheck)
		}
		if isTimeout(err) {
			return nil, fmt.Errorf("trusted peer %s sent nothing within header_timeout %s: %w", ev.PeerAddr, timeout, err)
		}
		return nil, fmt.Errorf("trusted peer %s: read PROXY header: %w", ev.PeerAddr, err)
	}
	if err := pphdr.BufferV1(br); err != nil && isTimeout(err) {
		return nil, fmt.Errorf("PROXY v1 header not complete within header_timeout %s: %w", timeout, err)
	}
	h, err := pphdr.ReadTCP(br)
	if err != nil {
		if !time.Now().Before(deadline) && !isTimeout(err) {
			// The parser gave up at the deadline with an error of its own:
			// the header was still arriving.
			err = fmt.Errorf("%w (%w after header_timeout %s)", err, os.ErrDeadlineExceeded, timeout)
		}
		if errors.Is(err, proxyproto.ErrNoProxyProtocol) {
			return nil, fmt.Errorf("trusted peer %s sent no PROXY header", ev.PeerAddr)
		}
		return nil, err
	}
	if h.Version == 2 && h.Command.IsLocal() {
		return nil, fmt.Errorf("trusted peer %s sent a PROXY v2 LOCAL header: %w", ev.PeerAddr, errHealthCheck)
	}
	if src, ok := pphdr.TCPSource(h); ok {
		ev.ClientAddr = src
	}
	var rest []byte
	if n := br.Buffered(); n > 0 {
		rest, _ = br.Peek(n)
		rest = append([]byte(nil), rest...)
	}
	_ = c.SetReadDeadline(time.Time{}) // on failure the connection ends: no need
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return rest, nil
}

func (a *tcpApp) writeProxyHeader(oc leg, ev *event.Event) error {
	var tlvs []proxyproto.TLV
	if a.ppVersion == 2 && a.edge != nil && a.edge.Config().ProxyProtocolTLVs {
		var err error
		if tlvs, err = tlsedge.ProxyTLVs(ev); err != nil {
			return fmt.Errorf("PROXY v2 TLVs: %w", err)
		}
	}
	// A client without an IP address (unix socket) gets v1 UNKNOWN / v2 LOCAL.
	h, err := pphdr.TCPHeader(a.ppVersion, ev.ClientAddr, ev.LocalAddr, tlvs)
	if err != nil {
		return err
	}
	if oc.c == nil {
		return oc.s.Write(h) // a fresh socket has room for it
	}
	_ = oc.c.SetWriteDeadline(time.Now().Add(a.cfg.ConnectTimeout))
	defer oc.c.SetWriteDeadline(time.Time{})
	_, err = oc.c.Write(h)
	return err
}

// dial tries the targets in order until one connects, telling pool how
// each attempt went (passive ejection). On total failure it returns the
// status of the last attempt's error. raw dials raw sockets (the client
// leg is one too). ctx is the session: once it is stopped no attempt
// counts, not even one that connected as the stop landed (the raw path's
// connect(2) does not look at ctx): the connection ends with the stop's
// record, not a connect.
func (a *tcpApp) dial(ctx context.Context, pool *origin.Pool, targets []origin.Target, raw bool, in *inline) (leg, origin.Target, int, error) {
	var last error
	status := event.StatusOriginUnknown
	// No keepalive at dial time: the relay sets it on both legs once the
	// connection goes quiet (relay.Options.KeepAlive); the dial and any
	// origin TLS handshake have their own timeouts.
	d := net.Dialer{Timeout: a.cfg.ConnectTimeout, KeepAlive: -1}
	for i, t := range targets {
		var c leg
		var err error
		if raw {
			c.s, err = a.dialSock(ctx, t, in)
		} else {
			c.c, err = d.DialContext(ctx, t.Network("tcp"), t.String())
		}
		if cerr := ctx.Err(); cerr != nil {
			// Cut by a stop: says nothing about the origin.
			if err == nil {
				c.close()
				err = cerr
			}
			return leg{}, t, errstatus.Dial(err), fmt.Errorf("dial origin %s: %w", t, err)
		}
		pool.Report(t, err)
		if err == nil {
			return c, t, 0, nil
		}
		status = errstatus.Dial(err)
		last = fmt.Errorf("dial origin %s: %w", t, err)
		if i+1 < len(targets) {
			a.srv.log.Debug("origin dial failed, trying next", "app", a.cfg.ID, "origin", t.String(), "err", err)
		}
	}
	return leg{}, targets[len(targets)-1], status, last
}

// dialSock connects to t on the raw path: at once for an origin that
// answers within connect(2) (one on the same host), else waiting in an
// event loop until connect_timeout or the session's stop (ctx), after
// handing accepting on (in.yield).
func (a *tcpApp) dialSock(ctx context.Context, t origin.Target, in *inline) (relay.Sock, error) {
	s, up, err := relay.Connect(t.Addr, t.Path)
	if err != nil || up {
		return s, err
	}
	in.yield()
	var deadline time.Time
	if a.cfg.ConnectTimeout > 0 {
		deadline = time.Now().Add(a.cfg.ConnectTimeout)
	}
	if err := s.WaitConnected(ctx, t.Addr, t.Path, deadline); err != nil {
		s.Close()
		return relay.Sock{}, err
	}
	return s, nil
}

func isTimeout(err error) bool { return errstatus.IsTimeout(err) }
