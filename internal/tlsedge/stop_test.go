package tlsedge

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prismproxy/prism/internal/tlstest"
)

// stopAfter is a connection's context that is done from its n+1th Err
// on: a stop that lands after the phase's first look at it, between the
// deadline Terminate or Peek sets and the one it clears.
type stopAfter struct {
	context.Context
	n     int32
	calls atomic.Int32
}

func (c *stopAfter) Err() error {
	if c.calls.Add(1) > c.n {
		return context.Canceled
	}
	return nil
}

// TestStopIsNeverUndone: the caller stops a connection with a past
// deadline on it and its context; Terminate and Peek set a deadline of
// their own and clear it, which undid a stop that came before either, so
// that the handshake waited for handshake_timeout (here 30s) or went on
// as if nothing happened. Now they look at the context after each: a stop
// before the phase ends it at once, one during it makes it fail, and
// either is 500 INTERNAL_ERROR, never the client's failure.
func TestStopIsNeverUndone(t *testing.T) {
	ca := tlstest.NewCA(t, "CA")
	cert := ca.Issue(t, tlstest.Leaf{Names: []string{"a.example"}})
	term, _ := mustEdge(t, Config{Mode: ModeFlexible, HandshakeTimeout: 30 * time.Second,
		Certificates: []CertFile{{cert.CertFile, cert.KeyFile}}})
	peek, _ := mustEdge(t, Config{Mode: ModeOff, PeekSNI: true, HandshakeTimeout: 30 * time.Second})
	stopped, cancel := context.WithCancel(context.Background())
	cancel()

	check := func(t *testing.T, status int, err error, tlsStatus string) {
		t.Helper()
		if status != 500 || !errors.Is(err, context.Canceled) || tlsStatus != StatusInternalError {
			t.Fatalf("status %d ClientTlsStatus %s err %v, want 500 INTERNAL_ERROR for a stop", status, tlsStatus, err)
		}
	}
	t.Run("terminate, stopped before", func(t *testing.T) {
		addr, res := serveTerminateCtx(t, stopped, term, nil)
		c, err := net.Dial("tcp", addr) // says nothing: only the stop can end the handshake early
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		r := wait(t, res)
		check(t, r.status, r.err, r.ev.ClientTLS.Status)
	})
	t.Run("terminate, stopped during", func(t *testing.T) {
		addr, res := serveTerminateCtx(t, &stopAfter{Context: context.Background(), n: 1}, term, nil)
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		tc := tls.Client(c, &tls.Config{ServerName: "a.example", RootCAs: ca.Pool()})
		_ = tc.Handshake() // completes: the stop is seen after it
		r := wait(t, res)
		check(t, r.status, r.err, r.ev.ClientTLS.Status)
		if r.ev.ClientTLS.ServerName != "a.example" {
			t.Errorf("ServerName %q, want the SNI", r.ev.ClientTLS.ServerName)
		}
	})
	t.Run("peek, stopped before", func(t *testing.T) {
		addr, res := passthroughCtx(t, stopped, peek, "")
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		r := wait(t, res)
		check(t, r.status, r.err, r.ev.ClientTLS.Status)
	})
	t.Run("peek, stopped during", func(t *testing.T) {
		addr, res := passthroughCtx(t, &stopAfter{Context: context.Background(), n: 1}, peek, "")
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.Write(tlstest.ClientHello(t, "a.example")); err != nil {
			t.Fatal(err)
		}
		r := wait(t, res)
		check(t, r.status, r.err, r.ev.ClientTLS.Status)
	})
}

// TestHandshakeSlotWaitEndsWithTheConnection: with max_tls_handshakes
// set and every slot busy, a connection waits for one until its
// handshake deadline; a stop of the connection (its context) ends the
// wait at once. It waited on its own timer only, so a drain deadline or
// an operator's close was held for up to handshake_timeout.
func TestHandshakeSlotWaitEndsWithTheConnection(t *testing.T) {
	e, _ := mustEdge(t, Config{Mode: ModeOff, MaxHandshakes: 1})
	release, err := e.acquireHandshake(context.Background(), time.Now().Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	ctx, stop := context.WithCancel(context.Background())
	res := make(chan error, 1)
	go func() {
		_, err := e.acquireHandshake(ctx, time.Now().Add(30*time.Second))
		res <- err
	}()
	stop()
	select {
	case err := <-res:
		if !errors.Is(err, context.Canceled) || errors.Is(err, ErrHandshakeLimit) {
			t.Fatalf("err %v, want the stop (not a refusal by the limit)", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the wait for a handshake slot outlived the connection's stop")
	}
	if n := e.HandshakesRefused(); n != 0 {
		t.Errorf("%d refusals counted for a stopped connection, want 0", n)
	}
}
