package proxy_test

// Origin health against real origins: an nginx stream origin the test
// stops and starts, next to an origin that stays up. Traffic moves away
// after unhealthy_threshold failed checks and back after healthy_threshold
// good ones; with every origin down the record is the real dial's
// originError (spec §3: 521 refused).

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prismproxy/prism/internal/event"
	"github.com/prismproxy/prism/internal/proxy"
	"github.com/prismproxy/prism/internal/testpeer"
)

// logWatch is a slog handler that hands every record's message and
// attributes to a channel: prism's own health log lines are the signal.
type logWatch struct {
	ch        chan string
	dialFails atomic.Int64 // "origin dial failed" lines
}

func newLogWatch() *logWatch { return &logWatch{ch: make(chan string, 256)} }

func (w *logWatch) Enabled(context.Context, slog.Level) bool { return true }
func (w *logWatch) WithAttrs(as []slog.Attr) slog.Handler    { return &attrWatch{w, as} }
func (w *logWatch) WithGroup(string) slog.Handler            { return w }
func (w *logWatch) Handle(_ context.Context, r slog.Record) error {
	return (&attrWatch{w, nil}).Handle(context.Background(), r)
}

type attrWatch struct {
	w  *logWatch
	as []slog.Attr
}

func (a *attrWatch) Enabled(context.Context, slog.Level) bool { return true }
func (a *attrWatch) WithAttrs(as []slog.Attr) slog.Handler {
	return &attrWatch{a.w, append(append([]slog.Attr{}, a.as...), as...)}
}
func (a *attrWatch) WithGroup(string) slog.Handler { return a }
func (a *attrWatch) Handle(_ context.Context, r slog.Record) error {
	if strings.HasPrefix(r.Message, "origin dial failed") {
		a.w.dialFails.Add(1)
	}
	var b strings.Builder
	b.WriteString(r.Message)
	for _, at := range a.as {
		fmt.Fprintf(&b, " %s=%v", at.Key, at.Value)
	}
	r.Attrs(func(at slog.Attr) bool { fmt.Fprintf(&b, " %s=%v", at.Key, at.Value); return true })
	select {
	case a.w.ch <- b.String():
	default:
	}
	return nil
}

// waitLog returns the first line containing every one of subs.
func (w *logWatch) waitLog(t *testing.T, subs ...string) string {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		select {
		case l := <-w.ch:
			ok := true
			for _, s := range subs {
				ok = ok && strings.Contains(l, s)
			}
			if ok {
				return l
			}
		case <-deadline:
			t.Fatalf("no log line with %q within 20s", subs)
		}
	}
}

// fetch connects through prism and reads what the origin sends until it closes.
func fetch(t *testing.T, addr string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	b, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("read through prism: %v", err)
	}
	return string(b)
}

const nginxA = "nginx-A\n"

func nginxOrigin(t *testing.T, port int) *testpeer.Process {
	addr := "127.0.0.1:" + strconv.Itoa(port)
	return testpeer.NginxStream(t, fmt.Sprintf("server { listen %s; return %q; }", addr, nginxA), addr)
}

// TestHealthChecksMoveTrafficAwayAndBack: round robin over nginx (A) and a
// second origin (B). With A stopped, prism logs it unhealthy after exactly
// unhealthy_threshold failed checks and sends every connection to B, each
// with complete records; with A started again it is healthy after
// healthy_threshold good checks and gets connections again.
func TestHealthChecksMoveTrafficAwayAndBack(t *testing.T) {
	port := testpeer.FreePort(t)
	addrA := "127.0.0.1:" + strconv.Itoa(port)
	a := nginxOrigin(t, port)
	addrB := testpeer.Serve(t, func(c net.Conn) { _, _ = io.WriteString(c, "origin-B\n") })
	logs := newLogWatch()
	yaml := appYAML("127.0.0.1:0", fmt.Sprintf(`{addresses: ["%s", "%s"], health_check: {interval: 300ms, timeout: 300ms, unhealthy_threshold: 3, healthy_threshold: 2}}`, addrA, addrB))
	_, rec, listen := startProxy(t, yaml, withLogger(slog.New(logs)))

	spread := func(n int) map[string]int {
		got := map[string]int{}
		for range n {
			got[fetch(t, listen)]++
		}
		// Every connection: a connect and a disconnect 200, no originError.
		connects, disconnects := 0, 0
		for range 2 * n {
			switch e := rec.Next(t); {
			case e.Type == event.Connect:
				connects++
			case e.Type == event.Disconnect && e.Status == 200:
				disconnects++
			default:
				t.Fatalf("got %s %d (%s), want only connect and disconnect 200", e.Type, e.Status, e.Detail)
			}
		}
		if connects != n || disconnects != n {
			t.Fatalf("%d connects and %d disconnects for %d connections", connects, disconnects, n)
		}
		return got
	}
	if got := spread(10); got[nginxA] != 5 || got["origin-B\n"] != 5 {
		t.Fatalf("both healthy: %v, want 5 and 5", got)
	}

	a.Stop(t)
	l := logs.waitLog(t, "origin unhealthy", addrA)
	if !strings.Contains(l, "3 checks failed in a row") {
		t.Errorf("went down with %q, want after the 3rd failed check in a row", l)
	}
	if got := spread(10); got["origin-B\n"] != 10 {
		t.Fatalf("A down: %v, want every connection on B", got)
	}

	nginxOrigin(t, port)
	l = logs.waitLog(t, "origin healthy", addrA)
	if !strings.Contains(l, "2 checks passed in a row") {
		t.Errorf("came back with %q, want after the 2nd good check in a row", l)
	}
	if got := spread(10); got[nginxA] != 5 || got["origin-B\n"] != 5 {
		t.Fatalf("A back: %v, want 5 and 5", got)
	}
}

// TestEveryOriginDown: with its only origin (nginx) down and known to be
// down, prism still tries it and the record is the dial's originError 521,
// as when nothing is checked; AllDown counts it.
func TestEveryOriginDown(t *testing.T) {
	port := testpeer.FreePort(t)
	addrA := "127.0.0.1:" + strconv.Itoa(port)
	a := nginxOrigin(t, port)
	logs := newLogWatch()
	yaml := appYAML("127.0.0.1:0", fmt.Sprintf(`{addresses: ["%s"], health_check: {interval: 100ms, timeout: 100ms, unhealthy_threshold: 1}}`, addrA))
	s, rec, listen := startProxy(t, yaml, withLogger(slog.New(logs)))
	if got := fetch(t, listen); got != nginxA {
		t.Fatalf("through prism: %q", got)
	}
	rec.Expect(t, event.Connect, 0)
	rec.Expect(t, event.Disconnect, 200)
	a.Stop(t)
	logs.waitLog(t, "origin unhealthy", addrA)
	c := dial(t, listen)
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	_, _ = io.ReadAll(c)
	e := rec.Expect(t, event.OriginError, event.StatusOriginConnRefused)
	if e.OriginAddr.String() != addrA {
		t.Errorf("OriginAddr %v, want %s", e.OriginAddr, addrA)
	}
	if n := proxy.PoolOf(s).AllDown(); n != 1 {
		t.Errorf("AllDown = %d, want 1", n)
	}
	h := s.OriginHealth()
	if len(h) != 1 || h[0].Healthy || h[0].ChecksFailed < 1 || h[0].Transitions != 1 {
		t.Errorf("OriginHealth = %+v", h)
	}
}

// TestPassiveEjection: with nginx (A) stopped, client connections fail
// over to B; after consecutive_failures failed dials A is ejected, and no
// later connection dials it (no more failover), each with complete records.
func TestPassiveEjectionAgainstAStoppedOrigin(t *testing.T) {
	port := testpeer.FreePort(t)
	addrA := "127.0.0.1:" + strconv.Itoa(port)
	nginxOrigin(t, port).Stop(t)
	addrB := testpeer.Serve(t, func(c net.Conn) { _, _ = io.WriteString(c, "origin-B\n") })
	logs := newLogWatch()
	yaml := appYAML("127.0.0.1:0", fmt.Sprintf(`{addresses: ["%s", "%s"], passive_ejection: {consecutive_failures: 2, eject_for: 1m}}`, addrA, addrB))
	_, rec, listen := startProxy(t, yaml, withLogger(slog.New(logs)))
	for range 4 { // round robin: A first twice, failing over to B each time
		if got := fetch(t, listen); got != "origin-B\n" {
			t.Fatalf("through prism: %q", got)
		}
	}
	l := logs.waitLog(t, "origin unhealthy", addrA)
	if !strings.Contains(l, "2 client dials failed in a row") {
		t.Errorf("ejected with %q", l)
	}
	for range 10 {
		if got := fetch(t, listen); got != "origin-B\n" {
			t.Fatalf("through prism: %q", got)
		}
	}
	// A was dialed exactly twice, by the first two connections that
	// picked it; after its ejection it is no longer tried.
	if n := logs.dialFails.Load(); n != 2 {
		t.Errorf("%d failed dials of A, want 2 (then ejected)", n)
	}
	connects, disconnects := 0, 0
	for range 2 * 14 {
		switch e := rec.Next(t); e.Type {
		case event.Connect:
			connects++
		case event.Disconnect:
			disconnects++
		default:
			t.Fatalf("%s %d (%s): want only connect and disconnect", e.Type, e.Status, e.Detail)
		}
	}
	if connects != 14 || disconnects != 14 {
		t.Errorf("%d connects, %d disconnects for 14 connections", connects, disconnects)
	}
}
