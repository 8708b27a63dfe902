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
	stateDone                 // finished
)

// Outcomes of one step of a direction.
const (
	stepMoved    = iota // moved a chunk; go on
	stepWaitRead        // nothing queued on src: park
	stepDone            // EOF propagated, error recorded or relay ended
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

	bytes int64        // total read from src; owned by the running goroutine
	rtt   atomic.Int64 // last RTT sample of src, ns
	rttAt int64        // when rtt was sampled, UnixNano

	// RawConn callbacks, bound once so that the per-chunk calls allocate
	// nothing.
	peekFn    func(fd uintptr) bool // bound on first use
	tryPeekFn func(fd uintptr) bool
	pumpFn    func()
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
		if err := p.arm(h); err == nil {
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
		default: // woken already, or done
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
	}
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
