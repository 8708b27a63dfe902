package udpproxy

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prismproxy/prism/internal/cfgerr"
	"github.com/prismproxy/prism/internal/event"
	"github.com/prismproxy/prism/internal/event/eventtest"
	"github.com/prismproxy/prism/internal/netspec"
	"github.com/prismproxy/prism/internal/origin"
)

const waitFor = 5 * time.Second

// newCollector returns an event recorder that waits up to waitFor.
func newCollector() *eventtest.Recorder {
	r := eventtest.New()
	r.Timeout = waitFor
	return r
}

func staticPool(t testing.TB, addrs ...string) *origin.Pool {
	t.Helper()
	block, _ := origin.ParseBlock(nil)
	cfg := origin.Config{Addresses: addrs}
	if err := cfgerr.Prepare(&cfg); err != nil {
		t.Fatal(err)
	}
	p, err := origin.NewPool(cfg, block, nil)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// fakePool returns fixed targets or a failure and records port offsets.
type fakePool struct {
	targets []origin.Target
	fail    *origin.Failure
	offsets chan int
}

func (f *fakePool) Candidates(_ context.Context, _ netip.Addr, off int) ([]origin.Target, *origin.Failure) {
	if f.offsets != nil {
		f.offsets <- off
	}
	return f.targets, f.fail
}

func (f *fakePool) Acquire(origin.Target) func() { return func() {} }

// fakeFirewall blocks the listed addresses and counts lookups.
type fakeFirewall struct {
	block map[netip.Addr]bool
	calls atomic.Int64
}

func (f *fakeFirewall) Apply(a netip.Addr, e *event.Event) bool {
	f.calls.Add(1)
	e.Firewall = true
	if f.block[a] {
		e.FirewallMatch = event.FirewallBlockIP
		return true
	}
	return false
}

// prepared is app with its udp and limits sections defaulted and
// validated, as New expects them.
func prepared(t testing.TB, app App) App {
	t.Helper()
	for _, s := range []cfgerr.Section{&app.UDP, &app.Limits} {
		if err := cfgerr.Prepare(s); err != nil {
			t.Fatal(err)
		}
	}
	return app
}

func startServer(t testing.TB, app App, em event.Emitter, reg *event.Registry) *Server {
	t.Helper()
	return startServerWith(t, app, em, reg, nil)
}

// startServerWith is startServer over the sockets of h when h is not nil
// (a hand-over from another server).
func startServerWith(t testing.TB, app App, em event.Emitter, reg *event.Registry, h *Handoff) *Server {
	t.Helper()
	app = prepared(t, app)
	if app.ID == "" {
		app.ID = "udp-app"
	}
	if app.Listen == nil {
		app.Listen = listenOn(t, "127.0.0.1:0")
	}
	s, err := New(app, em, reg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if h != nil {
		s.Inherit(h)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Error(err)
		}
	})
	return s
}

func addrOf(s *Server, i int) netip.AddrPort {
	return s.Addrs()[i].(*net.UDPAddr).AddrPort()
}

func dial(t testing.TB, to netip.AddrPort) *net.UDPConn {
	t.Helper()
	c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(to))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// roundTrip sends msg and returns the reply.
func roundTrip(t testing.TB, c *net.UDPConn, msg string) string {
	t.Helper()
	if _, err := c.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	return read(t, c)
}

func read(t testing.TB, c *net.UDPConn) string {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(waitFor))
	buf := make([]byte, 65536)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatalf("read reply: %v", err)
	}
	return string(buf[:n])
}

// eventually polls cond: for counters that have no event to wait on.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

var errTimeout = errors.New("timeout")

// noReply asserts that nothing arrives on c within d.
func noReply(t testing.TB, c *net.UDPConn, d time.Duration) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(d))
	buf := make([]byte, 2048)
	if n, err := c.Read(buf); err == nil {
		t.Fatalf("unexpected reply %q", buf[:n])
	}
}

// listenOn parses listen entries as the config does.
func listenOn(t testing.TB, addrs ...string) []netspec.Listen {
	t.Helper()
	var out []netspec.Listen
	for _, a := range addrs {
		l, err := netspec.ParseListen(a)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, l)
	}
	return out
}
