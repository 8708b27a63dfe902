package errstatus

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"testing"

	"github.com/prismproxy/prism/internal/event"
)

// op wraps errno the way the runtime reports a failed socket read.
func op(errno syscall.Errno) error {
	return &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", errno)}
}

func TestFlow(t *testing.T) {
	for _, tc := range []struct {
		err    error
		side   event.Side
		status int
		reason event.Reason
	}{
		{nil, event.SideClient, 200, event.ReasonPeerClose},
		{io.EOF, event.SideOrigin, 200, event.ReasonPeerClose},
		{fmt.Errorf("read: %w", io.EOF), event.SideClient, 200, event.ReasonPeerClose},
		{op(syscall.ECONNRESET), event.SideOrigin, 444, event.ReasonPeerError},
		{op(syscall.ETIMEDOUT), event.SideOrigin, 445, event.ReasonTimeout},
		{op(syscall.EHOSTUNREACH), event.SideOrigin, 446, event.ReasonPeerError},
		{op(syscall.ENETUNREACH), event.SideOrigin, 446, event.ReasonPeerError},
		{op(syscall.ECONNREFUSED), event.SideOrigin, 447, event.ReasonPeerError},
		{op(syscall.EPIPE), event.SideOrigin, 448, event.ReasonPeerError},
		{op(syscall.ECONNREFUSED), event.SideClient, 495, event.ReasonPeerError},
		{op(syscall.EHOSTUNREACH), event.SideClient, 496, event.ReasonPeerError},
		{op(syscall.ENETUNREACH), event.SideClient, 496, event.ReasonPeerError},
		{op(syscall.ETIMEDOUT), event.SideClient, 497, event.ReasonTimeout},
		{syscall.EPIPE, event.SideClient, 498, event.ReasonPeerError},
		{op(syscall.ECONNRESET), event.SideClient, 499, event.ReasonPeerError},
		{op(syscall.ECONNRESET), event.SideProxy, 444, event.ReasonPeerError}, // other sides classify as the origin
		{tls.RecordHeaderError{Msg: "x"}, event.SideClient, 490, event.ReasonPeerError},
		{&net.OpError{Op: "local error", Err: errors.New("tls: bad record MAC")}, event.SideClient, 490, event.ReasonPeerError},
		{&net.OpError{Op: "remote error", Err: tls.AlertError(40)}, event.SideClient, 490, event.ReasonPeerError},
		{tls.AlertError(20), event.SideClient, 490, event.ReasonPeerError},
		{tls.RecordHeaderError{Msg: "x"}, event.SideOrigin, 500, event.ReasonPeerError},
		// crypto/tls: the connection ended in the middle of a record.
		{io.ErrUnexpectedEOF, event.SideClient, 490, event.ReasonPeerError},
		{&net.OpError{Op: "read", Err: io.ErrUnexpectedEOF}, event.SideClient, 490, event.ReasonPeerError},
		{io.ErrUnexpectedEOF, event.SideOrigin, 444, event.ReasonPeerError},
		{os.ErrDeadlineExceeded, event.SideClient, 200, event.ReasonTimeout},
		{&net.OpError{Op: "read", Err: os.ErrDeadlineExceeded}, event.SideOrigin, 200, event.ReasonTimeout},
		{net.ErrClosed, event.SideOrigin, 200, event.ReasonClosed},
		{op(syscall.EMFILE), event.SideClient, 500, event.ReasonPeerError},
		{errors.New("something odd"), event.SideOrigin, 500, event.ReasonPeerError},
	} {
		s, r := Flow(tc.err, tc.side)
		if s != tc.status || r != tc.reason {
			t.Errorf("Flow(%v, %v) = %d %v, want %d %v", tc.err, tc.side, s, r, tc.status, tc.reason)
		}
	}
}

func TestDial(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want int
	}{
		{&net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}, event.StatusOriginConnRefused},
		{&net.OpError{Op: "dial", Err: syscall.ENOENT}, event.StatusOriginConnRefused},
		{&net.OpError{Op: "dial", Err: &os.PathError{Op: "stat", Path: "/nowhere", Err: os.ErrNotExist}}, event.StatusOriginConnRefused},
		{&net.OpError{Op: "dial", Err: syscall.ETIMEDOUT}, event.StatusOriginConnTimeout},
		{context.DeadlineExceeded, event.StatusOriginConnTimeout},
		{&net.OpError{Op: "dial", Err: os.ErrDeadlineExceeded}, event.StatusOriginConnTimeout},
		{&net.OpError{Op: "dial", Err: syscall.EHOSTUNREACH}, event.StatusOriginConnUnreachable},
		{&net.OpError{Op: "dial", Err: syscall.ENETUNREACH}, event.StatusOriginConnUnreachable},
		{&net.OpError{Op: "dial", Err: syscall.ECONNRESET}, event.StatusOriginConnInternal},
		{&net.OpError{Op: "write", Err: os.NewSyscallError("sendmsg", syscall.EPIPE)}, event.StatusOriginConnInternal},
		{&net.OpError{Op: "dial", Err: syscall.EMFILE}, event.StatusOriginConnInternal},
		{context.Canceled, event.StatusOriginConnInternal},
		{errors.New("something else"), event.StatusOriginUnknown},
	} {
		if got := Dial(tc.err); got != tc.want {
			t.Errorf("Dial(%v) = %d, want %d", tc.err, got, tc.want)
		}
	}
}

func TestDatagram(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want int
	}{
		{syscall.ECONNREFUSED, event.StatusOriginRefused},
		{syscall.EHOSTUNREACH, event.StatusOriginUnreachable},
		{syscall.ENETUNREACH, event.StatusOriginUnreachable},
		{syscall.ETIMEDOUT, event.StatusOriginTimeout},
		{syscall.EPIPE, event.StatusOriginPipe},
		{op(syscall.ECONNREFUSED), event.StatusOriginRefused},
		{syscall.ECONNRESET, event.StatusUnknown},
		{syscall.EMFILE, event.StatusUnknown},
		{errors.New("odd"), event.StatusUnknown},
	} {
		if got := Datagram(tc.err); got != tc.want {
			t.Errorf("Datagram(%v) = %d, want %d", tc.err, got, tc.want)
		}
	}
}

func TestIsTimeout(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{context.DeadlineExceeded, true},
		{os.ErrDeadlineExceeded, true},
		{op(syscall.ETIMEDOUT), true},
		{&net.DNSError{Err: "i/o timeout", IsTimeout: true}, true},
		{op(syscall.ECONNRESET), false},
		{io.EOF, false},
		{nil, false},
	} {
		if got := IsTimeout(tc.err); got != tc.want {
			t.Errorf("IsTimeout(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

func TestIsTLS(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{tls.RecordHeaderError{Msg: "x"}, true},
		{tls.AlertError(40), true},
		{&tls.CertificateVerificationError{Err: errors.New("x")}, true},
		{&net.OpError{Op: "remote error", Err: errors.New("bad certificate")}, true},
		{fmt.Errorf("handshake: %w", errors.New("tls: first record does not look like a TLS handshake")), true},
		{&net.OpError{Op: "read", Err: os.ErrDeadlineExceeded}, false},
		{op(syscall.ECONNRESET), false},
		{io.EOF, false},
		{nil, false},
	} {
		if got := IsTLS(tc.err); got != tc.want {
			t.Errorf("IsTLS(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

// TestTableDisjoint: every errno is in one row only, so that the order of
// the table decides nothing for an error carrying one errno.
func TestTableDisjoint(t *testing.T) {
	seen := map[syscall.Errno]bool{}
	for _, row := range errnos {
		for _, e := range row.errnos {
			if seen[e] {
				t.Errorf("errno %v in two rows", e)
			}
			seen[e] = true
		}
	}
}
