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

// half is one direction: bytes read from src are written to dst.
type half struct {
	r                *Relay
	src, dst         net.Conn
	srcSide, dstSide event.Side

	// srcRaw/dstRaw are set when the conn is a kernel socket (TCP or unix
	// stream) the socket path can use (Linux only). Both set: the socket
	// path (sockets_linux.go). Only srcRaw: the conn path (connpath.go),
	// but the wait for data happens without holding a buffer (or a
	// goroutine).
	srcRaw, dstRaw syscall.RawConn
	// rttRaw is the TCP socket under src (through NetConn() wrappers such
	// as *tls.Conn) for TCP_INFO; nil when src is not TCP.
	rttRaw syscall.RawConn

	state atomic.Int32
	// Poller registration of src (see poller_linux.go).
	srcFD      int
	token, gen int32
	registered bool

	bytes     int64         // total read from src; owned by the running goroutine
	liveBytes *atomic.Int64 // Live counter for bytes, or nil
	liveRTT   *atomic.Int64 // Live RTT of src, or nil
	rtt       atomic.Int64  // last RTT sample of src, ns
	rttAt     time.Time     // when rtt was sampled

	// The socket path (sockets_linux.go): mode is the
	// relay's Mode; spliceNow says the next read splices; smallRun counts
	// small splices in a row; dstFD is dst's descriptor, for writes from
	// inside src's read callback.
	mode      Mode
	spliceNow bool
	counted   bool // bufferedIn counted the chunk it hands to the step
	smallRun  uint8
	dstFD     int

	// Chunk state, used by the RawConn callbacks below. The callbacks are
	// bound once in init so that the per-chunk calls allocate nothing.
	pipe       *pipe
	buf        *[]byte // buffered path: the buffer in flight
	off        int     // buffered path: start of the pending bytes in buf
	inN        int     // bytes moved into the pipe or buffer by the last read
	pending    int     // bytes still in the pipe or buffer
	again      bool    // the last callback found the socket not ready
	rerr, werr error   // errors of the last read/write callback
	readFn     func(fd uintptr) bool
	writeFn    func(fd uintptr) bool
	peekFn     func(fd uintptr) bool
	tryPeekFn  func(fd uintptr) bool
	rttFn      func(fd uintptr)
	pumpFn     func()
	waitUntil  time.Time // src read deadline set for busy waits, zero if none
	peekBuf    [1]byte
}

func (h *half) init(r *Relay, src, dst net.Conn, srcSide, dstSide event.Side) {
	h.r, h.src, h.dst, h.srcSide, h.dstSide = r, src, dst, srcSide, dstSide
	h.srcRaw = rawConn(src)
	h.dstRaw = rawConn(dst)
	h.rttRaw = tcpRawConn(src)
	h.srcFD = -1
	h.bindSocketPath()
	h.rttFn = h.tcpInfo
	h.pumpFn = h.pumpAsync
	h.dstFD = -1
	if h.srcRaw != nil {
		_ = h.srcRaw.Control(func(fd uintptr) { h.srcFD = int(fd) })
	}
	if h.dstRaw != nil {
		_ = h.dstRaw.Control(func(fd uintptr) { h.dstFD = int(fd) })
	}
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
func (h *half) sockets() bool { return h.srcRaw != nil && h.dstRaw != nil }

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
	if !h.waitUntil.IsZero() && time.Duration(h.waitUntil.UnixNano()-h.r.last.Load()) >= busyWait/2 {
		return
	}
	h.waitUntil = time.Now().Add(busyWait)
	if err := h.src.SetReadDeadline(h.waitUntil); err != nil {
		return // closed: the read says so
	}
	// end sets ended before it sets its past deadline: if the relay has
	// not ended now, that deadline comes after ours and wins; if it has,
	// ours may have replaced it, so put it back.
	if h.r.isEnded() {
		_ = h.src.SetReadDeadline(aLongTimeAgo)
	}
}

// busyDeadline reports whether err is the expiry of a busy-wait deadline
// (not the end of the relay); it then clears the deadline so that src can
// be read again.
func (h *half) busyDeadline(err error) bool {
	if h.waitUntil.IsZero() || !errors.Is(err, os.ErrDeadlineExceeded) || h.r.isEnded() {
		return false
	}
	h.waitUntil = time.Time{}
	if h.src.SetReadDeadline(time.Time{}) != nil {
		return false
	}
	// The relay may have ended (and set its past deadline) just before
	// we cleared it; then the deadline must stay past.
	if h.r.isEnded() {
		_ = h.src.SetReadDeadline(aLongTimeAgo)
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
	if p := getPoller(h.srcFD); p != nil {
		if err := p.arm(h); err == nil {
			if h.state.CompareAndSwap(stateRunning, stateParked) {
				return true
			}
			h.state.Store(stateRunning) // woken meanwhile: look again
			return false
		}
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
		getPoller(h.srcFD).unregister(h)
	}
	h.state.Store(stateDone)
	if h.r.remaining.Add(-1) == 0 {
		h.r.complete()
	}
}

// count records n bytes read from src at time now.
func (h *half) count(n int64, now time.Time) {
	h.bytes += n
	if h.liveBytes != nil {
		h.liveBytes.Add(n)
	}
	h.r.last.Store(now.UnixNano())
	if now.Sub(h.rttAt) >= rttEvery {
		h.sampleRTT(now)
	}
}

// eof propagates the end of src: dst is half-closed so its peer sees FIN
// while the other direction keeps flowing.
func (h *half) eof() {
	h.r.finished(h.srcSide)
	if cw, ok := h.dst.(interface{ CloseWrite() error }); ok {
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
