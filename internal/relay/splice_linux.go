package relay

import (
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// pipeSize is the capacity of each splice pipe: the kernel's default, so
// a new pipe needs no F_SETPIPE_SZ. The standard library asks for 1 MiB,
// which moves a stream in fewer system calls, but on loopback a 1 MiB
// pipe cost 10-25 % of bulk throughput against 64 KiB (6.6-6.7 against
// 7.0-8.2 Gbit/s): each splice out then hands the receiver one burst of
// hundreds of page fragments, which its kernel cannot coalesce into fewer
// socket buffers (TCPRcvCoalesce fell from 78k to 28k in 4 s).
const pipeSize = 64 << 10

// maxIdlePipes bounds the pool of spare pipes (64 KiB each; the per-user
// pipe budget fs.pipe-user-pages-soft is 64 MiB): pipes are needed only while
// data moves, so a handful per CPU covers every direction in flight.
const maxIdlePipes = 16

type pipe struct{ r, w int }

// copyBufSize is the copy-mode buffer (Options.Copy). On loopback 64 KiB beat both 32 KiB
// and 256 KiB for one bulk stream (the receiver gets smaller, steadier
// writes than with 256 KiB) and tied for eight.
const copyBufSize = 64 << 10

var copyBufs = sync.Pool{New: func() any { b := make([]byte, copyBufSize); return &b }}

// bufsInUse counts copy-mode buffers borrowed right now (tests use it, as
// pipesInUse, to prove that idle connections hold none).
var bufsInUse atomic.Int64

func getCopyBuf() *[]byte {
	bufsInUse.Add(1)
	return copyBufs.Get().(*[]byte)
}

func putCopyBuf(b *[]byte) {
	bufsInUse.Add(-1)
	copyBufs.Put(b)
}

// pipesInUse counts pipes borrowed by directions right now (tests use it
// to prove that idle connections hold none).
var pipesInUse atomic.Int64

var pipes struct {
	mu   sync.Mutex
	free []*pipe
}

// getPipe borrows a pipe from the pool or makes one.
func getPipe() (*pipe, error) {
	pipesInUse.Add(1)
	pipes.mu.Lock()
	if n := len(pipes.free); n > 0 {
		p := pipes.free[n-1]
		pipes.free = pipes.free[:n-1]
		pipes.mu.Unlock()
		return p, nil
	}
	pipes.mu.Unlock()
	var fds [2]int
	if err := unix.Pipe2(fds[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		pipesInUse.Add(-1)
		return nil, fmt.Errorf("splice pipe: %w", err)
	}
	return &pipe{r: fds[0], w: fds[1]}, nil
}

// putPipe returns an empty pipe to the pool; a pipe that may still hold
// data, or one beyond the pool's bound, is closed.
func putPipe(p *pipe, empty bool) {
	pipesInUse.Add(-1)
	if empty {
		pipes.mu.Lock()
		if len(pipes.free) < maxIdlePipes {
			pipes.free = append(pipes.free, p)
			pipes.mu.Unlock()
			return
		}
		pipes.mu.Unlock()
	}
	_ = unix.Close(p.r)
	_ = unix.Close(p.w)
}

// spliceIn is the RawConn.Read callback of a step: move what is queued on
// the socket into the pipe (or, in copy mode, the buffer). It never waits:
// when nothing is queued it gives the pipe or buffer back to its pool and
// sets again, so that a direction waiting for data holds neither.
func (h *half) spliceIn(fd uintptr) bool {
	if h.copyMode {
		return h.readIn(fd)
	}
	if h.pipe == nil {
		p, err := getPipe()
		if err != nil {
			h.rerr = err
			return true
		}
		h.pipe = p
	}
	for {
		n, err := unix.Splice(int(fd), nil, h.pipe.w, nil, pipeSize, unix.SPLICE_F_MOVE|unix.SPLICE_F_NONBLOCK)
		switch err {
		case nil:
			h.inN = int(n)
			return true
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			putPipe(h.pipe, true)
			h.pipe = nil
			h.again = true
			return true
		}
		h.rerr = err
		return true
	}
}

// readIn is spliceIn in copy mode: read(2) into a pooled buffer.
func (h *half) readIn(fd uintptr) bool {
	if h.buf == nil {
		h.buf = getCopyBuf()
	}
	for {
		n, err := unix.Read(int(fd), *h.buf)
		switch err {
		case nil:
			h.inN, h.off = n, 0
			return true
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			putCopyBuf(h.buf)
			h.buf = nil
			h.again = true
			return true
		}
		h.rerr = err
		return true
	}
}

// spliceOut moves the pipe's (or buffer's) content to the socket; false
// means the socket buffer is full.
func (h *half) spliceOut(fd uintptr) bool {
	for h.pending > 0 {
		var (
			n   int
			err error
		)
		if !h.copyMode {
			var n64 int64
			n64, err = unix.Splice(h.pipe.r, nil, int(fd), nil, h.pending, unix.SPLICE_F_MOVE|unix.SPLICE_F_NONBLOCK)
			n = int(n64)
		} else {
			n, err = unix.Write(int(fd), (*h.buf)[h.off:h.off+h.pending])
			if err == nil {
				h.off += n
			}
		}
		switch err {
		case nil:
			h.pending -= n
			continue
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false
		}
		h.werr = err
		return true
	}
	return true
}

// spliceOutWait is the RawConn.Write callback that waits for writability
// while the socket buffer is full (the data is in flight: holding the
// pipe and the goroutine is fine).
func (h *half) spliceOutWait(fd uintptr) bool { return h.spliceOut(fd) }

// spliceOutTry never waits: on a full socket buffer it sets again.
func (h *half) spliceOutTry(fd uintptr) bool {
	h.again = !h.spliceOut(fd)
	return true
}

// dropPipe gives back the pipe or buffer held when the direction ends.
func (h *half) dropPipe() {
	if h.pipe != nil {
		putPipe(h.pipe, h.pending == 0)
		h.pipe = nil
	}
	if h.buf != nil {
		putCopyBuf(h.buf)
		h.buf = nil
	}
}

// fdRTT returns the smoothed RTT of a TCP socket (TCP_INFO reports µs).
func fdRTT(fd int) time.Duration {
	info, err := unix.GetsockoptTCPInfo(fd, unix.IPPROTO_TCP, unix.TCP_INFO)
	if err != nil {
		return 0
	}
	return time.Duration(info.Rtt) * time.Microsecond
}
