//go:build !portable

package relay

import (
	"sync"
	"sync/atomic"
)

// The buffered way between two kernel sockets (loop_linux.go): recv(2)
// into a pooled buffer, send(2) out of it. ModeCopy uses a 64 KiB buffer
// for every chunk; ModeAuto uses a small one for the small messages of
// interactive traffic (a read that fills it switches the direction to
// splice). A direction borrows a buffer only while a chunk is in flight.

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
