// Package proxy runs a TCP app's listeners and takes every TCP connection
// through its lifecycle (spec §1): inbound PROXY header, IP firewall, edge
// TLS, origin resolution and dial with failover, PROXY header to the
// origin, relay, close — emitting exactly one connect record and one
// terminal record per connection to an event.Emitter, and keeping the open
// session in an event.Registry so log jobs can write periodic records.
//
// A Server runs one App, built of plain values and parts made elsewhere
// (internal/daemon/appbuild): it imports no config and knows the canonical
// event only; vendor field names live in internal/render.
//
// An app that only relays (no edge TLS, no inbound PROXY header) takes
// the raw path on Linux: its connections are accepted and its origins
// dialed as kernel sockets (relay.Sock) that go straight to the relay's
// event loop, with no net.Conn made for them (see tcpApp.raw, leg).
package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/prismproxy/prism/internal/event"
	"github.com/prismproxy/prism/internal/gopool"
	"github.com/prismproxy/prism/internal/netspec"
	"github.com/prismproxy/prism/internal/origin"
	"github.com/prismproxy/prism/internal/relay"
	"github.com/prismproxy/prism/internal/tlsedge"
)

// Firewall decides for a client address and fills the event's firewall and
// geo fields; it reports whether the client must be refused.
// *firewall.Firewall satisfies it.
type Firewall interface {
	Apply(client netip.Addr, e *event.Event) (blocked bool)
}

// Server is one TCP app, running.
type Server struct {
	em  event.Emitter
	reg *event.Registry
	log *slog.Logger

	app *tcpApp

	ctx    context.Context // cancelled when the drain deadline passes, once every session is stopped (awaitSlot's wait)
	cancel context.CancelFunc

	stopAccepting chan struct{} // closed when Shutdown starts

	mu       sync.Mutex
	sessions map[*session]struct{}
	forced   bool // drain deadline passed: stop every session now
	closing  atomic.Bool
	wg       sync.WaitGroup // connection handlers
	accepts  sync.WaitGroup // accept loops

	healthChecks atomic.Int64  // see Stats
	acceptErrs   atomic.Uint64 // failed accepts, every listener
	serving      atomic.Bool   // Start bound every listener (the shutdown totals are logged)

	gsem chan struct{} // the config's global max_connections, shared by every app's server (WithGlobalSlots); nil: none

	inherit    Listeners     // bound sockets from the server this one replaces (reload)
	handoff    chan struct{} // closed when HandOff stops the accept loops
	handingOff atomic.Bool
}

// AcceptErrors is how many accepts have failed (EMFILE and the like).
func (s *Server) AcceptErrors() uint64 { return s.acceptErrs.Load() }

// Option adjusts a Server before Start.
type Option func(*Server)

// New prepares app. Its values are trusted as given (config validated
// them, appbuild built the parts); only a missing pool or listen list is
// refused. Nothing listens until Start.
func New(app App, em event.Emitter, reg *event.Registry, logger *slog.Logger, opts ...Option) (*Server, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if reg == nil {
		reg = new(event.Registry)
	}
	if app.Pool == nil {
		return nil, fmt.Errorf("app %s: no origin pool", app.ID)
	}
	if len(app.Listen) == 0 {
		return nil, fmt.Errorf("app %s: no listen addresses", app.ID)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{em: em, reg: reg, log: logger, ctx: ctx, cancel: cancel,
		sessions: map[*session]struct{}{}, stopAccepting: make(chan struct{}), handoff: make(chan struct{})}
	for _, o := range opts {
		if o != nil {
			o(s)
		}
	}
	s.app = newTCPApp(s, app)
	return s, nil
}

// Registry is the set of open sessions (for periodic records).
func (s *Server) Registry() *event.Registry { return s.reg }

// Start binds every listener and starts accepting: Listen, then Serve. If
// any listener cannot be bound, the ones already bound are closed and the
// error names the address.
func (s *Server) Start() error {
	if err := s.Listen(); err != nil {
		return err
	}
	s.Serve()
	return nil
}

// Listen binds every listener (or takes the inherited one) without
// accepting on any, so that a daemon can bind all its apps before any of
// them takes a connection: an app that fails to bind then leaves nothing
// half started (a new process of a binary upgrade would otherwise accept
// connections from the shared backlog and cut them when it gives up). On
// failure the ones already bound are closed, the inherited ones given back
// to the hand-over, and the error names the address.
func (s *Server) Listen() error {
	if err := s.app.listen(); err != nil {
		s.Release()
		return err
	}
	return nil
}

// Release undoes Listen before Serve: inherited sockets go back to the
// hand-over given to Inherit (whose owner closes or keeps them), the
// others are closed.
func (s *Server) Release() {
	a := s.app
	for _, l := range a.listeners {
		if l.inherited && !l.handed {
			s.inherit[l.key] = l.ln // back to the caller's hand-over
			l.handed = true
		}
	}
	a.closeListeners()
	a.listeners = nil
}

// Serve starts the origins' health checks and accepting on every listener
// Listen bound.
func (s *Server) Serve() {
	a := s.app
	for _, p := range a.pools() {
		p.StartChecks(s.log.With("app", a.cfg.ID), "tcp")
	}
	for _, l := range a.listeners {
		if a.raw && l.path == "" {
			if err := l.useRaw(); err != nil {
				s.log.Warn("listener stays on the net.Conn path", "app", a.cfg.ID, "addr", l.ln.Addr().String(), "err", err)
			}
		}
		s.accepts.Add(1) // acceptLoop says Done when it stops accepting
		go a.acceptLoop(l)
	}
	s.serving.Store(true)
}

// Addrs returns the bound listener addresses, in config order.
func (s *Server) Addrs() []net.Addr {
	var out []net.Addr
	for _, l := range s.app.listeners {
		out = append(out, l.ln.Addr())
	}
	return out
}

// Shutdown stops accepting, lets open connections finish until ctx is
// done, then stops the rest — each still gets its terminal record, with
// Status 200 and reason "closed" — and waits for every handler to return.
func (s *Server) Shutdown(ctx context.Context) error {
	if s.closing.Swap(true) {
		return errors.New("proxy: Shutdown called twice")
	}
	close(s.stopAccepting)
	s.app.closeListeners()
	s.accepts.Wait()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		s.logTotals()
		return nil
	case <-ctx.Done():
	}
	s.mu.Lock()
	s.forced = true
	n := len(s.sessions)
	for ss := range s.sessions {
		ss.stop()
	}
	s.mu.Unlock()
	s.cancel()
	s.log.Info("drain deadline passed; closing open connections", "count", n)
	<-done
	s.logTotals()
	return nil
}

// CloseSession ends the open connection with session id id as a close by
// the proxy (Disconnect, Status 200, reason closed, side proxy) with detail
// as its terminal record's Detail. It reports whether such a connection was
// open.
func (s *Server) CloseSession(id event.ID, detail string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for ss := range s.sessions {
		if ss.id == id {
			ss.stopWith(detail)
			return true
		}
	}
	return false
}

// DialLatency is the app's origin dial-time histogram.
func (s *Server) DialLatency() *origin.Latency { return &s.app.dialTime }

// Edge is the app's TLS side (nil: none).
func (s *Server) Edge() *tlsedge.Edge { return s.app.edge }

func (s *Server) track(ss *session) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.forced {
		return false
	}
	s.sessions[ss] = struct{}{}
	return true
}

func (s *Server) untrack(ss *session) {
	s.mu.Lock()
	delete(s.sessions, ss)
	s.mu.Unlock()
}

// listener is one bound socket of an app.
type listener struct {
	ln     net.Listener
	offset int    // port - range low, for origin port-range mapping
	path   string // unix socket path
	handed bool   // given to the next server by HandOff: never closed here
	key    string // netspec.ListenKey of the configured address

	inherited bool // from WithListeners

	// The raw path (tcpApp.raw, TCP listeners): accept(2) on a duplicate
	// of the listening socket (a net.Listener offers no way to wait for
	// it other than Accept), no net.Conn per connection. The accept loop
	// closes rfile when it ends; interrupt wakes it.
	rfile *os.File
	acc   *relay.Acceptor // on rfile
	local netip.AddrPort  // the listener's address, every connection's local one
	wild  bool            // local is a wildcard: ask each connection (getsockname)
}

// useRaw puts l on the raw path, or leaves it as it is and says why not.
// Accepted sockets inherit TCP_NODELAY from the listener (as they inherit
// keepalive, see listenTCP), so it is set once here rather than per
// connection as the net package does.
func (l *listener) useRaw() error {
	tl, ok := l.ln.(*net.TCPListener)
	if !ok {
		return fmt.Errorf("not a TCP listener (%T)", l.ln)
	}
	lrc, err := tl.SyscallConn()
	if err != nil {
		return err
	}
	dup, serr := -1, error(nil)
	if err := lrc.Control(func(fd uintptr) {
		if serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_NODELAY, 1); serr == nil {
			dup, serr = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0)
		}
	}); err != nil {
		return err
	}
	if serr != nil {
		return serr
	}
	f := os.NewFile(uintptr(dup), "listener") // non-blocking: in the runtime netpoller
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return err
	}
	l.rfile, l.local = f, addrPortOf(tl.Addr())
	l.wild = l.local.Addr().IsUnspecified()
	l.acc = relay.NewAcceptor(rc, l.wild)
	return nil
}

// interrupt wakes an accept that waits, until the deadline is cleared
// (HandOff, Shutdown).
func (l *listener) interrupt(at time.Time) {
	if d, ok := l.ln.(deadliner); ok {
		_ = d.SetDeadline(at)
	}
	if l.rfile != nil {
		_ = l.rfile.SetDeadline(at)
	}
}

// accept takes the next connection: a raw socket on the raw path (with
// its addresses), else a net.Conn.
func (l *listener) accept() (c leg, peer, local netip.AddrPort, err error) {
	if l.acc == nil {
		c.c, err = l.ln.Accept()
		return c, peer, local, err
	}
	c.s, peer, local, err = l.acc.Accept()
	if !l.wild {
		local = l.local
	}
	return c, peer, local, err
}

func (a *tcpApp) listen() error {
	for _, spec := range a.cfg.Listen {
		if spec.Path != "" {
			key := netspec.ListenKey("unix", spec.Path)
			if ln := a.srv.inherit.take(key); ln != nil {
				a.listeners = append(a.listeners, &listener{ln: ln, path: spec.Path, key: key, inherited: true})
				continue
			}
			_ = removeStaleSocket(spec.Path)
			ln, err := net.Listen("unix", spec.Path)
			if err != nil {
				return fmt.Errorf("listen unix %s: %w", spec.Path, err) // the daemon names the app
			}
			a.listeners = append(a.listeners, &listener{ln: ln, path: spec.Path, key: key})
			continue
		}
		for p := int(spec.Lo); p <= int(spec.Hi); p++ {
			addr := net.JoinHostPort(spec.Host, fmt.Sprint(p))
			key := netspec.ListenKey("tcp", addr)
			if ln := a.srv.inherit.take(key); ln != nil {
				a.listeners = append(a.listeners, &listener{ln: ln, offset: p - int(spec.Lo), key: key, inherited: true})
				continue
			}
			ln, err := listenTCP(addr)
			if err != nil {
				return err // "listen tcp ADDR: …"; the daemon names the app
			}
			a.listeners = append(a.listeners, &listener{ln: ln, offset: p - int(spec.Lo), key: key})
		}
	}
	return nil
}

func listenTCP(addr string) (net.Listener, error) {
	// Keepalive is set on the listening socket and inherited by every
	// accepted one (see setKeepAlive); KeepAlive -1 stops the net package
	// from setting it again per connection.
	lc := net.ListenConfig{KeepAlive: -1, Control: setKeepAlive}
	return lc.Listen(context.Background(), "tcp", addr)
}

// removeStaleSocket removes a unix socket file left by a previous run, and
// nothing else: a regular file at that path is an operator mistake to report.
func removeStaleSocket(path string) error {
	st, err := os.Lstat(path)
	if err != nil || st.Mode()&os.ModeSocket == 0 {
		return err
	}
	if c, err := net.Dial("unix", path); err == nil {
		c.Close()
		return fmt.Errorf("%s is in use", path)
	}
	return os.Remove(path)
}

// connDone releases what a connection held from its accept loop.
func (a *tcpApp) connDone() {
	a.releaseSlots()
	a.srv.wg.Done()
}

// releaseSlots gives back the app's and the global max_connections slots.
func (a *tcpApp) releaseSlots() {
	if a.sem != nil {
		<-a.sem
	}
	if a.srv.gsem != nil {
		<-a.srv.gsem
	}
}

func (a *tcpApp) closeListeners() {
	for _, l := range a.listeners {
		if !l.handed {
			_ = l.ln.Close()
		}
		if l.rfile != nil {
			// The raw path's accept waits on its duplicate (closing ln
			// does not wake it). Not l.interrupt: a handed ln is the next
			// server's now, its deadline not ours to set.
			_ = l.rfile.SetDeadline(time.Unix(1, 0))
		}
	}
}

// acceptLoop accepts on l until the server stops accepting, then closes
// the raw path's duplicate and says Done on s.accepts — unless it handed
// accepting to another goroutine first (inline.yield), which then does.
func (a *tcpApp) acceptLoop(l *listener) {
	s := a.srv
	var errs acceptErrors
	var in *inline
	if l.acc != nil { // the raw path: handlers may run inline (inlineHandlers)
		in = &inline{a: a, l: l}
	}
	defer func() {
		if in != nil && in.yielded {
			return // another goroutine accepts on l now
		}
		if l.rfile != nil {
			l.rfile.Close()
		}
		if errs.since > 0 {
			s.log.Warn("accept failed", "app", a.cfg.ID, "addr", l.ln.Addr().String(), "failures", errs.since, "note", "not logged before the listener closed")
		}
		s.accepts.Done()
	}()
	for {
		if a.sem != nil {
			// At max_connections, stop accepting: new clients wait in the
			// kernel's listen backlog, as HAProxy's maxconn does, rather than
			// being accepted only to be closed.
			select {
			case a.sem <- struct{}{}:
			case <-s.stopAccepting:
				return
			case <-s.handoff:
				return
			}
		}
		c, peer, local, err := l.accept()
		if err == nil && s.gsem != nil {
			// At the global max_connections, likewise stop accepting. The
			// slot is taken after Accept so that an idle listener never
			// holds one; this connection waits for it, accepted.
			select {
			case s.gsem <- struct{}{}:
			case <-s.stopAccepting:
				a.awaitSlot(l, c, peer, local)
				return
			case <-s.handoff:
				a.awaitSlot(l, c, peer, local)
				return
			}
		}
		if err != nil {
			if a.sem != nil {
				<-a.sem
			}
			if s.closing.Load() || s.handingOff.Load() || errors.Is(err, net.ErrClosed) {
				return
			}
			// EMFILE and friends: back off, keep serving, log now and then.
			wait, log, n := errs.failed(time.Now())
			s.acceptErrs.Add(1)
			if log {
				s.log.Warn("accept failed", "app", a.cfg.ID, "addr", l.ln.Addr().String(), "err", err,
					"failures", n, "backoff", wait.String())
			}
			select {
			case <-time.After(wait):
			case <-s.stopAccepting:
				return
			case <-s.handoff:
				return
			}
			continue
		}
		s.wg.Add(1)
		if in != nil && inlineHandlers() { // asked each time: GOMAXPROCS follows the CPU quota
			a.handle(l, c, peer, local, a.connDone, in)
			if in.yielded {
				return
			}
			continue
		}
		// On a kept goroutine: the handler's stack grows through the dial
		// (see gopool).
		gopool.Go(func() { a.handle(l, c, peer, local, a.connDone, nil) })
	}
}

// awaitSlot serves c, accepted while every global max_connections slot
// was taken, once the accept loop stops (Shutdown, HandOff): the
// connection is ours already, so it waits for a slot on a goroutine of
// its own, a connection Shutdown drains like the others, until the drain
// deadline (the server's context). Then handle, slot or not, finds the
// server forced and writes the connection's terminal record: every
// accepted connection gets one.
func (a *tcpApp) awaitSlot(l *listener, c leg, peer, local netip.AddrPort) {
	s := a.srv
	s.wg.Add(1)
	go func() {
		select {
		case s.gsem <- struct{}{}:
			a.handle(l, c, peer, local, a.connDone, nil)
		case <-s.ctx.Done():
			a.handle(l, c, peer, local, func() { // no global slot to give back
				if a.sem != nil {
					<-a.sem
				}
				s.wg.Done()
			}, nil)
		}
	}()
}

// inline is a raw accept loop handling a connection itself
// (inlineHandlers).
// Before anything that may wait (a DNS lookup, a dial that did not
// complete within connect(2)) handle calls yield, which hands accepting
// on l to a new goroutine: this one finishes the connection and ends, so
// that accepting never waits for one connection.
type inline struct {
	a       *tcpApp
	l       *listener
	yielded bool
}

// yield is safe on a nil inline (a handler on its own goroutine).
func (in *inline) yield() {
	if in == nil || in.yielded {
		return
	}
	in.yielded = true
	go in.a.acceptLoop(in.l) // takes over s.accepts' count and l.rfile
}

// newTCPApp prepares the app's server-side state around its parts.
func newTCPApp(s *Server, ac App) *tcpApp {
	a := &tcpApp{srv: s, cfg: ac, pool: ac.Pool, routes: ac.Routes, fw: ac.Firewall, lim: ac.Limiter,
		edge: ac.Edge, terminate: ac.Terminate, originTLS: ac.OriginTLS}
	// The raw path: an app that only relays takes its TCP connections as
	// kernel sockets straight to the relay's event loop (relay.Sock):
	// nothing reads them before the relay (no TLS, no inbound PROXY
	// header), so no net.Conn is needed.
	a.raw = ac.Edge == nil && !ac.OriginTLS && len(ac.Trusted) == 0 && relay.SocksAvailable()
	if ac.MaxConnections > 0 {
		a.sem = make(chan struct{}, ac.MaxConnections)
	}
	switch ac.ProxyProtocol {
	case "v1":
		a.ppVersion = 1
	case "v2":
		a.ppVersion = 2
	}
	return a
}

// inlineHandlers says whether raw accept loops handle connections
// themselves now: with one P, unless a test set inlineForced (1 on, 2
// off) to run both ways. With one P (GOMAXPROCS=1: a one-CPU machine or
// container) a handler goroutine buys no parallelism: the raw path's
// accept loop handles each connection itself until something would wait
// (see inline), and takes the next queued connection without a trip
// through the scheduler and netpoller. Measured on short connections,
// paired: 113 → 104 and 110 → 101 µs of proxy CPU per connection
// (docs/benchmarks.md). With more Ps handlers run in parallel on their
// own goroutines, so that one listener's connections are not handled one
// at a time.
func inlineHandlers() bool {
	switch inlineForced.Load() {
	case 1:
		return true
	case 2:
		return false
	}
	return runtime.GOMAXPROCS(0) == 1
}

var inlineForced atomic.Int32
