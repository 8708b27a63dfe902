//go:build linux

package relay

import (
	"io"
	"testing"
	"time"

	"github.com/prismproxy/prism/internal/event"
)

// TestResetAfterHalfClose: a peer half-closes (its FIN is propagated to
// the other peer, which stays quiet) and then resets. No direction reads
// that socket any more, but the reset must still end the relay at once
// as that peer's reset (499 client, 444 origin), not linger until the
// idle timeout. The kernel reports an RST received after the peer's FIN
// (CLOSE_WAIT) as EPIPE in SO_ERROR; that is still the peer's reset.
// tcp/tcp takes the loop path (the goroutine path with
// PRISM_RELAY_POLLER=off); a TLS client leg the goroutine path, its
// directions parking in a loop.
func TestResetAfterHalfClose(t *testing.T) {
	const idle = 3 * time.Second
	for _, tc := range []struct {
		name string
		cl   legKind
		mode Mode
	}{
		{"auto", legTCP, ModeAuto},
		{"splice", legTCP, ModeSplice},
		{"tls", legTLS, ModeAuto},
	} {
		for _, who := range []event.Side{event.SideClient, event.SideOrigin} {
			t.Run(tc.name+"/"+who.String(), func(t *testing.T) {
				g := newRig(t, tc.cl, legTCP, Options{Mode: tc.mode, IdleTimeout: idle})
				a, b := g.client, g.origin
				status := event.StatusClientReset
				if who == event.SideOrigin {
					a, b = g.origin, g.client
					status = event.StatusOriginReset
				}
				closeWrite(t, a)
				_ = b.SetReadDeadline(time.Now().Add(5 * time.Second))
				if _, err := io.ReadAll(b); err != nil { // a's FIN reached b
					t.Fatal(err)
				}
				start := time.Now()
				reset(t, a)
				res := g.result(t)
				check(t, res, status, who, event.ReasonPeerError)
				if el := time.Since(start); el >= idle {
					t.Fatalf("ended after %v: the idle timeout, not the reset", el)
				}
			})
		}
	}
}
