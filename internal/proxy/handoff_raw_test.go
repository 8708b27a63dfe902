package proxy_test

import (
	"context"
	"io"
	"net"
	"testing"
	"time"

	"github.com/prismproxy/prism/internal/daemon/appbuild"
	"github.com/prismproxy/prism/internal/event"
	"github.com/prismproxy/prism/internal/event/eventtest"
	"github.com/prismproxy/prism/internal/proxy"
	"github.com/prismproxy/prism/internal/testpeer"
)

// newServer builds the app "app" of yaml without starting it.
func newServer(t *testing.T, yaml string, em event.Emitter) *proxy.Server {
	t.Helper()
	cfg := parseConfig(t, yaml)
	parts, err := appbuild.Build(&cfg.Apps[0], appbuild.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(parts.Close)
	s, err := proxy.New(parts.TCP(), em, new(event.Registry), nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestHandOffBetweenRawAndNetConn: a reload hands a raw-path listener to
// a server that takes net.Conns (an app that now reads an inbound PROXY
// header) and back; draining the old server must leave the listener to
// the new one.
func TestHandOffBetweenRawAndNetConn(t *testing.T) {
	origin := testpeer.Echo(t)
	plain := appYAML("127.0.0.1:0", `{addresses: ["`+origin+`"]}`)
	fronted := appYAML("127.0.0.1:0", `{addresses: ["`+origin+`"]}`,
		`inbound_proxy_protocol: {trusted_cidrs: ["10.0.0.0/8"]}`) // not this client: relayed as is
	rec := eventtest.New()
	prev := newServer(t, plain, rec)
	if err := prev.Start(); err != nil {
		t.Fatal(err)
	}
	addr := prev.Addrs()[0].String()
	echo(t, addr)
	for i, yaml := range []string{fronted, plain, fronted} {
		next := newServer(t, yaml, rec)
		next.Inherit(prev.HandOff(func(string) bool { return true }))
		if err := next.Start(); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		if err := prev.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
		cancel()
		if got := next.Addrs()[0].String(); got != addr {
			t.Fatalf("hand-over %d: listening on %s, want %s", i, got, addr)
		}
		echo(t, addr)
		prev = next
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = prev.Shutdown(ctx)
}

func echo(t *testing.T, addr string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("through %s: %q %v", addr, buf, err)
	}
}
