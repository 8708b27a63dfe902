package relay

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"syscall"

	"github.com/prismproxy/prism/internal/event"
)

// Classify maps an error seen on one leg of an established connection to
// the Spectrum status and the neutral reason. side is the leg the error
// happened on (SideClient or SideOrigin); other sides classify as if they
// were the origin.
//
//	nil, io.EOF              200 ReasonPeerClose
//	ECONNRESET               444 origin / 499 client, ReasonPeerError
//	ETIMEDOUT                445 origin / 497 client, ReasonTimeout
//	EHOSTUNREACH, ENETUNREACH 446 origin / 496 client, ReasonPeerError
//	ECONNREFUSED             447 origin / 495 client, ReasonPeerError
//	EPIPE                    448 origin / 498 client, ReasonPeerError
//	TLS error (client leg)   490 ReasonPeerError
//	deadline exceeded        200 ReasonTimeout (a proxy timeout)
//	net.ErrClosed            200 ReasonClosed (the proxy closed it)
//	anything else            500 ReasonPeerError
func Classify(err error, side event.Side) (status int, reason event.Reason) {
	client := side == event.SideClient
	pick := func(origin, clientStatus int) int {
		if client {
			return clientStatus
		}
		return origin
	}
	switch {
	case err == nil || errors.Is(err, io.EOF):
		return event.StatusOK, event.ReasonPeerClose
	case errors.Is(err, syscall.ECONNRESET):
		return pick(event.StatusOriginReset, event.StatusClientReset), event.ReasonPeerError
	case errors.Is(err, syscall.ETIMEDOUT):
		return pick(event.StatusOriginTimeout, event.StatusClientTimeout), event.ReasonTimeout
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return pick(event.StatusOriginUnreachable, event.StatusClientUnreachable), event.ReasonPeerError
	case errors.Is(err, syscall.ECONNREFUSED):
		return pick(event.StatusOriginRefused, event.StatusClientRefused), event.ReasonPeerError
	case errors.Is(err, syscall.EPIPE):
		return pick(event.StatusOriginPipe, event.StatusClientPipe), event.ReasonPeerError
	case errors.Is(err, os.ErrDeadlineExceeded):
		return event.StatusOK, event.ReasonTimeout
	case errors.Is(err, net.ErrClosed):
		return event.StatusOK, event.ReasonClosed
	case client && isTLSError(err):
		return event.StatusClientTLSError, event.ReasonPeerError
	}
	return event.StatusInternal, event.ReasonPeerError
}

// isTLSError reports whether err came from crypto/tls: a typed error, an
// alert (local or remote), or one of its "tls: ..." errors.
func isTLSError(err error) bool {
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
			return true
		}
		if strings.HasPrefix(e.Error(), "tls: ") {
			return true
		}
	}
	return false
}
