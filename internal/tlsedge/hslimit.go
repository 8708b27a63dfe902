package tlsedge

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// ErrHandshakeLimit: the app's max_tls_handshakes were all in progress for
// the whole of this connection's handshake_timeout. The proxy records it as
// clientFiltered (403): the client was refused, not failed.
var ErrHandshakeLimit = errors.New("tls handshake: every handshake slot (limits.max_tls_handshakes) stayed busy until the handshake timeout")

// acquireHandshake waits for a handshake slot until deadline, or until
// ctx (the connection's) is done: a connection the proxy stops (drain
// deadline, an operator) must not hold the drain for the rest of its
// handshake_timeout. ctx's Done is asked for only when there is a wait.
// release is nil on error.
func (e *Edge) acquireHandshake(ctx context.Context, deadline time.Time) (release func(), err error) {
	if e.hs == nil {
		return func() {}, nil
	}
	select {
	case e.hs <- struct{}{}:
		return func() { <-e.hs }, nil
	default:
	}
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case e.hs <- struct{}{}:
		return func() { <-e.hs }, nil
	case <-t.C:
		e.hsRefused.Add(1)
		return nil, ErrHandshakeLimit
	case <-e.stop:
		return nil, ErrHandshakeLimit
	case <-ctx.Done():
		return nil, fmt.Errorf("tls handshake: waiting for a handshake slot: %w", ctx.Err())
	}
}

// HandshakesRefused is how many connections ErrHandshakeLimit refused.
func (e *Edge) HandshakesRefused() uint64 { return e.hsRefused.Load() }
