// Package errstatus is the one place where an error seen on a socket
// becomes a Status of the canonical event (Spectrum's status codes, see
// package event) and, for an established connection, a neutral Reason.
//
// There is one function per phase of a session, all reading the same errno
// table:
//
//   - Dial: the origin leg could not be created (a TCP or unix dial, or the
//     first send on a UDP origin socket): originError, 520-524.
//   - Flow: an established connection failed on one leg: disconnect,
//     444-448 on the origin leg, 495-499 on the client leg, 490 for a TLS
//     error on the client leg, 200 for a close the proxy caused.
//   - Datagram: an established UDP origin socket reported an error
//     (ICMP port unreachable → ECONNREFUSED and the like): 445-448 or 999.
//
// IsTimeout and IsTLS are the two predicates the phases share with their
// callers (header timeouts in internal/proxy, for one).
//
// It lives under event, not in it, because event touches no socket and
// knows no errno; and it imports nothing of prism but event, so that every
// data-path package (relay, origin, udpproxy, tlsedge, proxy) can use it
// without an import cycle.
package errstatus

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"syscall"

	"github.com/prismproxy/prism/internal/event"
)

// errnoRow is what one socket error means in each phase. A zero dial
// status means "an errno like any other" (Dial then returns 524).
type errnoRow struct {
	errnos         []syscall.Errno
	dial           int          // Dial's status, 0: the generic errno one
	origin, client int          // Flow's status on the origin / client leg
	reason         event.Reason // Flow's reason
	datagram       bool         // Datagram maps it (it can reach a UDP socket)
}

// errnos is the errno table of every phase, in the order Flow checks it.
var errnos = [...]errnoRow{
	{[]syscall.Errno{syscall.ECONNRESET}, 0,
		event.StatusOriginReset, event.StatusClientReset, event.ReasonPeerError, false},
	{[]syscall.Errno{syscall.ETIMEDOUT}, event.StatusOriginConnTimeout,
		event.StatusOriginTimeout, event.StatusClientTimeout, event.ReasonTimeout, true},
	{[]syscall.Errno{syscall.EHOSTUNREACH, syscall.ENETUNREACH}, event.StatusOriginConnUnreachable,
		event.StatusOriginUnreachable, event.StatusClientUnreachable, event.ReasonPeerError, true},
	{[]syscall.Errno{syscall.ECONNREFUSED}, event.StatusOriginConnRefused,
		event.StatusOriginRefused, event.StatusClientRefused, event.ReasonPeerError, true},
	{[]syscall.Errno{syscall.EPIPE}, 0,
		event.StatusOriginPipe, event.StatusClientPipe, event.ReasonPeerError, true},
}

// lookup returns the table row of the errno err carries, nil if none.
func lookup(err error) *errnoRow {
	for i := range errnos {
		for _, e := range errnos[i].errnos {
			if errors.Is(err, e) {
				return &errnos[i]
			}
		}
	}
	return nil
}

// Dial maps a failed attempt to create the origin leg (a TCP dial, or the
// first send on a UDP origin socket) to its Spectrum originError status:
// 521 refused (including a unix socket path with nothing behind it), 522
// timed out, 523 unreachable, 524 another system error, 520 unknown.
func Dial(err error) int {
	row := lookup(err)
	switch {
	case row != nil && row.dial == event.StatusOriginConnRefused,
		errors.Is(err, os.ErrNotExist), errors.Is(err, syscall.ENOENT):
		return event.StatusOriginConnRefused
	case IsTimeout(err):
		return event.StatusOriginConnTimeout
	case row != nil && row.dial != 0:
		return row.dial
	case errors.Is(err, context.Canceled):
		return event.StatusOriginConnInternal
	}
	var se syscall.Errno
	if errors.As(err, &se) {
		return event.StatusOriginConnInternal
	}
	return event.StatusOriginUnknown
}

// Flow maps an error seen on one leg of an established connection to the
// Spectrum status and the neutral reason. side is the leg the error
// happened on (SideClient or SideOrigin); other sides classify as if they
// were the origin.
//
//	nil, io.EOF               200 ReasonPeerClose
//	ECONNRESET                444 origin / 499 client, ReasonPeerError
//	ETIMEDOUT                 445 origin / 497 client, ReasonTimeout
//	EHOSTUNREACH, ENETUNREACH 446 origin / 496 client, ReasonPeerError
//	ECONNREFUSED              447 origin / 495 client, ReasonPeerError
//	EPIPE                     448 origin / 498 client, ReasonPeerError
//	deadline exceeded         200 ReasonTimeout (a proxy timeout)
//	net.ErrClosed             200 ReasonClosed (the proxy closed it)
//	TLS error (client leg)    490 ReasonPeerError
//	io.ErrUnexpectedEOF       490 client / 444 origin, ReasonPeerError
//	anything else             500 ReasonPeerError
//
// io.ErrUnexpectedEOF is a stream that ended inside a frame of the
// protocol over TCP; on an established leg that is TLS: crypto/tls
// returns it, bare, for a connection closed in the middle of a record
// (at a record boundary without close_notify it says io.EOF). On the
// client leg that is a client TLS error on an established connection,
// 490, not an internal error. On the origin leg the origin cut its
// stream short, an abrupt close by the origin: 444, the origin leg's
// disconnect status for that, and not 520, which is an originError
// status (the origin leg could not be created), never a disconnect.
func Flow(err error, side event.Side) (status int, reason event.Reason) {
	client := side == event.SideClient
	if err == nil || errors.Is(err, io.EOF) {
		return event.StatusOK, event.ReasonPeerClose
	}
	if row := lookup(err); row != nil {
		if client {
			return row.client, row.reason
		}
		return row.origin, row.reason
	}
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		return event.StatusOK, event.ReasonTimeout
	case errors.Is(err, net.ErrClosed):
		return event.StatusOK, event.ReasonClosed
	case client && IsTLS(err):
		return event.StatusClientTLSError, event.ReasonPeerError
	case errors.Is(err, io.ErrUnexpectedEOF):
		if client {
			return event.StatusClientTLSError, event.ReasonPeerError
		}
		return event.StatusOriginReset, event.ReasonPeerError
	}
	return event.StatusInternal, event.ReasonPeerError
}

// Datagram maps an error an established UDP origin socket reported to the
// disconnect status of the origin leg: 447 refused (the ICMP port
// unreachable of a closed port), 446 unreachable, 445 timed out, 448
// EPIPE; anything else is 999 (unknown).
func Datagram(err error) int {
	if row := lookup(err); row != nil && row.datagram {
		return row.origin
	}
	return event.StatusUnknown
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

// IsTLS reports whether err came from crypto/tls rather than from the
// socket under it: a typed error, an alert (sent or received), or one of
// its "tls: ..." errors.
func IsTLS(err error) bool {
	var (
		rh    tls.RecordHeaderError
		alert tls.AlertError
		cv    *tls.CertificateVerificationError
	)
	if errors.As(err, &rh) || errors.As(err, &alert) || errors.As(err, &cv) {
		return true
	}
	for e := err; e != nil; e = errors.Unwrap(e) {
		if op, ok := e.(*net.OpError); ok && (op.Op == "local error" || op.Op == "remote error") {
			return true // crypto/tls wraps its alerts in these two ops only
		}
		if strings.HasPrefix(e.Error(), "tls: ") {
			return true
		}
	}
	return false
}
