package relay

import (
	"io"
	"sync"
	"time"
)

// The conn path, for connections that are not both kernel sockets
// (*tls.Conn, PROXY-protocol wrappers), and for every connection where the
// socket path is not built (other platforms than Linux): Read and Write
// through the net.Conn interface and a pooled buffer. A kernel socket as
// src is first checked for data without a buffer (Linux).

// connStep moves one chunk on the conn path. A kernel socket as src is
// first checked for data without holding a buffer.
func (h *half) connStep() int {
	if h.srcRaw != nil {
		h.again = false
		if err := h.srcRaw.Read(h.tryPeekFn); err != nil {
			h.readErr(err)
			return stepDone
		}
		if h.peekErr != nil {
			h.readErr(h.peekErr)
			return stepDone
		}
		if h.again {
			return stepWaitRead
		}
	}
	bp := getConnBuf()
	n, rerr := h.src().Read(*bp)
	if n > 0 {
		h.count(int64(n), time.Now())
		if _, werr := h.dst().Write((*bp)[:n]); werr != nil {
			putConnBuf(bp)
			h.writeErr(werr)
			return stepDone
		}
	}
	putConnBuf(bp)
	switch {
	case rerr == io.EOF:
		h.lastAtEOF = h.r.last.Load() // before the FIN goes on: the other peer may answer it
		h.eof()
		return stepEOF
	case rerr != nil:
		h.readErr(rerr)
		return stepDone
	}
	return stepMoved
}

// Buffers of the conn path. 32 KiB holds two full TLS records.
const connBufSize = 32 << 10

var connBufs = sync.Pool{New: func() any { b := make([]byte, connBufSize); return &b }}

func getConnBuf() *[]byte  { return connBufs.Get().(*[]byte) }
func putConnBuf(b *[]byte) { connBufs.Put(b) }
