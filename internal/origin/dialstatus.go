package origin

import (
	"context"
	"errors"
	"net"
	"os"
	"syscall"

	"github.com/prismproxy/prism/internal/event"
)

// DialStatus maps a failed attempt to create the origin leg (a TCP dial, or
// the first send on a UDP origin socket) to its Spectrum originError status:
// 521 refused (including a unix socket path with nothing behind it), 522
// timed out, 523 unreachable, 524 another system error, 520 unknown.
func DialStatus(err error) int {
	switch {
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, os.ErrNotExist), errors.Is(err, syscall.ENOENT):
		return event.StatusOriginConnRefused
	case IsTimeout(err):
		return event.StatusOriginConnTimeout
	case errors.Is(err, syscall.ENETUNREACH), errors.Is(err, syscall.EHOSTUNREACH):
		return event.StatusOriginConnUnreachable
	case errors.Is(err, context.Canceled):
		return event.StatusOriginConnInternal
	}
	var se syscall.Errno
	if errors.As(err, &se) {
		return event.StatusOriginConnInternal
	}
	return event.StatusOriginUnknown
}

// IsTimeout reports whether err is a timeout of any kind: a deadline, a
// context deadline or ETIMEDOUT.
func IsTimeout(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, syscall.ETIMEDOUT) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
