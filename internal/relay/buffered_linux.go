//go:build !portable

package relay

import (
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The buffered path between two kernel sockets: read(2) into a pooled
// buffer, write(2) out of it. ModeCopy uses a 64 KiB buffer for every
// chunk; ModeAuto uses a small one for the small messages of interactive
// traffic (a read that fills it switches the direction to splice). A
// direction borrows a buffer only while a chunk is in flight.

// copyBufSize is the copy-mode buffer (ModeCopy). On loopback 64 KiB beat both 32 KiB
// and 256 KiB for one bulk stream (the receiver gets smaller, steadier
// writes than with 256 KiB) and tied for eight.
const copyBufSize = 64 << 10

// smallBufSize is ModeAuto's buffer: a read that fills it means more is
// queued than a message, and the direction switches to splice. 16 KiB is
// HAProxy's default buffer size.
const smallBufSize = 16 << 10

var (
	copyBufs  = sync.Pool{New: func() any { b := make([]byte, copyBufSize); return &b }}
	smallBufs = sync.Pool{New: func() any { b := make([]byte, smallBufSize); return &b }}
)

// bufsInUse counts copy and small buffers borrowed right now (tests use
// it, as pipesInUse, to prove that idle connections hold none).
var bufsInUse atomic.Int64

func (h *half) getSockBuf() {
	bufsInUse.Add(1)
	if h.mode == ModeCopy {
		h.buf = copyBufs.Get().(*[]byte)
	} else {
		h.buf = smallBufs.Get().(*[]byte)
	}
}

// releaseBuf gives the buffer back to its pool.
func (h *half) releaseBuf() {
	if h.buf == nil {
		return
	}
	bufsInUse.Add(-1)
	if len(*h.buf) == copyBufSize {
		copyBufs.Put(h.buf)
	} else {
		smallBufs.Put(h.buf)
	}
	h.buf = nil
}

// bufferedIn is the buffered path's read callback for a direction that may
// wait: it reads, writes what it read straight on to dst and waits for
// the next edge, all within one RawConn.Read call, so that a message
// costs one read(2) and one write(2), as in HAProxy's edge-triggered
// recv/send. A read that returned less than the buffer drained the socket
// (TCP and unix stream reads return short only then): it waits without
// another read(2) that would only say EAGAIN, which is safe only because
// no new RawConn.Read began since (that would clear the readiness an edge
// set meanwhile). It returns to the step (true) at EOF, on an error, when
// dst is full (the step finishes the write), or when the direction
// switches to splice.
func (h *half) bufferedIn(fd uintptr) bool {
	for {
		if h.buf == nil {
			h.getSockBuf()
		}
		n, err := rawRead(int(fd), *h.buf)
		switch err {
		case nil:
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			h.releaseBuf()
			return false // wait
		default:
			h.rerr = err
			return true
		}
		if n == 0 {
			h.inN = 0
			return true // EOF: the step propagates it
		}
		full := n == len(*h.buf)
		h.count(int64(n), time.Now())
		h.inN, h.off, h.pending = int32(n), 0, int32(n)
		h.adapt(n)
		if !h.bufferedOutDst() || h.spliceNow {
			h.counted = true
			return true
		}
		if full {
			continue // more is queued
		}
		h.armBusy()
		return false // drained: wait for the next edge
	}
}

// bufferedOutDst writes the pending bytes to dst's descriptor from inside src's
// read callback (dst is open: the relay closes its conns only after both
// directions finished). It returns false when the step must take over:
// dst full (pending bytes stay) or an error (werr).
func (h *half) bufferedOutDst() bool { return h.bufferedOut(uintptr(h.dstFD())) && h.werr == nil }

// bufferedOut writes the buffer's pending bytes to the socket; false means
// the socket buffer is full. An error is kept in werr and ends the write
// (true). The buffer goes back to its pool as soon as it is empty.
func (h *half) bufferedOut(fd uintptr) bool {
	for h.pending > 0 {
		n, err := rawWrite(int(fd), (*h.buf)[h.off:h.off+h.pending])
		switch err {
		case nil:
			h.off += int32(n)
			h.pending -= int32(n)
			continue
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false
		}
		h.werr = err
		return true
	}
	h.releaseBuf()
	return true
}

// rawRead and rawWrite are read(2) and write(2) on a non-blocking socket
// without telling the runtime a system call is under way (RawSyscall). Such
// a call never blocks, and the bookkeeping it skips is what kept the
// runtime's sysmon thread busy under interactive load: each entersyscall
// after the process had been idle woke sysmon with a futex, and a write
// that spent more than sysmon's 20 µs tick in the kernel (on loopback a
// write also runs the receiver's softirq) had its P retaken, which reset
// sysmon to polling every 20 µs. On the proxy's one CPU sysmon then took
// about 10 % of the CPU of a keep-alive load (perf, docs/benchmarks.md).
func rawRead(fd int, p []byte) (int, error) {
	r, _, e := unix.RawSyscall(unix.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(unsafe.SliceData(p))), uintptr(len(p)))
	if e != 0 {
		return 0, e
	}
	return int(r), nil
}

func rawWrite(fd int, p []byte) (int, error) {
	r, _, e := unix.RawSyscall(unix.SYS_WRITE, uintptr(fd), uintptr(unsafe.Pointer(unsafe.SliceData(p))), uintptr(len(p)))
	if e != 0 {
		return 0, e
	}
	return int(r), nil
}
