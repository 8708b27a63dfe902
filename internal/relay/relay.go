// Package relay copies bytes between an established client connection and an
// established origin connection until both directions are done, and reports
// why the connection ended in vendor-neutral terms (event.Side, event.Reason
// and a Spectrum status code).
//
// Between two kernel sockets (*net.TCPConn, *net.UnixConn) on Linux, the
// common case, a relay takes the loop path (loop_linux.go): New takes both
// sockets over as raw descriptors (the net.Conns are closed) and one
// edge-triggered epoll loop per core reads and writes them as they become
// ready, as HAProxy's and nginx's loops do. Each direction chooses its way
// as it goes (ModeAuto, the default, in the spirit of HAProxy's
// splice-auto): small reads move with read(2)/write(2) through a small
// pooled buffer (buffered_linux.go), and a direction that fills that
// buffer switches to splice(2) through a pooled pipe (splice_linux.go)
// until it goes quiet or carries only small chunks again (sockets_linux.go).
// ModeSplice and ModeCopy pin one way. An idle connection holds no
// goroutine, pipe, buffer or net.Conn: its two descriptors and a few
// hundred bytes of state.
//
// A caller that never reads a connection itself (the proxy's plain TCP
// apps) can skip net.Conn altogether (sock_linux.go): an Acceptor
// accepts a Sock, Connect dials one, and NewSocks puts the two on the
// loop path without the duplicating and closing New does.
//
// Other connections (*tls.Conn, wrappers) take the goroutine path
// (half.go, connpath.go): each direction reads through the net.Conn
// interface into a pooled buffer on a goroutine of its own; a direction
// whose source is a kernel socket waits for data without a buffer, parked
// in the epoll set of one of the event loops without a goroutine.
// RTT samples come from TCP_INFO (rtt.go, rawsys_linux.go).
//
// The loop path, parking and TCP_INFO are Linux-only. Elsewhere
// (sockets_other.go) every relay takes the goroutine path, a direction
// waiting for data holds its goroutine, and RTTs are 0; the Mode changes
// nothing. The build tag portable selects this fallback on Linux too (RTTs
// still from TCP_INFO), for its tests; so does PRISM_RELAY_POLLER=off, or
// a process out of descriptors, for the sockets of one relay.
//
// Each direction propagates its end with a half-close (shutdown SHUT_WR)
// and the other direction keeps flowing; counters are exact per direction
// and are published to an event.Live as every chunk moves.
package relay

import (
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prismproxy/prism/internal/event"
	"github.com/prismproxy/prism/internal/event/errstatus"
)

// Options tunes one relay.
type Options struct {
	// IdleTimeout ends the relay when no byte moved in either direction for
	// this long (Side=SideProxy, Reason=ReasonTimeout, Status 200). Zero
	// means no idle timeout. A byte moved when the relay read it from
	// either peer, or when, on a TCP leg, the kernel sent the peer data the
	// relay had written earlier and the peer acknowledged it (a download
	// still draining from the socket buffers to a slow reader, with
	// nothing left for the relay to do); a peer that stopped reading, or
	// is gone, does not count (see kernelDeadline).
	IdleTimeout time.Duration
	// ClientPrefix holds bytes already read from the client (after a PROXY
	// header or a ClientHello peek). They are sent to the origin first and
	// counted as client bytes.
	ClientPrefix []byte
	// Live, when set, receives the byte counters and RTT samples as they
	// change, so that periodic records of a long-lived connection see them.
	Live *event.Live
	// ClientRTT and OriginRTT are RTT samples the caller took just before
	// (from the handshakes). When set, Start uses them instead of reading
	// TCP_INFO again; either way the samples are refreshed at most every
	// second while bytes move, and at the end.
	ClientRTT, OriginRTT time.Duration
	// KeepAlive, when enabled, is set on the TCP socket under each leg
	// once the connection lived a while (the loop path: its next sweep,
	// within a second; the goroutine path: the first time a direction
	// parks), not when the relay starts: TCP keepalive only matters for a
	// connection that stays idle for minutes, and the kernel counts its
	// idle time from the last segment received anyway, so a short
	// connection saves the four setsockopt calls per leg and a long one
	// gets the same probes.
	KeepAlive net.KeepAliveConfig
	// Mode says how bytes move between two kernel sockets (see Mode).
	Mode Mode
}

// Mode is the path bytes take between two kernel sockets.
type Mode uint8

const (
	// ModeAuto (the default) reads each direction through a small
	// buffer while it carries small messages (one read(2) and one
	// write(2) per message, no pipe) and splices it while it carries
	// bulk: a read that fills the buffer switches the direction to
	// splice(2); a run of small splices, or the direction going quiet
	// (quietAfter), switches it back. See sockets_linux.go.
	ModeAuto Mode = iota
	// ModeSplice always moves bytes with splice(2) through a pipe: the
	// payload stays in the kernel (10-45 % less proxy CPU per byte on
	// bulk), but every message costs two splices and a pipe.
	ModeSplice
	// ModeCopy always moves bytes with read(2)/write(2) through a pooled
	// 64 KiB buffer. It hands the next hop ordinary linear segments: when
	// that hop is a process on the same host (an origin on loopback, the
	// bench's sink) its receive path coalesces them and spends less CPU
	// per byte than on spliced page fragments. See docs/benchmarks.md.
	ModeCopy
)

// ParseMode maps a config value (auto, splice, copy; "" is auto) to a
// Mode; ok is false for anything else.
func ParseMode(s string) (m Mode, ok bool) {
	switch s {
	case "", "auto":
		return ModeAuto, true
	case "splice":
		return ModeSplice, true
	case "copy":
		return ModeCopy, true
	}
	return ModeAuto, false
}

// String is the config spelling of m.
func (m Mode) String() string {
	switch m {
	case ModeSplice:
		return "splice"
	case ModeCopy:
		return "copy"
	}
	return "auto"
}

// Result is how a relay ended.
type Result struct {
	ClientBytes, OriginBytes int64         // exact totals read from each side (ClientPrefix included)
	ClientRTT, OriginRTT     time.Duration // TCP_INFO smoothed RTT of each leg (0 for unix/non-TCP)
	Status                   int           // Spectrum status for the close cause
	Side                     event.Side    // who ended it
	Reason                   event.Reason  // why
	Detail                   string        // short error text, "" for a clean close
}

// Relay moves bytes between one client and one origin connection. Create it
// with New, run it once with Run; Stop may be called from any goroutine.
type Relay struct {
	client, origin net.Conn
	opts           Options

	// d holds the two directions of the goroutine path (nil on the loop
	// path, loop_linux.go, which keeps its own smaller state in fl).
	d  *dirs
	fl *fdConn

	// last is the time (UnixNano) a byte last moved, read by the idle timer.
	last  atomic.Int64
	timer *time.Timer

	onDone    func(Result)
	remaining atomic.Int32 // directions not finished yet

	keepAliveSet atomic.Bool // Options.KeepAlive was applied (or need not be)

	mu       sync.Mutex
	ended    atomic.Bool // a cause was recorded (set under mu); the directions are being interrupted
	cause    cause
	firstFin atomic.Uint32 // event.Side of the first peer that sent FIN
}

// dirs are the two directions of a relay on the goroutine path.
type dirs struct{ c2o, o2c half }

// cause is the first reason the relay ended abnormally (error, idle, stop).
type cause struct {
	status int
	side   event.Side
	reason event.Reason
	detail string
}

// New prepares a relay between client and origin. Nothing moves until Run
// or Start. The relay owns both conns from now on: the caller must not use
// them again (on the loop path New has already closed them and keeps the
// sockets open as descriptors of its own), and stops the relay with Stop.
func New(client, origin net.Conn, opts Options) *Relay {
	r := &Relay{client: client, origin: origin, opts: opts}
	crc, orc := rawConn(client), rawConn(origin)
	if crc != nil && orc != nil && takeFDs(r, crc, orc) {
		return r // the loop path: both sockets are now raw descriptors of r.fl
	}
	r.d = new(dirs)
	r.d.c2o.init(r, crc, event.SideClient, event.SideOrigin)
	r.d.o2c.init(r, orc, event.SideOrigin, event.SideClient)
	r.d.c2o.bind()
	r.d.o2c.bind()
	return r
}

// conn is the connection of side.
func (r *Relay) conn(side event.Side) net.Conn {
	if side == event.SideClient {
		return r.client
	}
	return r.origin
}

// Run relays until both directions are done (each peer sent FIN), one side
// fails, the idle timeout fires or Stop is called. It closes both
// connections before it returns, after sampling their RTT. The calling
// goroutine only waits: while the connection is idle no other goroutine
// serves it (see Start).
func (r *Relay) Run() Result {
	ch := make(chan Result, 1)
	r.Start(func(res Result) { ch <- res })
	return <-ch
}

// Start is Run without the wait: it returns as soon as the relay is
// under way and calls done, on some goroutine, with the Result once the
// relay ended and both connections are closed. A caller that uses Start
// instead of Run holds no goroutine for an idle connection at all. Call Run
// or Start once.
func (r *Relay) Start(done func(Result)) {
	r.onDone = done
	r.remaining.Store(2)
	now := time.Now()
	r.last.Store(now.UnixNano())
	if r.fl != nil {
		r.fl.start(now)
		return
	}
	r.d.c2o.startRTT(r.opts.ClientRTT, now)
	r.d.o2c.startRTT(r.opts.OriginRTT, now)
	r.startIdleTimer()
	// Each direction runs on a goroutine of its own until it goes quiet
	// and parks (then it holds none). The client→origin one sends the
	// ClientPrefix first: written here, before the directions start, it
	// blocked Start's caller while the origin did not read, and an origin
	// that speaks first (and reads only after the client answered) never
	// got its greeting to the client: a deadlock.
	if p := r.opts.ClientPrefix; len(p) > 0 {
		r.d.c2o.count(int64(len(p)), now)
		go r.d.c2o.pumpPrefix()
	} else {
		r.d.c2o.begin()
	}
	r.d.o2c.begin()
}

// startIdleTimer arms the idle timeout (Options.IdleTimeout).
func (r *Relay) startIdleTimer() {
	if d := r.opts.IdleTimeout; d > 0 {
		r.mu.Lock()
		if !r.ended.Load() {
			r.timer = time.AfterFunc(d, r.checkIdle)
		}
		r.mu.Unlock()
	}
}

// quiet is called when a direction parks for the first time: the
// connection went quiet, so now is the time for TCP keepalive.
func (r *Relay) quiet() {
	if !r.opts.KeepAlive.Enable || r.keepAliveSet.Load() || r.keepAliveSet.Swap(true) {
		return
	}
	for _, c := range [...]net.Conn{r.client, r.origin} {
		if tc := tcpConnOf(c); tc != nil {
			_ = tc.SetKeepAliveConfig(r.opts.KeepAlive) // a closed conn: nothing to keep alive
		}
	}
}

// tcpConnOf returns the *net.TCPConn c is or wraps (through NetConn()).
func tcpConnOf(c net.Conn) *net.TCPConn {
	for i := 0; i < 8 && c != nil; i++ {
		switch v := c.(type) {
		case *net.TCPConn:
			return v
		case interface{ NetConn() net.Conn }:
			c = v.NetConn()
		default:
			return nil
		}
	}
	return nil
}

// complete runs once, when the second direction finished: it builds the
// Result, closes both connections and hands the Result over.
func (r *Relay) complete() {
	r.mu.Lock()
	if r.timer != nil {
		r.timer.Stop()
	}
	r.ended.Store(true) // late Stop calls do nothing
	c := r.cause
	r.mu.Unlock()

	res := Result{
		ClientBytes: r.d.c2o.bytes,
		OriginBytes: r.d.o2c.bytes,
		ClientRTT:   r.d.c2o.finalRTT(),
		OriginRTT:   r.d.o2c.finalRTT(),
	}
	_ = r.client.Close()
	_ = r.origin.Close()
	r.finishResult(&res, c)
	r.onDone(res)
}

// finishResult fills in how the relay ended: the recorded cause, or a
// clean close by the peer that sent FIN first.
func (r *Relay) finishResult(res *Result, c cause) {
	if c.status != 0 {
		res.Status, res.Side, res.Reason, res.Detail = c.status, c.side, c.reason, c.detail
	} else {
		res.Status, res.Reason = event.StatusOK, event.ReasonPeerClose
		res.Side = event.Side(r.firstFin.Load())
	}
}

// Stop ends the relay promptly from any goroutine. Unless the relay already
// ended for another reason, its Result says Side=SideProxy,
// Reason=ReasonClosed, Status 200.
func (r *Relay) Stop() { r.StopWith("") }

// StopWith is Stop with a detail saying why the proxy closed the session
// (the terminal record's Detail).
func (r *Relay) StopWith(detail string) {
	r.end(cause{status: event.StatusOK, side: event.SideProxy, reason: event.ReasonClosed, detail: detail})
}

// checkIdle runs on the idle timer: it ends the relay if nothing moved for
// IdleTimeout, else re-arms for the rest of the period. Bytes moving never
// touch the timer; they only store a timestamp.
func (r *Relay) checkIdle() {
	d := r.opts.IdleTimeout
	now := time.Now().UnixNano()
	next := r.last.Load() + int64(d)
	if next <= now {
		if q, ok := r.d.kernelQuiet(); ok {
			next = max(next, kernelDeadline(now, d, q))
		}
	}
	if next > now {
		r.mu.Lock()
		if !r.ended.Load() {
			r.timer.Reset(time.Duration(next - now))
		}
		r.mu.Unlock()
		return
	}
	r.end(idleCause)
}

// The idle timeout counts the relay's reads (Relay.last), which cost
// nothing to keep, and, once those say the relay is idle, the kernel's own
// work: after the origin sent a download and the relay wrote all of it
// into the client's socket, the kernel goes on delivering it from the
// socket buffers (megabytes, autotuned) to a client that reads slowly,
// for as long as the client takes, and the relay reads and writes nothing
// meanwhile. Only at the deadline, and only on TCP legs (a unix socket
// has no TCP_INFO: its relay counts reads alone), the relay asks the
// kernel when it last moved bytes (fdQuiet) and, if that was less than
// IdleTimeout ago, moves its deadline to IdleTimeout after it. No state is
// kept for it, and the data path makes no extra system call. (TCP_INFO's
// byte counters, tcpi_bytes_acked, would need the value at the relay's
// last read to compare with, which only a system call on the data path
// could take: compared between two looks at the deadline instead, they
// would keep a peer that stopped reading for two idle timeouts.)

// idleGrain is how coarse fdQuiet is (a jiffy: 10 ms at HZ=100, the
// coarsest kernel clock) with some room: kernel activity that would move
// the deadline by less than this is the relay's own last write seen
// through that clock, not bytes moving without the relay, and does not
// postpone the end (else every idle relay would be looked at twice).
const idleGrain = 20 * time.Millisecond

// kernelDeadline is the idle deadline (UnixNano) that the kernel's last
// activity, quiet ago, gives a relay whose reads say it is idle by now:
// IdleTimeout after that activity, or now itself (the relay is idle) when
// that is not more than idleGrain away.
func kernelDeadline(now int64, d, quiet time.Duration) int64 {
	if at := now - int64(quiet) + int64(d); at > now+int64(idleGrain) {
		return at
	}
	return now
}

// kernelQuiet is, on the goroutine path, how long the kernel has moved no
// bytes on either TCP leg (the shorter of the two fdQuiet); ok is false
// when neither leg is TCP (or TCP_INFO cannot be read).
func (ds *dirs) kernelQuiet() (q time.Duration, ok bool) {
	for _, rc := range [2]syscall.RawConn{ds.c2o.rttRaw, ds.o2c.rttRaw} {
		if rc == nil {
			continue
		}
		var v time.Duration
		var vok bool
		if rc.Control(func(fd uintptr) { v, vok = fdQuiet(int(fd)) }) == nil && vok && (!ok || v < q) {
			q, ok = v, true
		}
	}
	return q, ok
}

// idleCause ends a relay whose IdleTimeout passed.
var idleCause = cause{status: event.StatusOK, side: event.SideProxy, reason: event.ReasonTimeout, detail: "idle timeout"}

// fail records err on side as the cause (if none yet) and ends the relay.
func (r *Relay) fail(err error, side event.Side, op string) {
	status, reason := errstatus.Flow(err, side)
	r.end(cause{status: status, side: side, reason: reason, detail: op + ": " + errText(err)})
}

// end records c as the cause unless one was recorded already, and
// interrupts both directions wherever they wait.
func (r *Relay) end(c cause) {
	if r.setCause(c) {
		r.interrupt()
	}
}

// setCause records c as the cause unless one was recorded already, and
// reports whether it did.
func (r *Relay) setCause(c cause) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ended.Load() {
		return false
	}
	r.ended.Store(true)
	r.cause = c
	if r.timer != nil {
		r.timer.Stop()
	}
	return true
}

// isEnded reports whether a cause was recorded.
func (r *Relay) isEnded() bool { return r.ended.Load() }

// record is fail for the loop path: it records the cause (unless the
// relay ended already, and this error is only how the end showed) and
// wakes nothing: the loop, its caller, completes the relay next.
func (r *Relay) record(err error, side event.Side, op string) {
	if r.isEnded() {
		return
	}
	status, reason := errstatus.Flow(err, side)
	r.setCause(cause{status: status, side: side, reason: reason, detail: op + ": " + errText(err)})
}

// afterFIN says what err, found pending on the socket of side (SO_ERROR)
// after that peer's FIN, means, and under which operation to report it.
// The kernel stores an RST that comes after the FIN (CLOSE_WAIT) as EPIPE
// (tcp_reset), not ECONNRESET. If the relay sent that peer bytes since
// (wrote), the RST may answer them, a peer that closed altogether: the
// EPIPE a write there gets, reported as one (448/498). Otherwise the peer
// reset on its own: a reset (444/499).
func afterFIN(err error, side event.Side, wrote bool) (error, string) {
	if errors.Is(err, syscall.EPIPE) {
		if wrote {
			return err, side.String() + " write"
		}
		err = syscall.ECONNRESET
	}
	return err, side.String() + " read"
}

// aLongTimeAgo is a deadline in the past: setting it wakes every blocked
// read and write on a conn with os.ErrDeadlineExceeded.
var aLongTimeAgo = time.Unix(1, 0)

// interruptConns wakes every goroutine waiting on either connection.
func (r *Relay) interruptConns() {
	_ = r.client.SetDeadline(aLongTimeAgo)
	_ = r.origin.SetDeadline(aLongTimeAgo)
}

// finished is called by a half that reached EOF on its source and
// propagated it; it remembers which peer closed first.
func (r *Relay) finished(src event.Side) {
	r.firstFin.CompareAndSwap(0, uint32(src))
}

// errText is the short text of err for Result.Detail: the innermost
// message, without the "read tcp a->b:" decoration of net.OpError.
func errText(err error) string {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno.Error()
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		return op.Err.Error()
	}
	return err.Error()
}

// interrupt wakes both directions wherever they are: a past deadline
// fails every wait and the next read of a running direction; a parked
// direction is resumed so that it sees the deadline and finishes.
func (r *Relay) interrupt() {
	if r.fl != nil {
		r.fl.kick()
		return
	}
	r.interruptConns()
	r.d.c2o.resumeIfParked()
	r.d.o2c.resumeIfParked()
}
