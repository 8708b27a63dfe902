//go:build !portable

package relay

import "syscall"

// The goroutine path's waits on a kernel socket without a loop to park
// in (and, before each chunk, its check for data before borrowing a
// buffer).

// peekWait is a RawConn.Read callback that returns once src has data,
// EOF or an error queued, without consuming any data. A socket error it
// finds is consumed by the peek (a later read would say EOF instead of,
// say, "connection reset"): it is kept in peekErr for the step to report.
func (h *half) peekWait(fd uintptr) bool {
	_, _, err := syscall.Recvfrom(int(fd), h.peekBuf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	switch err {
	case syscall.EAGAIN, syscall.EINTR:
		return false
	case nil:
	default:
		if h.peekErr == nil {
			h.peekErr = err
		}
	}
	return true
}

// peekTry is peekWait that never waits: it sets again instead.
func (h *half) peekTry(fd uintptr) bool {
	h.again = !h.peekWait(fd)
	return true
}
