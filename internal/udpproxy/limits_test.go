package udpproxy

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/prismproxy/prism/internal/event"
	"github.com/prismproxy/prism/internal/limit"
	"github.com/prismproxy/prism/internal/testpeer"
)

// TestPerClientLimits: a flow whose first datagram would open a session
// over a per-client limit is refused like a firewall-blocked one: one
// clientFiltered 403 record naming the limit, then a negative entry that
// drops (and counts, by limit) its datagrams until it falls silent.
func TestPerClientLimits(t *testing.T) {
	o := testpeer.StartUDPEcho(t, "")
	em := newCollector()
	s := startServer(t, App{Pool: staticPool(t, o.Addr().String()), UDP: Config{IdleTimeout: time.Hour},
		Limits: limit.Config{MaxPerPrefix: 3, RatePerClient: 1, Burst: 2}}, em, nil)
	from := func(src string) *net.UDPConn {
		c, err := net.DialUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr(src), 0)), net.UDPAddrFromAddrPort(addrOf(s, 0)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	if got := roundTrip(t, from("127.9.0.1"), "a"); got != "a" {
		t.Fatalf("echo %q", got)
	}
	roundTrip(t, from("127.9.0.1"), "b") // second session of the client: burst 2
	c := from("127.9.0.1")
	_, _ = c.Write([]byte("c")) // third within the second: rate
	if e := em.NextOf(t, event.ClientFiltered); e.Status != event.StatusFiltered || e.Detail != "client over limits.new_connections_per_second" {
		t.Fatalf("refusal record %d %q", e.Status, e.Detail)
	}
	_, _ = c.Write([]byte("c2")) // the negative entry drops it
	eventually(t, "two rate drops", func() bool { return s.Stats().DropLimitRate == 2 })
	roundTrip(t, from("127.9.0.2"), "d")
	_, _ = from("127.9.0.3").Write([]byte("d")) // 127.9.0.0/24 holds 3 sessions
	if e := em.NextOf(t, event.ClientFiltered); e.Detail != "client over limits.max_connections_per_prefix" {
		t.Fatalf("refusal record %q", e.Detail)
	}
	eventually(t, "a prefix drop", func() bool { return s.Stats().DropLimitPrefix == 1 })
	if got := roundTrip(t, from("127.10.0.1"), "e"); got != "e" {
		t.Fatalf("another prefix: echo %q", got)
	}
	if st := s.Stats(); st.Sessions != 4 {
		t.Fatalf("%d sessions, want 4", st.Sessions)
	}
}
