//go:build linux

package relay

import (
	"bytes"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/prismproxy/prism/internal/event"
)

// wrappedConn hides a *net.TCPConn from the relay's kernel-socket paths,
// as a *tls.Conn does: a relay with one takes the goroutine path, and
// still reaches the TCP socket under it through NetConn (TCP_INFO).
type wrappedConn struct{ net.Conn }

func (w wrappedConn) NetConn() net.Conn { return w.Conn }
func (w wrappedConn) CloseWrite() error { return w.Conn.(*net.TCPConn).CloseWrite() }

// slowClientPair is tcpPair with a small receive buffer on the test's
// end a (set before connecting, so that the window is small from the
// start) and a large send buffer on the relay's end b: a download to a
// slow reader, most of it queued in the kernel, none in the relay.
func slowClientPair(t testing.TB) (a, b net.Conn) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ch := make(chan net.Conn, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			t.Error(err)
		}
		ch <- c
	}()
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		if err := rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 16<<10)
		}); err != nil {
			return err
		}
		return serr
	}}
	a, err = d.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	b = <-ch
	if b == nil {
		t.FailNow()
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	if err := b.(*net.TCPConn).SetWriteBuffer(4 << 20); err != nil { // capped by net.core.wmem_max
		t.Fatal(err)
	}
	return a, b
}

// TestIdleSlowReaderIsNotIdle: an origin sends a download at once and
// waits; the relay reads all of it early on, and the kernel then
// delivers it from the relay's socket buffers to a client that reads
// slowly, for several idle timeouts, while the relay itself reads and
// writes nothing. Bytes are moving: the relay must not end as idle. It
// used to (the idle clock counted only the relay's reads).
func TestIdleSlowReaderIsNotIdle(t *testing.T) {
	for _, path := range []string{"loop", "goroutine"} {
		t.Run(path, func(t *testing.T) { testIdleSlowReader(t, path == "goroutine") })
	}
}

func testIdleSlowReader(t *testing.T, wrap bool) {
	const idle = 250 * time.Millisecond
	const total = 1 << 20
	tc, rc := slowClientPair(t)
	ro, to := tcpPair(t)
	var client net.Conn = rc
	if wrap {
		client = wrappedConn{rc}
	}
	live := event.NewLive(event.New("test", event.NewID(time.Now())))
	r := New(client, ro, Options{IdleTimeout: idle, Live: live})
	if r.fl == nil && !wrap && getLoop(0) != nil {
		t.Fatal("relay between two TCP conns is not on the loop path")
	}
	done := make(chan Result, 1)
	go func() { done <- r.Run() }()

	payload := randBytes(total)
	go func() { _, _ = to.Write(payload) }() // then the origin waits: no FIN

	// Read at a steady pace until the relay has read the whole download
	// from the origin; whatever the client has not read yet is in the
	// kernel's buffers (the relay's send buffer, the client's receive
	// buffer), and the relay has nothing left to do.
	got := make([]byte, 0, total)
	chunk := make([]byte, 4<<10)
	deadline := time.Now().Add(10 * time.Second)
	_ = tc.SetReadDeadline(deadline.Add(5 * time.Second)) // no read waits for ever
	for live.OriginBytes.Load() < total {
		if time.Now().After(deadline) {
			t.Fatalf("relay read %d of %d bytes from the origin in 10s", live.OriginBytes.Load(), total)
		}
		n, err := tc.Read(chunk)
		if err != nil {
			t.Fatalf("client read after %d bytes: %v", len(got), err)
		}
		got = append(got, chunk[:n]...)
		time.Sleep(2 * time.Millisecond) // pacing a slow reader, not synchronisation
	}
	rest := total - len(got)
	if rest < 64<<10 {
		t.Fatalf("only %d bytes left in the kernel's buffers once the relay read everything; the test needs a slow drain", rest)
	}
	// Drain the rest over 4 idle timeouts, in 16 equal steps.
	const steps = 16
	pace := 4 * idle / steps
	drainStart := time.Now()
	for i := range steps {
		n := rest / steps
		if i == steps-1 {
			n = total - len(got)
		}
		time.Sleep(pace) // pacing, not synchronisation
		buf := make([]byte, n)
		if _, err := io.ReadFull(tc, buf); err != nil {
			t.Fatalf("client read after %d bytes: %v", len(got), err)
		}
		got = append(got, buf...)
	}
	if el := time.Since(drainStart); el < 2*idle {
		t.Fatalf("drain took %v, want over %v for the test to mean anything", el, 2*idle)
	}
	if !bytes.Equal(got, payload) {
		t.Fatal("client got other bytes than the origin sent")
	}
	select {
	case res := <-done:
		t.Fatalf("relay ended while the client was still reading the download it relayed: status %d side %v reason %v (%q)", res.Status, res.Side, res.Reason, res.Detail)
	default:
	}
	r.Stop()
	var res Result
	select {
	case res = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("relay did not end within 10s of Stop")
	}
	check(t, res, event.StatusOK, event.SideProxy, event.ReasonClosed)
	if res.OriginBytes != total || res.ClientBytes != 0 {
		t.Fatalf("bytes %d/%d, want 0/%d", res.ClientBytes, res.OriginBytes, total)
	}
}

// TestIdleStalledReaderTimesOut: a client that stopped reading (its
// window closed, the relay's send buffer full) makes no progress, whatever
// the kernel holds for it: the relay still ends at the idle timeout, on
// both paths.
func TestIdleStalledReaderTimesOut(t *testing.T) {
	for _, path := range []string{"loop", "goroutine"} {
		t.Run(path, func(t *testing.T) {
			// A second: filling the buffers before the client's window
			// closes, and a loaded CI machine's late timers, stay well
			// inside the bound below (2 × idle) that tells the designs apart.
			const idle = time.Second
			_, rc := slowClientPair(t) // the test's end never reads
			ro, to := tcpPair(t)
			var client net.Conn = rc
			if path == "goroutine" {
				client = wrappedConn{rc}
			}
			live := event.NewLive(event.New("test", event.NewID(time.Now())))
			r := New(client, ro, Options{IdleTimeout: idle, Live: live})
			done := make(chan Result, 1)
			start := time.Now()
			go func() { done <- r.Run() }()
			go func() { _, _ = to.Write(make([]byte, 16<<20)) }() // more than every buffer holds; fails once the test closes to
			var res Result
			select {
			case res = <-done:
			case <-time.After(10 * time.Second):
				t.Fatalf("relay to a client that reads nothing did not end within 10s (idle timeout %v); it read %d bytes from the origin", idle, live.OriginBytes.Load())
			}
			el := time.Since(start)
			check(t, res, event.StatusOK, event.SideProxy, event.ReasonTimeout)
			if el < idle {
				t.Fatalf("ended after %v, before the idle timeout %v", el, idle)
			}
			// The client's window closed within moments of the start, and
			// nothing moved since. Taking anything else for progress (bytes
			// waiting in the send queue; a first look at the deadline that
			// only notes the kernel's counters, to compare at the next)
			// keeps the relay for ever or for twice the idle timeout.
			if el >= 2*idle {
				t.Fatalf("ended after %v, want about the idle timeout %v after the client stopped reading", el, idle)
			}
			if res.OriginBytes == 0 {
				t.Fatal("no bytes relayed: the test did not fill the client's buffers")
			}
			t.Logf("ended %v after the start (idle timeout %v), %d bytes relayed", el, idle, res.OriginBytes)
		})
	}
}

// TestIdleAfterExchangeOnTime: a TCP connection that exchanged a few
// bytes and then went silent has nothing in the kernel either: it ends at
// the idle timeout after its last byte, on both paths, not one kernel
// look later.
func TestIdleAfterExchangeOnTime(t *testing.T) {
	for _, path := range []string{"loop", "goroutine"} {
		t.Run(path, func(t *testing.T) {
			const idle = time.Second // room for a loaded machine's late timers below 2 × idle
			tc, rc := tcpPair(t)
			ro, to := tcpPair(t)
			var client net.Conn = rc
			if path == "goroutine" {
				client = wrappedConn{rc}
			}
			r := New(client, ro, Options{IdleTimeout: idle})
			done := make(chan Result, 1)
			go func() { done <- r.Run() }()
			buf := make([]byte, 3)
			if _, err := tc.Write([]byte("GET")); err != nil {
				t.Fatal(err)
			}
			if _, err := io.ReadFull(to, buf); err != nil {
				t.Fatal(err)
			}
			if _, err := to.Write([]byte("200")); err != nil {
				t.Fatal(err)
			}
			if _, err := io.ReadFull(tc, buf); err != nil {
				t.Fatal(err)
			}
			last := time.Now()
			var res Result
			select {
			case res = <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("idle relay did not end within 10s")
			}
			el := time.Since(last)
			check(t, res, event.StatusOK, event.SideProxy, event.ReasonTimeout)
			if el < idle*3/4 || el >= 2*idle {
				t.Fatalf("ended %v after the last byte, want about the idle timeout %v", el, idle)
			}
			if res.ClientBytes != 3 || res.OriginBytes != 3 {
				t.Fatalf("bytes %d/%d, want 3/3", res.ClientBytes, res.OriginBytes)
			}
		})
	}
}
