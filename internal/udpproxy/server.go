// Package udpproxy proxies UDP apps: it binds an app's listeners (single
// ports and port ranges, IPv4 and IPv6), keeps one session per client
// address and listener, gives every session its own connected socket to the
// origin (so replies demultiplex in the kernel), and records each session
// with the same lifecycle events as a TCP connection: connect when the first
// datagram reached the origin, disconnect when the session ends (idle
// timeout, origin refused, shutdown), or resolveOrigin / originError /
// clientFiltered instead of connect.
//
// Datagrams move in batches (recvmmsg/sendmmsg) through pooled buffers; the
// steady-state path allocates nothing per datagram. Batched calls and the
// epoll replier are the Linux fast path (mmsg_linux.go, reply_linux.go);
// other Unix systems, and Linux with the build tag portable, move a batch
// one recvmsg/sendmsg per datagram and read each session's replies on a
// goroutine of its own (mmsg_other.go, reply_other.go). The client's
// address reaches the origin as PROXY v2 (first or every datagram) or
// Simple Proxy Protocol (every datagram, both ways). See docs/udp.md.
package udpproxy

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prismproxy/prism/internal/event"
	"github.com/prismproxy/prism/internal/limit"
)

// Stats are the server's counters since New. Drops are datagrams the proxy
// received and did not forward; health checks are not drops: they were
// not meant for an origin.
type Stats struct {
	Sessions        int64 // open sessions now (including ones being set up)
	Blocked         int64 // firewall negative entries now
	ClientDatagrams int64 // datagrams received from clients
	OriginDatagrams int64 // datagrams received from origins
	// HealthChecks counts datagrams from a trusted front (inbound PROXY
	// protocol) with a PROXY v2 LOCAL header: the front's health checks,
	// not clients. They open no session and write no record (spec §7.1),
	// as proxy.Stats.HealthChecks counts the TCP ones.
	HealthChecks    int64
	DropCapApp      int64 // would exceed udp.max_sessions
	DropCapClient   int64 // would exceed udp.max_sessions_per_client
	DropFiltered    int64 // from a client the firewall blocked
	DropPending     int64 // queue full while the session's origin was being set up
	DropTruncated   int64 // larger than udp.max_datagram_size
	DropBadInbound  int64 // malformed inbound PROXY header from a trusted front proxy
	DropBadSPP      int64 // origin reply without a valid SPP header (simple mode)
	DropSendOrigin  int64 // origin socket send buffer full or send error
	DropSendClient  int64 // could not be sent back to the client
	DropNoSession   int64 // arrived while the session was ending
	DropLimitClient int64 // would exceed limits.max_connections_per_client
	DropLimitPrefix int64 // would exceed limits.max_connections_per_prefix
	DropLimitRate   int64 // over limits.new_connections_per_second
	DropDraining    int64 // would open a session while the app drains or shuts down
	DropSetup       int64 // queued for a session that ended before its origin flow was up
}

type counters struct {
	clientDgrams, originDgrams                         atomic.Int64
	capApp, capClient, filtered, pending, truncated    atomic.Int64
	badInbound, badSPP, sendOrigin, sendClient, noSess atomic.Int64
	draining, setup                                    atomic.Int64
	healthChecks                                       atomic.Int64
	limit                                              [4]atomic.Int64 // by limit.Which
}

// Server is one UDP app.
type Server struct {
	app   App
	id    string
	em    event.Emitter
	reg   *event.Registry
	log   *slog.Logger
	pool  *batchPool
	every bool // outbound header on every datagram (simple, or v2 with placement every)

	ctx    context.Context
	cancel context.CancelFunc

	specs     []listenSpec
	listeners []*listener

	nSessions atomic.Int64
	nBlocked  atomic.Int64
	mu        sync.Mutex
	perClient map[netip.Addr]int

	c counters

	closing   atomic.Bool
	draining  atomic.Bool          // Drain: no new sessions
	inherit   map[string]*listener // sockets (and their sessions) of the server this one replaces
	handedOff atomic.Bool
	readers   sync.WaitGroup // listener loops and repliers
	sessWG    sync.WaitGroup // session set-up goroutines
	sweepStop chan struct{}
	sweepDone chan struct{}

	capLog, errLog rateLog

	lim         *limit.Limiter // per-client limits; nil: none
	reportEvery time.Duration  // drop reports (dropReportEvery; tests shorten it)
	drops       dropReporter   // sweep goroutine, then Shutdown
}

// inboundRoomFor is the receive room an app keeps past max_datagram_size
// for inbound PROXY headers: inboundRoom when it trusts front proxies.
func inboundRoomFor(app App) int {
	if len(app.Trusted) > 0 {
		return inboundRoom
	}
	return 0
}

type listenSpec struct {
	host   string
	lo, hi uint16
}

// New prepares app's listeners. Nothing is bound until Start. app is
// trusted to be validated (by package config, or cfgerr.Prepare for its
// UDP and Limits sections): New refuses only an app without an origin pool.
func New(app App, em event.Emitter, reg *event.Registry, logger *slog.Logger) (*Server, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if reg == nil {
		reg = new(event.Registry)
	}
	if em == nil {
		em = event.EmitterFunc(func(*event.Event) {})
	}
	if app.Pool == nil {
		return nil, fmt.Errorf("udp app %s: no origin pool", app.ID)
	}
	if app.ProxyProtocol == "" { // a validated app says "off"; a hand-built one may leave it out
		app.ProxyProtocol = ProxyOff
	}
	s := &Server{
		app: app, id: app.ID, em: em, reg: reg, log: logger.With("app", app.ID, "proto", "udp"),
		pool:      newBatchPool(app.UDP.MaxDatagramSize, inboundRoomFor(app)),
		every:     app.ProxyProtocol == ProxySimple || (app.ProxyProtocol == ProxyV2 && app.UDP.ProxyV2Placement == PlacementEvery),
		perClient: map[netip.Addr]int{},

		reportEvery: dropReportEvery,
		lim:         limit.New(app.Limits),
	}
	for _, l := range app.Listen {
		host := l.Host
		if host == "localhost" {
			host = "127.0.0.1"
		}
		s.specs = append(s.specs, listenSpec{host: host, lo: l.Lo, hi: l.Hi})
	}
	if len(s.specs) == 0 {
		return nil, fmt.Errorf("udp app %s: no listen addresses", app.ID)
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s, nil
}

// Start binds every listener (udp.sockets SO_REUSEPORT sockets per port,
// each with its own receive loop and replier) and starts relaying: Listen,
// then Serve. If one cannot be bound, the ones already bound are closed
// and the error names the address.
func (s *Server) Start() error {
	if err := s.Listen(); err != nil {
		return err
	}
	s.Serve()
	return nil
}

// Listen binds every listener (or takes the inherited sockets) without
// reading any, so that a daemon can bind all its apps before any of them
// takes a datagram. On failure the ones already bound are closed, the
// inherited ones given back to the hand-over, and the error names the
// address.
func (s *Server) Listen() error {
	n := s.app.UDP.Sockets
	for _, sp := range s.specs {
		for p := int(sp.lo); p <= int(sp.hi); p++ {
			var first *listener
			// Past n only the port's further inherited sockets: they are in
			// the kernel's SO_REUSEPORT group, which goes on hashing clients
			// to them whether or not anyone reads them, and closing one drops
			// what it holds. The port keeps them (udp.sockets is a floor for
			// inherited ports; a restart applies a lower count).
			for i := 0; i < n || first != nil && s.inherit[socketKey(sp.host, uint16(p), i)] != nil; i++ {
				if i == n {
					s.log.Info("udp port inherited more sockets than udp.sockets; reading them all", "addr", first.local.String(), "udp.sockets", n)
				}
				port := uint16(p)
				var t *table
				if first != nil {
					port, t = first.local.Port(), first.table // port 0: the one the first socket got
					if i == 1 && !hasReuseport(first) {
						// An inherited socket bound without SO_REUSEPORT
						// (by a server with one socket per port): no
						// second socket can join it.
						s.log.Warn("udp listener inherited without SO_REUSEPORT: one socket for this port", "addr", first.local.String())
						break
					}
				}
				l, err := s.bindOrInherit(sp.host, uint16(p), port, p-int(sp.lo), i, t, n > 1 || i > 0)
				if err != nil {
					s.Release()
					return err
				}
				if first == nil {
					first = l
				}
				s.listeners = append(s.listeners, l)
			}
		}
	}
	return nil
}

// Release undoes Listen before Serve: inherited sockets go back to the
// hand-over given to Inherit (whose owner closes or keeps them), the
// others are closed.
func (s *Server) Release() {
	for _, l := range s.listeners {
		if l.prev == nil {
			_ = l.conn.Close()
		} else {
			s.inherit[l.key] = l.prev // back to the caller's hand-over
		}
		l.rep.close()
	}
	s.listeners = nil
}

// Serve starts each socket's receive loop and replier, and the session
// sweep.
func (s *Server) Serve() {
	for _, l := range s.listeners {
		s.readers.Add(2)
		go l.loop()
		go l.rep.loop()
	}
	s.sweepStop, s.sweepDone = make(chan struct{}), make(chan struct{})
	// The firewall's change signal is taken here, not in the goroutine: a
	// reload between Start and the goroutine's first run would be missed.
	fwc, _ := s.app.Firewall.(changer)
	var changed <-chan struct{}
	if fwc != nil {
		changed = fwc.Changed()
	}
	go s.sweep(fwc, changed)
}

// Addrs returns the bound listener addresses in config order.
func (s *Server) Addrs() []net.Addr {
	out := make([]net.Addr, 0, len(s.listeners))
	for _, l := range s.listeners {
		if l.primary {
			out = append(out, l.conn.LocalAddr())
		}
	}
	return out
}

// Stats returns the counters.
func (s *Server) Stats() Stats {
	return Stats{
		Sessions:        s.nSessions.Load(),
		Blocked:         s.nBlocked.Load(),
		ClientDatagrams: s.c.clientDgrams.Load(),
		OriginDatagrams: s.c.originDgrams.Load(),
		HealthChecks:    s.c.healthChecks.Load(),
		DropCapApp:      s.c.capApp.Load(),
		DropCapClient:   s.c.capClient.Load(),
		DropFiltered:    s.c.filtered.Load(),
		DropPending:     s.c.pending.Load(),
		DropTruncated:   s.c.truncated.Load(),
		DropBadInbound:  s.c.badInbound.Load(),
		DropBadSPP:      s.c.badSPP.Load(),
		DropSendOrigin:  s.c.sendOrigin.Load(),
		DropSendClient:  s.c.sendClient.Load(),
		DropNoSession:   s.c.noSess.Load(),
		DropLimitClient: s.c.limit[limit.PerClient].Load(),
		DropLimitPrefix: s.c.limit[limit.PerPrefix].Load(),
		DropLimitRate:   s.c.limit[limit.Rate].Load(),
		DropDraining:    s.c.draining.Load(),
		DropSetup:       s.c.setup.Load(),
	}
}

// CloseSession ends the established session with session id id as a close
// by the proxy (Disconnect, Status 200, reason closed, side proxy) with
// detail as its terminal record's Detail. It reports whether such a session
// was open.
func (s *Server) CloseSession(id event.ID, detail string) bool {
	var buf []*session
	for _, l := range s.ports() {
		buf = l.snapshot(buf[:0])
		for _, ss := range buf {
			// The base of a ready session no longer changes (it is in the
			// registry); pending and blocked ones are not live sessions.
			if ss.state.Load() == stateReady && ss.live.Base().SessionID == id {
				ss.finish(event.Disconnect, event.StatusOK, event.SideProxy, event.ReasonClosed, detail)
				return true
			}
		}
	}
	return false
}

// Shutdown closes the listeners and ends every session with its terminal
// record (disconnect, Status 200, closed by the proxy). A UDP session has
// no in-flight stream to drain: once the listener is closed no reply could
// reach the client, so sessions end at once and ctx only bounds the wait.
func (s *Server) Shutdown(ctx context.Context) error {
	if !s.closing.CompareAndSwap(false, true) {
		return nil
	}
	for _, l := range s.listeners {
		if !l.handed { // a handed socket is the next server's now
			_ = l.conn.Close()
		}
		l.rep.close()
	}
	s.readers.Wait()
	if s.sweepStop != nil {
		close(s.sweepStop)
		<-s.sweepDone
	}
	s.cancel() // unblock resolves in progress
	n := 0
	for _, l := range s.ports() {
		for _, ss := range l.snapshot(nil) {
			ss.finish(event.Disconnect, event.StatusOK, event.SideProxy, event.ReasonClosed, "proxy shutting down")
			n++
		}
	}
	if n > 0 {
		s.log.Info("closed UDP sessions at shutdown", "count", n)
	}
	done := make(chan struct{})
	go func() { s.sessWG.Wait(); close(done) }()
	select {
	case <-done:
		s.drops.report(s) // what the last period did not report yet
		s.logTotals()
		return nil
	case <-ctx.Done():
		s.drops.report(s)
		s.logTotals()
		return fmt.Errorf("udp app %s: session goroutines still running: %w", s.id, ctx.Err())
	}
}

// ports returns the first socket of every listen port: one per session
// table.
func (s *Server) ports() []*listener {
	out := make([]*listener, 0, len(s.listeners))
	for _, l := range s.listeners {
		if l.primary {
			out = append(out, l)
		}
	}
	return out
}

// sweep ends sessions idle for longer than the idle timeout and expires
// firewall negative entries the same way.
// changer is a firewall that can say when its verdicts may have changed
// (list files reloaded with other entries, or, under country and ASN
// rules, the GeoIP database replaced).
type changer interface{ Changed() <-chan struct{} }

func (s *Server) sweep(fwc changer, changed <-chan struct{}) {
	defer close(s.sweepDone)
	idle := s.app.UDP.IdleTimeout
	tick := min(max(idle/4, 10*time.Millisecond), time.Second)
	t := time.NewTicker(tick)
	defer t.Stop()
	var buf []*session
	// A firewall that can say when its rules (or the GeoIP data its country
	// and ASN rules read) changed gets its negative entries expired at once,
	// so a client that is no longer blocked is not refused until it falls
	// silent. Sessions it allowed stay: a change does not re-check them.
	for {
		select {
		case <-s.sweepStop:
			return
		case <-changed:
			changed = fwc.Changed()
			for _, l := range s.ports() {
				buf = l.snapshot(buf[:0])
				for _, ss := range buf {
					// A limit refusal is not the firewall's: it lasts until the
					// flow falls silent, whatever the lists say.
					if ss.state.Load() == stateBlocked && ss.refused == limit.None {
						ss.finish(event.Disconnect, event.StatusOK, event.SideProxy, event.ReasonClosed, "firewall rules changed")
					}
				}
			}
			clear(buf)
		case now := <-t.C:
			s.drops.due(s, now)
			cut := now.Add(-idle).UnixNano()
			for _, l := range s.ports() {
				buf = l.snapshot(buf[:0])
				for _, ss := range buf {
					if ss.last.Load() < cut && ss.state.Load() != statePending {
						ss.finish(event.Disconnect, event.StatusOK, event.SideProxy, event.ReasonTimeout,
							"no datagram for "+idle.String())
					}
				}
			}
			clear(buf)
		}
	}
}

// admit reserves a session slot for client, or reports which cap is full.
func (s *Server) admit(client netip.Addr) (ok bool, reason string) {
	if s.nSessions.Add(1) > int64(s.app.UDP.MaxSessions) {
		s.nSessions.Add(-1)
		s.c.capApp.Add(1)
		return false, "udp.max_sessions"
	}
	s.mu.Lock()
	n := s.perClient[client]
	if n >= s.app.UDP.MaxSessionsPerClient {
		s.mu.Unlock()
		s.nSessions.Add(-1)
		s.c.capClient.Add(1)
		return false, "udp.max_sessions_per_client"
	}
	s.perClient[client] = n + 1
	s.mu.Unlock()
	return true, ""
}

func (s *Server) unadmit(client netip.Addr) {
	s.nSessions.Add(-1)
	s.mu.Lock()
	if n := s.perClient[client]; n <= 1 {
		delete(s.perClient, client)
	} else {
		s.perClient[client] = n - 1
	}
	s.mu.Unlock()
}

// rateLog lets one message through per interval and counts the rest.
type rateLog struct {
	next       atomic.Int64
	suppressed atomic.Int64
}

const rateLogEvery = 10 * time.Second

func (r *rateLog) allow(now int64) (ok bool, suppressed int64) {
	n := r.next.Load()
	if now < n || !r.next.CompareAndSwap(n, now+int64(rateLogEvery)) {
		r.suppressed.Add(1)
		return false, 0
	}
	return true, r.suppressed.Swap(0)
}
