package proxy_test

import (
	"crypto/tls"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/prismproxy/prism/internal/event"
	"github.com/prismproxy/prism/internal/event/eventtest"
	"github.com/prismproxy/prism/internal/proxy"
	"github.com/prismproxy/prism/internal/testpeer"
	"github.com/prismproxy/prism/internal/tlstest"
)

func dialFrom(t *testing.T, src, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// echoOnce writes and reads back through c: the connection is relayed.
func echoOnce(t *testing.T, c net.Conn) {
	t.Helper()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte("hi")); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 2)
	if _, err := io.ReadFull(c, b); err != nil {
		t.Fatalf("echo: %v", err)
	}
}

// TestPerClientLimits: concurrent connections per client address and per
// /24, and new connections per second; every refusal is one
// clientFiltered 403 record naming the limit, and counted.
func TestPerClientLimits(t *testing.T) {
	origin := testpeer.Echo(t)
	s, rec, addr := startProxy(t, appYAML("127.0.0.1:0", `{addresses: ["`+origin+`"]}`,
		"limits: {max_connections_per_client: 2, max_connections_per_prefix: 3, new_connections_per_second: 1, new_connections_burst: 3}"))
	refused := func(src, limit string) {
		t.Helper()
		c := dialFrom(t, src, addr)
		e := rec.Terminal(t)
		if e.Type != event.ClientFiltered || e.Status != event.StatusFiltered || !strings.Contains(e.Detail, limit) ||
			e.ClientAddr.Addr().String() != src || e.FirewallMatch != event.FirewallUnknown {
			t.Fatalf("%s: %s %d %q (%s), want clientFiltered 403 naming %s", src, e.Type, e.Status, e.Detail, e.ClientAddr, limit)
		}
		if n, err := c.Read(make([]byte, 1)); err == nil {
			t.Fatalf("refused connection still open (read %d bytes)", n)
		}
	}
	a1, a2 := dialFrom(t, "127.7.0.1", addr), dialFrom(t, "127.7.0.1", addr)
	echoOnce(t, a1)
	echoOnce(t, a2)
	refused("127.7.0.1", "max_connections_per_client")
	b1 := dialFrom(t, "127.7.0.2", addr)
	echoOnce(t, b1)
	refused("127.7.0.3", "max_connections_per_prefix")
	// A client that closes gets its slot back; with its third connection
	// its rate bucket (burst 3) is spent, so the fourth within the second
	// is refused by rate.
	closeAndRelease := func(c net.Conn) {
		c.Close()
		rec.WaitFor(t, "a disconnect", func(e *event.Event) bool { return e.Type == event.Disconnect })
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
			if proxy.LimiterOf(s).Held(netip.MustParseAddr("127.7.0.1")) == 1 || time.Now().After(deadline) {
				break // the slot is given back just after the record
			}
		}
	}
	closeAndRelease(a1)
	a3 := dialFrom(t, "127.7.0.1", addr)
	echoOnce(t, a3)
	closeAndRelease(a3)
	refused("127.7.0.1", "new_connections_per_second")
	echoOnce(t, dialFrom(t, "127.8.0.1", addr)) // another client, another prefix
	got := s.LimitRefusals()
	if got["max_connections_per_client"] != 1 || got["max_connections_per_prefix"] != 1 || got["new_connections_per_second"] != 1 {
		t.Fatalf("refusals counted %v", got)
	}
}

// TestGlobalMaxConnections: the top-level max_connections bounds all apps
// together: at the limit no new connection is accepted (it waits in the
// backlog) until one ends.
func TestGlobalMaxConnections(t *testing.T) {
	origin := testpeer.Echo(t)
	yaml := "max_connections: 2\napps:\n" +
		"  - id: app\n    listen: [\"127.0.0.1:0\"]\n    origins: {addresses: [\"" + origin + "\"]}\n" +
		"  - id: other\n    listen: [\"127.0.0.1:0\"]\n    origins: {addresses: [\"" + origin + "\"]}\n"
	rec := eventtest.New()
	servers := startServers(t, parseConfig(t, yaml), rec)
	addr, other := servers["app"].Addrs()[0].String(), servers["other"].Addrs()[0].String()
	a := dial(t, addr)
	echoOnce(t, a)
	echoOnce(t, dial(t, other))
	waiting := dial(t, other) // connected in the kernel, not accepted
	_ = waiting.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := waiting.Write([]byte("hi")); err != nil {
		t.Fatal(err)
	}
	_ = waiting.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if n, err := waiting.Read(make([]byte, 2)); err == nil {
		t.Fatalf("a third connection was relayed (%d bytes) over max_connections 2", n)
	}
	a.Close()
	rec.WaitFor(t, "the first disconnect", func(e *event.Event) bool { return e.Type == event.Disconnect })
	_ = waiting.SetReadDeadline(time.Now().Add(5 * time.Second))
	b := make([]byte, 2)
	if _, err := io.ReadFull(waiting, b); err != nil {
		t.Fatalf("the waiting connection was not served once a slot freed: %v", err)
	}
}

// TestTLSHandshakeLimit: with max_tls_handshakes 1, a client whose
// handshake holds the slot makes another, whose deadline comes first, be
// refused (clientFiltered 403) rather than handshake; once the slot is
// free a real handshake (crypto/tls client) succeeds.
func TestTLSHandshakeLimit(t *testing.T) {
	ca := tlstest.NewCA(t, "prism e2e CA")
	edge := ca.Issue(t, tlstest.Leaf{Names: []string{"edge.example"}})
	origin := testpeer.Echo(t)
	s, rec, addr := startProxy(t, appYAML("127.0.0.1:0", `{addresses: ["`+origin+`"]}`,
		"tls: {mode: flexible, handshake_timeout: 1500ms, certificates: [{cert: "+edge.CertFile+", key: "+edge.KeyFile+"}]}",
		"limits: {max_tls_handshakes: 1}"))
	hello := tlstest.ClientHello(t, "edge.example")
	late := dial(t, addr) // connects first, so its deadline comes first; says nothing yet
	// The gap between the two deadlines is what the test is about: make it
	// large against scheduling jitter.
	time.Sleep(400 * time.Millisecond)
	holder := dial(t, addr)
	if _, err := holder.Write(hello); err != nil {
		t.Fatal(err)
	}
	_ = holder.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := holder.Read(make([]byte, 1)); err != nil { // the ServerHello: holder has the slot
		t.Fatalf("holder got no ServerHello: %v", err)
	}
	if _, err := late.Write(hello); err != nil {
		t.Fatal(err)
	}
	e := rec.Terminal(t)
	if e.Type != event.ClientFiltered || e.Status != event.StatusFiltered || !strings.Contains(e.Detail, "max_tls_handshakes") {
		t.Fatalf("first terminal record %s %d %q, want the late client refused (clientFiltered 403)", e.Type, e.Status, e.Detail)
	}
	if e := rec.Terminal(t); e.Type != event.TLSError { // the holder never finished
		t.Fatalf("holder ended %s %d %q, want tlsError", e.Type, e.Status, e.Detail)
	}
	tc := tls.Client(dial(t, addr), &tls.Config{ServerName: "edge.example", RootCAs: ca.Pool()})
	echoOnce(t, tc)
	if n := s.LimitRefusals()["max_tls_handshakes"]; n != 1 {
		t.Fatalf("%d handshake refusals counted, want 1", n)
	}
}

// TestLimitRefusalKeepsFirewallMatch: a client that an allow rule matched
// and a per-client limit then refused keeps the match on its
// clientFiltered 403 (ClientMatchedIpFirewall WHITELIST_IP): the field
// says which firewall rule the connection matched (spec §3, seeds 000 and
// 001), not why it was refused; the detail names the limit.
func TestLimitRefusalKeepsFirewallMatch(t *testing.T) {
	origin := testpeer.Echo(t)
	_, rec, addr := startProxy(t, appYAML("127.0.0.1:0", `{addresses: ["`+origin+`"]}`,
		"limits: {max_connections_per_client: 1}",
		"ip_firewall: {rules: [{action: allow, cidr: 127.0.0.0/8}]}"))
	echoOnce(t, dial(t, addr))
	rec.Expect(t, event.Connect, event.StatusConnect)
	dial(t, addr)
	e := rec.Terminal(t)
	if e.Type != event.ClientFiltered || e.Status != event.StatusFiltered || !strings.Contains(e.Detail, "max_connections_per_client") {
		t.Fatalf("%s %d %q, want clientFiltered 403 naming the limit", e.Type, e.Status, e.Detail)
	}
	wantSpectrum(t, &e, map[string]any{"IpFirewall": true, "ClientMatchedIpFirewall": "WHITELIST_IP"})
}
