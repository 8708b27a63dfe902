package tlsedge

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/prismproxy/prism/internal/cfgerr"
	"github.com/prismproxy/prism/internal/event"
	"github.com/prismproxy/prism/internal/slogtest"
)

// testLogger is a debug-level text logger into a buffer the test can
// read (and sees in full when it fails).
func testLogger(t testing.TB) (*slog.Logger, *slogtest.Buffer) { return slogtest.Text(t) }

// prepared is cfg defaulted and validated, as NewEdge expects it.
func prepared(t testing.TB, cfg Config) Config {
	t.Helper()
	if err := cfgerr.Prepare(&cfg); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// mustEdge builds an Edge and closes it when the test ends.
func mustEdge(t testing.TB, cfg Config) (*Edge, *slogtest.Buffer) {
	t.Helper()
	logger, lb := testLogger(t)
	e, err := NewEdge(prepared(t, cfg), logger)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e, lb
}

// termResult is what one server-side Terminate produced.
type termResult struct {
	tc     *tls.Conn
	status int
	err    error
	ev     event.Event
}

// serveTerminate accepts one connection on a fresh loopback listener and
// runs Terminate on it. After a successful handshake, handle (if set) runs
// on the TLS conn before the result is delivered.
func serveTerminate(t testing.TB, e *Edge, handle func(*tls.Conn)) (string, <-chan termResult) {
	t.Helper()
	return serveTerminateCtx(t, context.Background(), e, handle)
}

// serveTerminateCtx is serveTerminate with ctx as the connection's context.
func serveTerminateCtx(t testing.TB, ctx context.Context, e *Edge, handle func(*tls.Conn)) (string, <-chan termResult) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan termResult, 1)
	go func() {
		defer ln.Close()
		c, err := ln.Accept()
		if err != nil {
			ch <- termResult{err: err, status: -1}
			return
		}
		ev := event.New("app", event.NewID(time.Now()))
		tc, st, err := e.Terminate(ctx, c, &ev)
		if err != nil {
			c.Close()
		} else if handle != nil {
			handle(tc)
		}
		ch <- termResult{tc: tc, status: st, err: err, ev: ev}
	}()
	t.Cleanup(func() { ln.Close() })
	return ln.Addr().String(), ch
}

func wait[T any](t testing.TB, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(15 * time.Second):
		t.Fatal("timed out waiting for the server side")
	}
	var zero T
	return zero
}
