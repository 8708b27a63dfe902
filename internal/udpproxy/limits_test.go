package udpproxy

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/prismproxy/prism/internal/limit"
)

// TestPerClientLimits: a datagram that would open a session over a
// per-client limit is dropped and counted by limit, like the caps; the
// session that was admitted works.
func TestPerClientLimits(t *testing.T) {
	o := startEcho(t, "")
	s := startServer(t, App{Pool: staticPool(t, o.addr().String()), UDP: Config{IdleTimeout: time.Hour},
		Limits: limit.Config{MaxPerPrefix: 3, RatePerClient: 1, Burst: 2}}, newCollector(), nil)
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
	roundTrip(t, from("127.9.0.1"), "b")        // second session of the client: burst 2
	_, _ = from("127.9.0.1").Write([]byte("c")) // third within the second: rate
	eventually(t, "a rate drop", func() bool { return s.Stats().DropLimitRate == 1 })
	roundTrip(t, from("127.9.0.2"), "d")
	_, _ = from("127.9.0.3").Write([]byte("d")) // 127.9.0.0/24 holds 3 sessions
	eventually(t, "a prefix drop", func() bool { return s.Stats().DropLimitPrefix == 1 })
	if got := roundTrip(t, from("127.10.0.1"), "e"); got != "e" {
		t.Fatalf("another prefix: echo %q", got)
	}
	if st := s.Stats(); st.Sessions != 4 {
		t.Fatalf("%d sessions, want 4", st.Sessions)
	}
}
