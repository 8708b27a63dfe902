package relay

import (
	"errors"
	"net"
	"os"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prismproxy/prism/internal/event"
)

// busyWait is how long a direction between two sockets that has nothing
// to read waits in the runtime netpoller (holding its goroutine, but no
// pipe or buffer) before it parks in one of the relay's epoll sets (holding
// nothing). The runtime already watches every socket, so such a wait
// costs no system call, while parking costs an epoll_ctl to arm it and a
// new goroutine to resume it. A busy stream (the next chunk comes within
// microseconds) or a request/response exchange thus never parks; a
// connection that went quiet parks after busyWait/2 to busyWait (25-50
// ms). The wait is bounded with a read deadline on src that is pushed
// forward only when less than half of it is left, so it costs a timer
// update every busyWait/2 at most.
//
// The wait happens inside the same RawConn.Read call as the read that
// found nothing (or, on the buffered path, as the short read whose bytes
// were just written on): the runtime clears a socket's readiness when a
// RawConn.Read begins, so waiting in a second call could miss data that
// arrived in between and sleep until the deadline.
const busyWait = 50 * time.Millisecond

// Direction states. A direction is owned by at most one goroutine at a
// time: the one that started it or moved it from parked to running. Only
// the owner arms the poller, so the socket is never touched after finish.
const (
	stateRunning int32 = iota // the owner is moving it
	stateWoken                // running, and a wake-up came meanwhile: do not park
	stateParked               // armed in the poller; no goroutine
	stateDone                 // finished
)

// Outcomes of one step of a direction.
const (
	stepMoved    = iota // moved a chunk; go on
	stepWaitRead        // nothing queued on src (a conn that is not a socket)
	stepIdle            // nothing came within the busy wait: park
	stepDone            // EOF propagated, error recorded or relay ended
)

// half is one direction: bytes read from src are written to dst. Its
// fields are kept small (an idle connection holds two of them): what the
// other direction or the Relay already holds (the conns, dst's RawConn
// and descriptor, the Live counters) is reached through them.
type half struct {
	r                *Relay
	srcSide, dstSide event.Side

	// srcRaw is set when src is a kernel socket (TCP or unix stream) the
	// socket path can use (Linux only). Both directions' set: the socket
	// path (sockets_linux.go). Only srcRaw: the conn path (connpath.go),
	// but the wait for data happens without holding a buffer (or a
	// goroutine).
	srcRaw syscall.RawConn
	// rttRaw is the TCP socket under src (through NetConn() wrappers such
	// as *tls.Conn) for TCP_INFO; nil when src is not TCP.
	rttRaw syscall.RawConn

	state atomic.Int32
	// Poller registration of src (see poller_linux.go).
	srcFD      int32
	token, gen int32
	registered bool

	// The socket path (sockets_linux.go): mode is the
	// relay's Mode; spliceNow says the next read splices; smallRun counts
	// small splices in a row.
	mode      Mode
	spliceNow bool
	counted   bool // bufferedIn counted the chunk it hands to the step
	smallRun  uint8
	again     bool // the last callback found the socket not ready
	peekBuf   [1]byte

	bytes     int64        // total read from src; owned by the running goroutine
	rtt       atomic.Int64 // last RTT sample of src, ns
	rttAt     int64        // when rtt was sampled, UnixNano
	waitUntil int64        // src read deadline set for busy waits (UnixNano), 0 if none

	// Chunk state, used by the RawConn callbacks below. The callbacks are
	// bound once in init, and only those of the direction's path, so that
	// the per-chunk calls allocate nothing.
	pipe       *pipe
	buf        *[]byte // buffered path: the buffer in flight
	off        int32   // buffered path: start of the pending bytes in buf
	inN        int32   // bytes moved into the pipe or buffer by the last read
	pending    int32   // bytes still in the pipe or buffer
	rerr, werr error   // errors of the last read/write callback
	readFn     func(fd uintptr) bool
	writeFn    func(fd uintptr) bool
	peekFn     func(fd uintptr) bool // bound on first use
	tryPeekFn  func(fd uintptr) bool
	pumpFn     func()
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

// bind picks the direction's path once both directions know their
// sockets, and binds that path's callbacks.
func (h *half) bind() {
	if _, ok := h.src().(*net.TCPConn); ok && h.srcRaw != nil {
		h.rttRaw = h.srcRaw // the same socket: no second RawConn
	} else {
		h.rttRaw = tcpRawConn(h.src())
	}
	if h.sockets() {
		h.bindSocketPath()
	} else if h.srcRaw != nil {
		h.tryPeekFn = h.peekTry
	}
}

// src and dst are the conns this direction reads and writes.
func (h *half) src() net.Conn { return h.r.conn(h.srcSide) }
func (h *half) dst() net.Conn { return h.r.conn(h.dstSide) }

// peer is the other direction; its src is this one's dst.
func (h *half) peer() *half {
	if h == &h.r.d.c2o {
		return &h.r.d.o2c
	}
	return &h.r.d.c2o
}

// dstRaw is the RawConn of dst when it is a kernel socket, else nil.
func (h *half) dstRaw() syscall.RawConn { return h.peer().srcRaw }

// dstFD is dst's descriptor (-1 if it is not a kernel socket).
func (h *half) dstFD() int { return int(h.peer().srcFD) }

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

// sockets reports whether this direction moves bytes between two kernel
// sockets (the socket path of sockets_linux.go, with its splice and
// buffered ways).
func (h *half) sockets() bool { return h.srcRaw != nil && h.dstRaw() != nil }

// begin starts the direction on a goroutine of its own. Its first read
// waits for data right there (see busyWait): a first move on the caller's
// goroutine could not wait, and would cost a read(2) that finds nothing
// for each direction of every connection.
func (h *half) begin() {
	go h.pumpFn()
}

func (h *half) pumpAsync() { h.pump() }

// pump moves the direction forward until it parks or finishes.
func (h *half) pump() {
	for {
		var st int
		if h.sockets() {
			st = h.sockStep()
		} else {
			st = h.connStep()
		}
		switch st {
		case stepMoved:
		case stepWaitRead, stepIdle:
			if h.park() {
				return
			}
		case stepDone:
			h.finish()
			return
		}
	}
}

// armBusy bounds the wait of the next read with a deadline busyWait
// ahead, pushed forward only when less than half of it is left. The time
// a byte last moved stands in for the clock: a wait right after a chunk
// (the common case) reads no clock at all; if the stand-in is old, the
// deadline is only earlier than it would be. It may run inside src's read
// callback (SetReadDeadline takes no read lock).
func (h *half) armBusy() {
	if h.waitUntil != 0 && time.Duration(h.waitUntil-h.r.last.Load()) >= busyWait/2 {
		return
	}
	until := time.Now().Add(busyWait)
	h.waitUntil = until.UnixNano()
	if err := h.src().SetReadDeadline(until); err != nil {
		return // closed: the read says so
	}
	// end sets ended before it sets its past deadline: if the relay has
	// not ended now, that deadline comes after ours and wins; if it has,
	// ours may have replaced it, so put it back.
	if h.r.isEnded() {
		_ = h.src().SetReadDeadline(aLongTimeAgo)
	}
}

// busyDeadline reports whether err is the expiry of a busy-wait deadline
// (not the end of the relay); it then clears the deadline so that src can
// be read again.
func (h *half) busyDeadline(err error) bool {
	if h.waitUntil == 0 || !errors.Is(err, os.ErrDeadlineExceeded) || h.r.isEnded() {
		return false
	}
	h.waitUntil = 0
	if h.src().SetReadDeadline(time.Time{}) != nil {
		return false
	}
	// The relay may have ended (and set its past deadline) just before
	// we cleared it; then the deadline must stay past.
	if h.r.isEnded() {
		_ = h.src().SetReadDeadline(aLongTimeAgo)
		return false
	}
	return true
}

// park waits for src to become readable. With the poller it arms src and
// parks the direction, returning true: the calling goroutine is free and a
// new one resumes the direction when data arrives. If a wake-up came while
// it was arming, or without a poller (then it waits in the runtime
// netpoller, holding the goroutine but no pipe or buffer), it returns
// false and the caller goes on.
func (h *half) park() bool {
	h.r.quiet()
	h.quietPath()
	if p := getPoller(int(h.srcFD)); p != nil {
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

// wake is called by the poller when src became readable (or hung up), and
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
	h.dropHeld()
	if h.registered {
		getPoller(int(h.srcFD)).unregister(h)
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
