//go:build !portable

package relay

import (
	"net"
	"syscall"
	"time"
)

// Kernel sockets and the adaptive choice of the loop path
// (loop_linux.go): under ModeAuto a direction starts on the buffered way
// (buffered_linux.go): a small message costs one read(2) and one
// write(2), the fewest system calls there are, and no pipe. A read that
// fills the small buffer means the direction carries bulk: it switches to
// splice (splice_linux.go), which keeps the payload in the kernel. It
// switches back after smallSplices small splices in a row, or when it
// moved nothing for quietAfter.

// smallSplice is the size below which a splice counts as small.
const smallSplice = 4 << 10

// smallSplices small splices in a row send a ModeAuto direction back to
// the buffered path.
const smallSplices = 4

// quietAfter is how long a spliced direction may move nothing before
// its next read starts on the buffered path again.
const quietAfter = 50 * time.Millisecond

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
