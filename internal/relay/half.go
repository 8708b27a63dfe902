package relay

import (
	"errors"
	"net"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prismproxy/prism/internal/event"
)

// Direction states. A direction is owned by at most one goroutine at a
// time: the one that started it or moved it from parked to running. Only
// the owner arms the loop, so the socket is never touched after finish.
const (
	stateRunning int32 = iota // the owner is moving it
	stateWoken                // running, and a wake-up came meanwhile: do not park
	stateParked               // armed in a loop's epoll set; no goroutine
	// The source sent its EOF (propagated), and its socket is armed in a
	// loop's epoll set for errors only (see watch); no goroutine. Whoever
	// moves it back to running finishes it.
	stateWatch
	// The source sent its EOF and the direction's goroutine waits in the
	// runtime netpoller for an error on its socket (no loop); a past read
	// deadline stops the wait.
	stateWatchWait
	stateDone // finished
)

// Outcomes of one step of a direction.
const (
	stepMoved    = iota // moved a chunk; go on
	stepWaitRead        // nothing queued on src: park
	stepDone            // error recorded or relay ended
	stepEOF             // EOF propagated: watch, then finish
)

// half is one direction of the goroutine path: bytes read from src are
// written to dst through the net.Conn interface. Its fields are kept
// small (an idle connection holds two of them): what the Relay already
// holds (the conns, the Live counters) is reached through it.
type half struct {
	r                *Relay
	srcSide, dstSide event.Side

	// srcRaw is set when src is a kernel socket (Linux): the wait for data
	// then happens without holding a buffer (or, parked in a loop, a
	// goroutine).
	srcRaw syscall.RawConn
	// rttRaw is the TCP socket under src (through NetConn() wrappers such
	// as *tls.Conn) for TCP_INFO; nil when src is not TCP.
	rttRaw syscall.RawConn

	state atomic.Int32
	// Registration of src in a loop's epoll set (loop_linux.go).
	srcFD      int32
	token, gen int32
	registered bool
	again      bool  // the last peek found the socket not ready
	peekErr    error // a socket error a peek found (and so consumed)
	peekBuf    [1]byte
	// watchRaw is the socket under src watched for errors once src sent
	// its EOF (srcRaw, or the TCP socket under a wrapper); nil: none.
	watchRaw syscall.RawConn
	// lastAtEOF is the relay's last when src sent its EOF: a later socket
	// error tells by it whether the relay wrote to that peer since (only
	// the other direction moves bytes then; afterFIN).
	lastAtEOF int64

	bytes int64        // total read from src; owned by the running goroutine
	rtt   atomic.Int64 // last RTT sample of src, ns
	rttAt int64        // when rtt was sampled, UnixNano

	// RawConn callbacks, bound once so that the per-chunk calls allocate
	// nothing.
	peekFn    func(fd uintptr) bool // bound on first use
	tryPeekFn func(fd uintptr) bool
	pumpFn    func()
	errFn     func(fd uintptr) bool // bound on first watch
}

func (h *half) init(r *Relay, srcRaw syscall.RawConn, srcSide, dstSide event.Side) {
	h.r, h.srcSide, h.dstSide = r, srcSide, dstSide
	h.srcRaw = srcRaw
	h.srcFD = -1
	if srcRaw != nil {
		_ = srcRaw.Control(func(fd uintptr) { h.srcFD = int32(fd) })
	}
	h.pumpFn = h.pumpAsync
}

// bind finds the TCP socket for RTT samples and binds the peek callback.
func (h *half) bind() {
	if _, ok := h.src().(*net.TCPConn); ok && h.srcRaw != nil {
		h.rttRaw = h.srcRaw // the same socket: no second RawConn
	} else {
		h.rttRaw = tcpRawConn(h.src())
	}
	if h.srcRaw != nil {
		h.tryPeekFn = h.peekTry
	}
	h.watchRaw = h.srcRaw
	if h.watchRaw == nil && h.rttRaw != nil && canWatch {
		// TLS over TCP: a loop can watch the socket under it once src
		// sent its EOF, when nothing else reads it.
		h.watchRaw = h.rttRaw
		_ = h.rttRaw.Control(func(fd uintptr) { h.srcFD = int32(fd) })
	}
}

// src and dst are the conns this direction reads and writes.
func (h *half) src() net.Conn { return h.r.conn(h.srcSide) }
func (h *half) dst() net.Conn { return h.r.conn(h.dstSide) }

// liveBytes and liveRTT are the Live counters of src, nil without a Live.
func (h *half) liveBytes() *atomic.Int64 {
	l := h.r.opts.Live
	switch {
	case l == nil:
		return nil
	case h.srcSide == event.SideClient:
		return &l.ClientBytes
	}
	return &l.OriginBytes
}

func (h *half) liveRTT() *atomic.Int64 {
	l := h.r.opts.Live
	switch {
	case l == nil:
		return nil
	case h.srcSide == event.SideClient:
		return &l.ClientRTT
	}
	return &l.OriginRTT
}

// tcpRawConn returns the RawConn of the TCP socket c is or wraps.
func tcpRawConn(c net.Conn) syscall.RawConn {
	for i := 0; i < 8 && c != nil; i++ {
		switch v := c.(type) {
		case *net.TCPConn:
			if rc, err := v.SyscallConn(); err == nil {
				return rc
			}
			return nil
		case interface{ NetConn() net.Conn }:
			c = v.NetConn()
		default:
			return nil
		}
	}
	return nil
}

// begin starts the direction on a goroutine of its own.
func (h *half) begin() {
	go h.pumpFn()
}

func (h *half) pumpAsync() { h.pump() }

// pumpPrefix runs the client→origin direction, the ClientPrefix (counted
// by Start) first.
func (h *half) pumpPrefix() {
	p := h.r.opts.ClientPrefix
	h.r.opts.ClientPrefix = nil // sent: an idle connection does not keep it
	if _, err := h.dst().Write(p); err != nil {
		h.writeErr(err)
		h.finish()
		return
	}
	h.pump()
}

// pump moves the direction forward until it parks or finishes.
func (h *half) pump() {
	for {
		switch h.connStep() {
		case stepMoved:
		case stepWaitRead:
			if h.park() {
				return
			}
		case stepDone:
			h.finish()
			return
		case stepEOF:
			if !h.watch() {
				h.finish()
			}
			return
		}
	}
}

// park waits for src to become readable. With a loop it arms src and
// parks the direction, returning true: the calling goroutine is free and a
// new one resumes the direction when data arrives. If a wake-up came while
// it was arming, or without a loop (then it waits in the runtime
// netpoller, holding the goroutine but no pipe or buffer), it returns
// false and the caller goes on.
func (h *half) park() bool {
	h.r.quiet()
	if p := getLoop(int(h.srcFD)); p != nil {
		if err := p.arm(h, armEvents); err == nil {
			if h.state.CompareAndSwap(stateRunning, stateParked) {
				return true
			}
			h.state.Store(stateRunning) // woken meanwhile: look again
			return false
		}
	}
	if h.peekFn == nil {
		h.peekFn = h.peekWait
	}
	_ = h.srcRaw.Read(h.peekFn) // errors show again at the next read
	return false
}

// wake is called by the loop when src became readable (or hung up), and
// by the relay when it ends. A parked direction gets a goroutine; a
// running one is told not to park before it looked again.
func (h *half) wake() {
	for {
		switch s := h.state.Load(); s {
		case stateParked:
			if h.state.CompareAndSwap(s, stateRunning) {
				go h.pumpFn()
				return
			}
		case stateRunning:
			if h.state.CompareAndSwap(s, stateWoken) {
				return
			}
		case stateWatch: // an error event, or the relay ended
			h.stopWatch()
			return
		default: // woken already, done, or waiting in the netpoller
			// (the relay's end sets the deadline that stops that wait)
			return
		}
	}
}

// resumeIfParked makes the direction notice the end of the relay.
func (h *half) resumeIfParked() { h.wake() }

// finish ends the direction; the second one to finish completes the relay.
func (h *half) finish() {
	if h.registered {
		getLoop(int(h.srcFD)).unregister(h)
	}
	h.state.Store(stateDone)
	if h.r.remaining.Add(-1) == 0 {
		h.r.complete()
		return
	}
	h.other().stopWatch() // nothing is left to watch for: the relay completes
}

// other is the opposite direction of the same relay.
func (h *half) other() *half {
	if h == &h.r.d.c2o {
		return &h.r.d.o2c
	}
	return &h.r.d.c2o
}

// atEOF reports whether the direction's source sent its EOF (it is
// watching, or done).
func (h *half) atEOF() bool {
	s := h.state.Load()
	return s == stateWatch || s == stateWatchWait || s == stateDone
}

// watch keeps a direction whose source sent its EOF (propagated) watching
// that socket for an error while the other direction still flows: a peer
// that half-closed and then reset is read by nobody, and without this the
// relay would end only with the other peer or the idle timeout
// (timeouts.idle, an hour by default), and say 200 instead of the reset.
// With a loop the socket is armed for errors only (EPOLLERR, EPOLLHUP; no
// goroutine); without one the direction's goroutine waits in the runtime
// netpoller. It returns false when there is nothing to watch (no socket,
// the relay ended, the other direction is at its EOF too): the caller
// finishes the direction. Otherwise the direction is finished by watch
// itself or by whoever stops the watch (stopWatch: an error event, the
// other direction finishing, the end of the relay).
//
// Each direction sets its own state before it looks at the other's
// (atEOF), so of two that reach their EOF together at least one sees the
// other and finishes, which stops the other's watch.
func (h *half) watch() bool {
	if h.watchRaw == nil || !canWatch || h.r.isEnded() || h.other().atEOF() {
		return false
	}
	if p := getLoop(int(h.srcFD)); p != nil && h.srcFD >= 0 && p.arm(h, watchEvents) == nil {
		for tries := 0; !h.state.CompareAndSwap(stateRunning, stateWatch); tries++ {
			// Woken meanwhile (the relay ended, or an error event came).
			h.state.Store(stateRunning)
			if tries == 2 || h.r.isEnded() || p.arm(h, watchEvents) != nil {
				h.endWatch()
				return true
			}
		}
		if h.other().atEOF() || h.r.isEnded() {
			h.stopWatch() // the other reached its EOF meanwhile
		}
		return true
	}
	h.state.Store(stateWatchWait)
	h.peekErr = nil
	if h.errFn == nil {
		h.errFn = h.errCheck
	}
	if !h.other().atEOF() && !h.r.isEnded() && h.watchRaw.Read(h.errFn) == nil {
		h.state.Store(stateRunning)
		h.watchErr()
		h.finish()
		return true
	}
	// A deadline (the relay ended, or the other direction finished), or
	// an error event the netpoller reports as such: look once more.
	h.state.Store(stateRunning)
	h.endWatch()
	return true
}

// stopWatch ends the watch of a direction that is watching: the caller
// that moves it from stateWatch back to running has it finished, on a
// goroutine of its own (the caller may be the loop); one waiting in the
// netpoller is woken by a past read deadline and finishes itself.
func (h *half) stopWatch() {
	switch h.state.Load() {
	case stateWatch:
		if h.state.CompareAndSwap(stateWatch, stateRunning) {
			go h.endWatch()
		}
	case stateWatchWait:
		_ = h.src().SetReadDeadline(aLongTimeAgo)
	}
}

// endWatch finishes a watching direction (running again), recording the
// error its socket holds, if any, as the cause.
func (h *half) endWatch() {
	h.peekErr = nil
	if h.watchRaw.Control(func(fd uintptr) { h.errCheck(fd) }) == nil && h.peekErr != nil {
		h.watchErr()
	}
	h.finish()
}

// watchErr records the error the watch found (peekErr) as the cause.
func (h *half) watchErr() {
	if h.r.isEnded() {
		return
	}
	err, op := afterFIN(h.peekErr, h.srcSide, h.r.last.Load() != h.lastAtEOF)
	h.r.fail(err, h.srcSide, op)
}

// errCheck takes the socket error of fd into peekErr (the direction read
// its EOF, nothing else uses peekErr now) and reports whether there was
// one: as a RawConn.Read callback it waits until there is.
func (h *half) errCheck(fd uintptr) bool {
	h.peekErr = peerError(int(fd))
	return h.peekErr != nil
}

// count records n bytes read from src at time now.
func (h *half) count(n int64, now time.Time) {
	h.bytes += n
	if lb := h.liveBytes(); lb != nil {
		lb.Add(n)
	}
	ns := now.UnixNano()
	h.r.last.Store(ns)
	if time.Duration(ns-h.rttAt) >= rttEvery {
		h.sampleRTT(now)
	}
}

// eof propagates the end of src: dst is half-closed so its peer sees FIN
// while the other direction keeps flowing.
func (h *half) eof() {
	h.r.finished(h.srcSide)
	if cw, ok := h.dst().(interface{ CloseWrite() error }); ok {
		if err := cw.CloseWrite(); err != nil && !h.r.isEnded() && !errors.Is(err, net.ErrClosed) && !errors.Is(err, syscall.ENOTCONN) {
			h.r.fail(err, h.dstSide, "shutdown "+h.dstSide.String())
		}
	}
}

// readErr ends the relay for an error reading src, unless the relay
// already ended and this is only its interruption.
func (h *half) readErr(err error) {
	if h.r.isEnded() {
		return
	}
	h.r.fail(err, h.srcSide, h.srcSide.String()+" read")
}

func (h *half) writeErr(err error) {
	if h.r.isEnded() {
		return
	}
	h.r.fail(err, h.dstSide, h.dstSide.String()+" write")
}
