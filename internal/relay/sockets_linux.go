//go:build !portable

package relay

import (
	"net"
	"syscall"
	"time"
)

// The socket path, between two kernel sockets (Linux): its step, and how a
// direction chooses between its two ways of moving a chunk. Under ModeAuto
// a direction starts on the buffered way (buffered_linux.go): a small
// message costs one read(2) and one write(2), the fewest system calls
// there are, and no pipe. A read that fills the small buffer means the
// direction carries bulk: it switches to splice (splice_linux.go), which
// keeps the payload in the kernel. It switches back after smallSplices
// small splices in a row, or when it goes quiet and parks.

// smallSplice is the size below which a splice counts as small.
const smallSplice = 4 << 10

// smallSplices small splices in a row send a ModeAuto direction back to
// the buffered path.
const smallSplices = 4

// setMode fixes the direction's mode and its starting path.
func (h *half) setMode(m Mode) {
	h.mode = m
	h.spliceNow = m == ModeSplice
}

// sockIn is the RawConn.Read callback of a step: move what is queued on
// the socket into the pipe or the buffer, per the current path.
func (h *half) sockIn(fd uintptr) bool {
	if h.spliceNow {
		return h.spliceIn(fd)
	}
	return h.bufferedIn(fd)
}

// sockOut moves the pending chunk to dst; false means its socket buffer
// is full.
func (h *half) sockOut(fd uintptr) bool {
	if h.pipe != nil {
		return h.spliceOut(fd)
	}
	return h.bufferedOut(fd)
}

// sockOutWait is the RawConn.Write callback that waits for writability
// while the socket buffer is full (the data is in flight: holding the
// pipe or buffer and the goroutine is fine).
func (h *half) sockOutWait(fd uintptr) bool { return h.sockOut(fd) }

// adapt picks the path of the next read from the size of the last one
// (ModeAuto only).
func (h *half) adapt(n int) {
	if h.mode != ModeAuto {
		return
	}
	if !h.spliceNow {
		if n == smallBufSize {
			h.spliceNow, h.smallRun = true, 0
		}
		return
	}
	if n >= smallSplice {
		h.smallRun = 0
		return
	}
	if h.smallRun++; h.smallRun >= smallSplices {
		h.spliceNow, h.smallRun = false, 0
	}
}

// quietPath is called when the direction parks: a ModeAuto direction
// starts again on the buffered path.
func (h *half) quietPath() {
	if h.mode == ModeAuto {
		h.spliceNow, h.smallRun = false, 0
	}
}

// sockStep moves one chunk src → pipe or buffer → dst. The read waits in
// the netpoller, up to the busy wait, and on the buffered path it may
// move several messages before it returns (bufferedIn).
func (h *half) sockStep() int {
	if h.pending == 0 {
		if !h.spliceNow {
			h.releasePipe() // back from splice: the pipe is empty
		}
		h.inN, h.rerr, h.werr, h.counted = 0, nil, nil, false
		h.armBusy()
		if err := h.srcRaw.Read(h.readFn); err != nil {
			if h.busyDeadline(err) {
				return stepIdle // nothing came within the busy wait
			}
			h.readErr(err) // deadline (end of relay) or closed
			return stepDone
		}
		switch {
		case h.rerr != nil:
			h.readErr(h.rerr)
			return stepDone
		case h.werr != nil: // bufferedIn wrote, and dst failed
			h.writeErr(h.werr)
			return stepDone
		case h.counted:
			// bufferedIn counted the chunk; it left the rest for us to write
			// (dst full), or wrote it all and switched to splice.
			h.counted = false
			if h.pending == 0 {
				return stepMoved
			}
		case h.inN == 0:
			if err := h.pendingError(); err != nil {
				h.readErr(err) // an abort (timeout, reset) that read as EOF
				return stepDone
			}
			h.eof()
			return stepDone
		default:
			h.count(int64(h.inN), time.Now())
			h.pending = h.inN
			h.adapt(int(h.inN))
		}
	}
	h.werr = nil
	if err := h.dstRaw().Write(h.writeFn); err != nil {
		h.writeErr(err)
		return stepDone
	}
	if h.werr != nil {
		h.writeErr(h.werr)
		return stepDone
	}
	return stepMoved
}

// dropHeld gives back the pipe or buffer held when the direction ends.
func (h *half) dropHeld() {
	h.releasePipe()
	h.releaseBuf()
}

// bindSocketPath binds the RawConn callbacks of the socket path (once, so
// that the per-chunk calls allocate nothing).
func (h *half) bindSocketPath() {
	h.readFn = h.sockIn
	h.writeFn = h.sockOutWait
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

// pendingError returns a socket error of src that an end-of-file may
// hide: once the kernel aborted a connection and shut it down, a read can
// return 0 while the error waits in SO_ERROR.
func (h *half) pendingError() error {
	var errno int
	_ = h.srcRaw.Control(func(fd uintptr) {
		errno, _ = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_ERROR)
	})
	if errno != 0 {
		return syscall.Errno(errno)
	}
	return nil
}
