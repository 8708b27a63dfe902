package relay

import (
	"io"
	"sync"
	"time"
)

// The path for connections that are not both kernel sockets (*tls.Conn,
// PROXY-protocol wrappers): Read and Write through a pooled buffer. A
// kernel socket as src is first checked for data without a buffer.

// copyStep is the buffered path for conns that cannot splice. A kernel
// socket as src is first checked for data without holding a buffer.
func (h *half) copyStep() int {
	if h.srcRaw != nil {
		h.again = false
		if err := h.srcRaw.Read(h.tryPeekFn); err != nil {
			h.readErr(err)
			return stepDone
		}
		if h.again {
			return stepWaitRead
		}
	}
	bp := getBuf()
	n, rerr := h.src.Read(*bp)
	if n > 0 {
		h.count(int64(n), time.Now())
		if _, werr := h.dst.Write((*bp)[:n]); werr != nil {
			putBuf(bp)
			h.writeErr(werr)
			return stepDone
		}
	}
	putBuf(bp)
	switch {
	case rerr == io.EOF:
		h.eof()
		return stepDone
	case rerr != nil:
		h.readErr(rerr)
		return stepDone
	}
	return stepMoved
}

// eof propagates the end of src: dst is half-closed so its peer sees FIN

// Buffers for the copy path. 32 KiB holds two full TLS records.
const bufSize = 32 << 10

var bufPool = sync.Pool{New: func() any { b := make([]byte, bufSize); return &b }}

func getBuf() *[]byte  { return bufPool.Get().(*[]byte) }
func putBuf(b *[]byte) { bufPool.Put(b) }
