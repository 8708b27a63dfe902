package relay

import (
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prismproxy/prism/internal/event"
)

// rttEvery is how often a direction that is moving bytes refreshes the RTT
// sample of its source leg in the Live counters.
const rttEvery = time.Second

// half is one direction: bytes read from src are written to dst.
type half struct {
	r                *Relay
	src, dst         net.Conn
	srcSide, dstSide event.Side

	// srcRaw/dstRaw are set when the conn is a kernel socket (TCP or unix
	// stream). Both set: splice. Only srcRaw: buffered copy, but the wait
	// for data happens without holding a buffer.
	srcRaw, dstRaw syscall.RawConn
	// rttRaw is the TCP socket under src (through NetConn() wrappers such
	// as *tls.Conn) for TCP_INFO; nil when src is not TCP.
	rttRaw syscall.RawConn

	bytes     int64         // total read from src; owned by the goroutine running the half
	liveBytes *atomic.Int64 // Live counter for bytes, or nil
	liveRTT   *atomic.Int64 // Live RTT of src, or nil
	rtt       atomic.Int64  // last RTT sample of src, ns
	rttAt     time.Time     // when rtt was sampled

	// splice state, used by the callbacks below (bound once in init so
	// that the per-chunk calls into RawConn allocate nothing).
	pipe       *pipe
	inN        int   // bytes moved into the pipe by the last read
	pending    int   // bytes still in the pipe
	rerr, werr error // errors of the last read/write callback
	readFn     func(fd uintptr) bool
	writeFn    func(fd uintptr) bool
	peekFn     func(fd uintptr) bool
	rttFn      func(fd uintptr)
	peekBuf    [1]byte
}

func (h *half) init(r *Relay, src, dst net.Conn, srcSide, dstSide event.Side) {
	h.r, h.src, h.dst, h.srcSide, h.dstSide = r, src, dst, srcSide, dstSide
	h.srcRaw = rawConn(src)
	h.dstRaw = rawConn(dst)
	h.rttRaw = tcpRawConn(src)
	h.readFn = h.spliceIn
	h.writeFn = h.spliceOut
	h.peekFn = h.peek
	h.rttFn = h.tcpInfo
}

// rawConn returns the RawConn of a kernel stream socket we may splice
// (TCP or unix stream), nil for anything else.
func rawConn(c net.Conn) syscall.RawConn {
	switch c := c.(type) {
	case *net.TCPConn:
		if rc, err := c.SyscallConn(); err == nil {
			return rc
		}
	case *net.UnixConn:
		if c.LocalAddr() == nil || c.LocalAddr().Network() != "unix" {
			return nil // unixgram/unixpacket keep message boundaries: no splice
		}
		if rc, err := c.SyscallConn(); err == nil {
			return rc
		}
	}
	return nil
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

// run moves bytes until src reaches EOF (then dst is half-closed) or an
// error or the end of the relay stops it.
func (h *half) run() {
	if h.srcRaw != nil && h.dstRaw != nil {
		h.spliceLoop()
	} else {
		h.copyLoop()
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

// interrupted reports whether err is the relay's own interruption (a past
// deadline or a closed conn after the relay ended) rather than a peer's doing.
func (h *half) interrupted(err error) bool {
	return h.r.isEnded()
}

// copyLoop is the buffered path for conns that cannot splice.
func (h *half) copyLoop() {
	for {
		if h.srcRaw != nil {
			// Wait for data (or EOF/error) without holding a buffer.
			if err := h.srcRaw.Read(h.peekFn); err != nil {
				h.readErr(err)
				return
			}
		}
		bp := getBuf()
		n, rerr := h.src.Read(*bp)
		if n > 0 {
			h.count(int64(n), time.Now())
			if _, werr := h.dst.Write((*bp)[:n]); werr != nil {
				putBuf(bp)
				h.writeErr(werr)
				return
			}
		}
		putBuf(bp)
		if rerr != nil {
			if rerr == io.EOF {
				h.eof()
			} else {
				h.readErr(rerr)
			}
			return
		}
	}
}

// readErr ends the relay for an error reading src (unless the relay
// already ended and this is only its interruption).
func (h *half) readErr(err error) {
	if h.interrupted(err) {
		return
	}
	h.r.fail(err, h.srcSide, h.srcSide.String()+" read")
}

func (h *half) writeErr(err error) {
	if h.interrupted(err) {
		return
	}
	h.r.fail(err, h.dstSide, h.dstSide.String()+" write")
}

// peek is the RawConn.Read callback of the buffered path: it returns true
// once src has data, EOF or an error queued, without consuming anything.
func (h *half) peek(fd uintptr) bool {
	_, _, err := syscall.Recvfrom(int(fd), h.peekBuf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	return err != syscall.EAGAIN && err != syscall.EINTR
}

// sampleRTT refreshes the RTT sample of src (TCP only).
func (h *half) sampleRTT(now time.Time) {
	h.rttAt = now
	if h.rttRaw != nil {
		_ = h.rttRaw.Control(h.rttFn)
	}
}

func (h *half) tcpInfo(fd uintptr) {
	if d := fdRTT(int(fd)); d > 0 {
		h.rtt.Store(int64(d))
		if h.liveRTT != nil {
			h.liveRTT.Store(int64(d))
		}
	}
}

// finalRTT samples once more (the conn is still open) and returns the last
// known RTT of src.
func (h *half) finalRTT() time.Duration {
	h.sampleRTT(time.Now())
	return time.Duration(h.rtt.Load())
}

// Buffers for the copy path. 32 KiB holds two full TLS records.
const bufSize = 32 << 10

var bufPool = sync.Pool{New: func() any { b := make([]byte, bufSize); return &b }}

func getBuf() *[]byte  { return bufPool.Get().(*[]byte) }
func putBuf(b *[]byte) { bufPool.Put(b) }
