package udpproxy

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pires/go-proxyproto"

	"github.com/prismproxy/prism/internal/event"
	"github.com/prismproxy/prism/internal/origin"
	"github.com/prismproxy/prism/internal/spp/spptest"
	"github.com/prismproxy/prism/internal/testpeer"
)

func TestEchoLifecycle(t *testing.T) {
	o := testpeer.StartUDPEcho(t, "")
	em, reg := newCollector(), new(event.Registry)
	s := startServer(t, App{Pool: staticPool(t, o.Addr().String())}, em, reg)
	c := dial(t, addrOf(s, 0))

	if got := roundTrip(t, c, "hello"); got != "hello" {
		t.Fatalf("reply %q", got)
	}
	con := em.NextOf(t, event.Connect)
	client := c.LocalAddr().(*net.UDPAddr).AddrPort()
	if con.ClientAddr != client || con.PeerAddr != client || con.LocalAddr != addrOf(s, 0) ||
		con.OriginAddr != o.Addr() || con.ClientProto != "udp" || con.OriginProto != "udp" ||
		con.Status != 0 || con.ConnectTime.IsZero() || con.SessionID.IsZero() || con.App != "udp-app" {
		t.Fatalf("connect event: %+v", con)
	}
	if got := roundTrip(t, c, "world!"); got != "world!" {
		t.Fatalf("reply %q", got)
	}
	if reg.Len() != 1 {
		t.Fatalf("registry has %d sessions, want 1", reg.Len())
	}
	var live *event.Live
	reg.Range(func(l *event.Live) bool { live = l; return false })
	if snap := live.Snapshot(time.Now()); snap.ClientBytes != 11 || snap.OriginBytes != 11 || snap.SessionID != con.SessionID {
		t.Fatalf("interim snapshot: client %d origin %d", snap.ClientBytes, snap.OriginBytes)
	}

	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	d := em.NextOf(t, event.Disconnect)
	if d.SessionID != con.SessionID || d.Status != 200 || d.CloseSide != event.SideProxy ||
		d.CloseReason != event.ReasonClosed || d.ClientBytes != 11 || d.OriginBytes != 11 || d.DisconnectTime.IsZero() {
		t.Fatalf("disconnect: %+v", d)
	}
	if reg.Len() != 0 {
		t.Fatal("session still registered after shutdown")
	}
	if n := em.CountOf(event.Connect); n != 1 {
		t.Fatalf("%d connect events", n)
	}
}

func TestIdleTimeout(t *testing.T) {
	o := testpeer.StartUDPEcho(t, "")
	em, reg := newCollector(), new(event.Registry)
	s := startServer(t, App{Pool: staticPool(t, o.Addr().String()), UDP: Config{IdleTimeout: 150 * time.Millisecond}}, em, reg)
	c := dial(t, addrOf(s, 0))
	roundTrip(t, c, "abc")
	con := em.NextOf(t, event.Connect)
	d := em.NextOf(t, event.Disconnect)
	if d.SessionID != con.SessionID || d.Status != event.StatusOK || d.CloseSide != event.SideProxy ||
		d.CloseReason != event.ReasonTimeout || d.ClientBytes != 3 || d.OriginBytes != 3 {
		t.Fatalf("idle disconnect: %+v", d)
	}
	if idle := d.DisconnectTime.Sub(con.ConnectTime); idle < 150*time.Millisecond {
		t.Fatalf("ended after %v, before the idle timeout", idle)
	}
	if reg.Len() != 0 || s.Stats().Sessions != 0 {
		t.Fatalf("registry %d, sessions %d after expiry", reg.Len(), s.Stats().Sessions)
	}
	// The client's next datagram opens a new session.
	roundTrip(t, c, "again")
	if con2 := em.NextOf(t, event.Connect); con2.SessionID == con.SessionID {
		t.Fatal("new session reused the old id")
	}
}

func TestSimpleProxyProtocol(t *testing.T) {
	o := spptest.Start(t)
	em := newCollector()
	s := startServer(t, App{Pool: staticPool(t, o.Addr().String()), ProxyProtocol: ProxySimple}, em, nil)
	c := dial(t, addrOf(s, 0))
	client := c.LocalAddr().(*net.UDPAddr).AddrPort()

	for _, msg := range []string{"one", "two"} {
		if got := roundTrip(t, c, msg); got != msg {
			t.Fatalf("reply %q, want %q (header not stripped?)", got, msg)
		}
		seen := <-o.C()
		if seen.Client != client || seen.Proxy != addrOf(s, 0) || seen.Payload != msg {
			t.Fatalf("origin saw %+v; want client %v proxy %v", seen, client, addrOf(s, 0))
		}
	}
	if o.Bad() != 0 {
		t.Fatalf("%d datagrams with a bad header reached the origin", o.Bad())
	}
	con := em.NextOf(t, event.Connect)
	if con.ProxyProtocol != "simple" {
		t.Fatalf("ProxyProtocol %q", con.ProxyProtocol)
	}

	// An origin that answers without the header: replies are dropped and counted.
	o.SetMode(spptest.NoHeader)
	before := s.Stats().DropBadSPP
	if _, err := c.Write([]byte("three")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the headerless reply to be counted", func() bool { return s.Stats().DropBadSPP == before+1 })
	noReply(t, c, 50*time.Millisecond)

	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	_ = s.Shutdown(ctx)
	d := em.NextOf(t, event.Disconnect)
	// Payload bytes only: SPP headers are not counted, dropped replies are not either.
	if d.ClientBytes != 3+3+5 || d.OriginBytes != 3+3 {
		t.Fatalf("bytes client %d origin %d", d.ClientBytes, d.OriginBytes)
	}
}

// v2Origin parses every datagram with go-proxyproto and records whether it
// carried a header.
type v2Seen struct {
	header  *proxyproto.Header
	payload string
}

func startV2Origin(t *testing.T) (netip.AddrPort, chan v2Seen) {
	ch := make(chan v2Seen, 64)
	c := testpeer.ServeUDP(t, func(c *net.UDPConn, b []byte, from netip.AddrPort) {
		h, payload, err := proxyproto.ParseUDPDatagram(b)
		if err != nil {
			h, payload = nil, b
		}
		ch <- v2Seen{h, string(payload)}
		_, _ = c.WriteToUDPAddrPort(payload, from)
	})
	return testpeer.UDPAddr(c), ch
}

func TestProxyV2Placement(t *testing.T) {
	for _, tt := range []struct {
		placement string
		headers   []bool
	}{
		{PlacementFirst, []bool{true, false, false}},
		{PlacementEvery, []bool{true, true, true}},
	} {
		t.Run(tt.placement, func(t *testing.T) {
			oa, seen := startV2Origin(t)
			s := startServer(t, App{Pool: staticPool(t, oa.String()), ProxyProtocol: ProxyV2,
				UDP: Config{ProxyV2Placement: tt.placement}}, newCollector(), nil)
			c := dial(t, addrOf(s, 0))
			client := c.LocalAddr().(*net.UDPAddr).AddrPort()
			for i, want := range tt.headers {
				msg := fmt.Sprint("msg", i)
				if got := roundTrip(t, c, msg); got != msg {
					t.Fatalf("reply %q", got)
				}
				sn := <-seen
				if sn.payload != msg || (sn.header != nil) != want {
					t.Fatalf("datagram %d: payload %q header %v, want header %v", i, sn.payload, sn.header != nil, want)
				}
				if sn.header == nil {
					continue
				}
				src, dst, ok := sn.header.UDPAddrs()
				if !ok || sn.header.TransportProtocol != proxyproto.UDPv4 ||
					src.AddrPort() != client || dst.AddrPort() != addrOf(s, 0) {
					t.Fatalf("header %+v", sn.header)
				}
			}
		})
	}
}

func TestOriginUnreachable(t *testing.T) {
	// A port nothing listens on: the kernel answers with ICMP port
	// unreachable, which the connected origin socket reports as ECONNREFUSED.
	dead := testpeer.QuietUDPEcho(t)
	closed, _ := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	deadAddr := closed.LocalAddr().(*net.UDPAddr).AddrPort()
	closed.Close()
	_ = dead
	em := newCollector()
	s := startServer(t, App{Pool: staticPool(t, deadAddr.String())}, em, nil)
	c := dial(t, addrOf(s, 0))
	if _, err := c.Write([]byte("anyone?")); err != nil {
		t.Fatal(err)
	}
	con := em.NextOf(t, event.Connect)
	d := em.NextOf(t, event.Disconnect)
	if d.SessionID != con.SessionID || d.Status != event.StatusOriginRefused || d.CloseSide != event.SideOrigin ||
		d.CloseReason != event.ReasonPeerError || !strings.Contains(d.Detail, "refused") || d.OriginAddr != deadAddr {
		t.Fatalf("disconnect: status %d side %v reason %v detail %q", d.Status, d.CloseSide, d.CloseReason, d.Detail)
	}
	if s.Stats().Sessions != 0 {
		t.Fatal("session not released")
	}
}

func TestUnixOriginIsOriginError(t *testing.T) {
	em := newCollector()
	s := startServer(t, App{Pool: &fakePool{targets: []origin.Target{{Path: "/nonexistent.sock"}}}}, em, nil)
	c := dial(t, addrOf(s, 0))
	_, _ = c.Write([]byte("x"))
	e := em.NextOf(t, event.OriginError)
	if e.CloseReason != event.ReasonCreatePeer || e.CloseSide != event.SideOrigin || !strings.Contains(e.Detail, "unix") {
		t.Fatalf("%+v", e)
	}
	if em.CountOf(event.Connect) != 0 {
		t.Fatal("connect emitted")
	}
}

func TestResolveOriginFailure(t *testing.T) {
	em := newCollector()
	fail := &origin.Failure{Status: event.StatusResolveFailed, Detail: "resolve origin nx.example: no such host"}
	s := startServer(t, App{Pool: &fakePool{fail: fail}}, em, nil)
	c := dial(t, addrOf(s, 0))
	_, _ = c.Write([]byte("x"))
	e := em.NextOf(t, event.ResolveOrigin)
	if e.Status != 531 || e.Detail != fail.Detail || e.CloseReason != event.ReasonCreatePeer || e.ClientProto != "udp" {
		t.Fatalf("%+v", e)
	}
	eventually(t, "the failed session to be released", func() bool { return s.Stats().Sessions == 0 })
}

func TestFailoverSkipsUnsendableOrigin(t *testing.T) {
	o := testpeer.StartUDPEcho(t, "")
	em := newCollector()
	// A link-local address without a zone cannot be connected to (EINVAL):
	// the session fails over to the next origin.
	pool := &fakePool{targets: []origin.Target{{Addr: netip.MustParseAddrPort("[fe80::1]:9")}, {Addr: o.Addr()}}}
	s := startServer(t, App{Pool: pool}, em, nil)
	c := dial(t, addrOf(s, 0))
	if got := roundTrip(t, c, "hi"); got != "hi" {
		t.Fatalf("reply %q", got)
	}
	if con := em.NextOf(t, event.Connect); con.OriginAddr != o.Addr() {
		t.Fatalf("connected to %v", con.OriginAddr)
	}

	// Every candidate fails: one originError, no connect.
	em2 := newCollector()
	s2 := startServer(t, App{Pool: &fakePool{targets: pool.targets[:1]}}, em2, nil)
	c2 := dial(t, addrOf(s2, 0))
	_, _ = c2.Write([]byte("x"))
	e := em2.NextOf(t, event.OriginError)
	if e.Status != event.StatusOriginConnInternal || e.OriginAddr != pool.targets[0].Addr || e.CloseReason != event.ReasonCreatePeer {
		t.Fatalf("%+v", e)
	}
}

func TestSessionCaps(t *testing.T) {
	tests := []struct {
		name       string
		cfg        Config
		capApp     int64
		capClient  int64
		wantOpened int
	}{
		{"per client", Config{MaxSessions: 10, MaxSessionsPerClient: 2}, 0, 1, 2},
		{"per app", Config{MaxSessions: 2, MaxSessionsPerClient: 2}, 1, 0, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := testpeer.StartUDPEcho(t, "")
			em := newCollector()
			s := startServer(t, App{Pool: staticPool(t, o.Addr().String()), UDP: tt.cfg}, em, nil)
			var cs []*net.UDPConn
			for i := range 3 {
				c := dial(t, addrOf(s, 0))
				cs = append(cs, c)
				if i < 2 {
					roundTrip(t, c, "in")
				}
			}
			if _, err := cs[2].Write([]byte("over the cap")); err != nil {
				t.Fatal(err)
			}
			eventually(t, "the capped datagram to be counted", func() bool {
				st := s.Stats()
				return st.DropCapApp+st.DropCapClient == 1
			})
			st := s.Stats()
			if st.DropCapApp != tt.capApp || st.DropCapClient != tt.capClient || st.Sessions != 2 {
				t.Fatalf("stats %+v", st)
			}
			noReply(t, cs[2], 50*time.Millisecond)
			if n := em.CountOf(event.Connect); n != tt.wantOpened {
				t.Fatalf("%d sessions opened", n)
			}
			// Existing sessions keep working at the cap.
			if got := roundTrip(t, cs[0], "still"); got != "still" {
				t.Fatal(got)
			}
		})
	}
}

func TestFirewallNegativeEntry(t *testing.T) {
	o := testpeer.StartUDPEcho(t, "")
	em := newCollector()
	fw := &fakeFirewall{block: map[netip.Addr]bool{netip.MustParseAddr("127.0.0.1"): true}}
	s := startServer(t, App{Pool: staticPool(t, o.Addr().String()), Firewall: fw,
		UDP: Config{IdleTimeout: time.Hour}}, em, nil)
	c := dial(t, addrOf(s, 0))
	if _, err := c.Write([]byte("let me in")); err != nil {
		t.Fatal(err)
	}
	e := em.NextOf(t, event.ClientFiltered)
	if e.Status != 403 || e.FirewallMatch != event.FirewallBlockIP || !e.Firewall || e.CloseSide != event.SideProxy {
		t.Fatalf("%+v", e)
	}
	for range 5 {
		_, _ = c.Write([]byte("again"))
	}
	eventually(t, "blocked datagrams to be counted", func() bool { return s.Stats().DropFiltered >= 5 })
	if n := fw.calls.Load(); n != 1 {
		t.Fatalf("firewall consulted %d times, want 1 (negative entry)", n)
	}
	if em.CountOf(event.ClientFiltered) != 1 || em.CountOf(event.Connect) != 0 || len(o.Got) != 0 {
		t.Fatal("blocked client reached the origin or was recorded twice")
	}
	if st := s.Stats(); st.Blocked != 1 || st.Sessions != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// proxiedDatagram is payload as a trusted front proxy sends it to the
// listener at to: behind a PROXY v2 header naming client.
func proxiedDatagram(t *testing.T, client, to netip.AddrPort, payload string) []byte {
	t.Helper()
	h := proxyproto.HeaderProxyFromAddrs(2, net.UDPAddrFromAddrPort(client), net.UDPAddrFromAddrPort(to))
	dg, err := h.FormatUDPDatagram([]byte(payload))
	if err != nil {
		t.Fatal(err)
	}
	return dg
}

func TestInboundProxyV2FromTrustedFront(t *testing.T) {
	o := spptest.Start(t)
	em := newCollector()
	s := startServer(t, App{Pool: staticPool(t, o.Addr().String()), ProxyProtocol: ProxySimple,
		Trusted: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}, em, nil)
	front := dial(t, addrOf(s, 0))
	frontAddr := front.LocalAddr().(*net.UDPAddr).AddrPort()
	real := netip.MustParseAddrPort("192.0.2.10:5555")
	dg := proxiedDatagram(t, real, addrOf(s, 0), "proxied")
	if got := roundTrip(t, front, string(dg)); got != "proxied" {
		t.Fatalf("reply %q", got)
	}
	if seen := <-o.C(); seen.Client != real || seen.Payload != "proxied" {
		t.Fatalf("origin saw %+v", seen)
	}
	// First-datagram placement from the front: the next datagram without a
	// header belongs to the same session.
	if got := roundTrip(t, front, "follow-up"); got != "follow-up" {
		t.Fatalf("reply %q", got)
	}
	if seen := <-o.C(); seen.Client != real {
		t.Fatalf("follow-up attributed to %v", seen.Client)
	}
	con := em.NextOf(t, event.Connect)
	if con.ClientAddr != real || con.PeerAddr != frontAddr {
		t.Fatalf("client %v peer %v", con.ClientAddr, con.PeerAddr)
	}
	if em.CountOf(event.Connect) != 1 {
		t.Fatal("follow-up opened another session")
	}
	// A malformed header from a trusted peer is dropped, not guessed at.
	bad := append([]byte(nil), dg[:14]...)
	_, _ = front.Write(bad)
	eventually(t, "bad inbound header to be counted", func() bool { return s.Stats().DropBadInbound == 1 })
}

func TestManyConcurrentSessions(t *testing.T) {
	o := testpeer.QuietUDPEcho(t)
	em := newCollector()
	s := startServer(t, App{Pool: staticPool(t, o.String())}, em, nil)
	const clients, rounds = 100, 5
	var wg sync.WaitGroup
	var retries atomic.Int64
	errs := make(chan error, clients)
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(addrOf(s, 0)))
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			buf := make([]byte, 256)
			for r := range rounds {
				msg := fmt.Sprintf("client %d round %d", i, r)
				var n int
				// UDP may lose a datagram under load: retry, skipping
				// late replies to earlier rounds (a reply of another
				// client would still be caught).
				for try := 0; ; try++ {
					_, _ = c.Write([]byte(msg))
					_ = c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
					for {
						n, err = c.Read(buf)
						if err != nil || string(buf[:n]) == msg || !strings.HasPrefix(string(buf[:n]), fmt.Sprintf("client %d ", i)) {
							break
						}
					}
					if err == nil || try == 5 {
						break
					}
					retries.Add(1)
				}
				if err != nil {
					errs <- fmt.Errorf("client %d: %w", i, err)
					return
				}
				if string(buf[:n]) != msg {
					errs <- fmt.Errorf("client %d got %q, want %q", i, buf[:n], msg)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	// A session's connect record is emitted once its origin socket is
	// watched, so a fast reply can reach the client first: wait for the
	// records rather than count them at once.
	for range clients {
		em.NextOf(t, event.Connect)
	}
	if n := em.CountOf(event.Connect); n != clients {
		t.Fatalf("%d sessions, want %d", n, clients)
	}
	t.Logf("retries %d, stats %+v", retries.Load(), s.Stats())
}

func TestPortRangeOffset(t *testing.T) {
	o := testpeer.QuietUDPEcho(t)
	// Find two consecutive free ports.
	var lo int
	for try := 0; try < 50 && lo == 0; try++ {
		a, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		p := a.LocalAddr().(*net.UDPAddr).Port
		b, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: p + 1})
		a.Close()
		if err == nil {
			b.Close()
			lo = p
		}
	}
	if lo == 0 {
		t.Skip("no two consecutive free ports")
	}
	pool := &fakePool{targets: []origin.Target{{Addr: o}}, offsets: make(chan int, 4)}
	s := startServer(t, App{Pool: pool, Listen: listenOn(t, fmt.Sprintf("127.0.0.1:%d-%d", lo, lo+1))}, newCollector(), nil)
	if len(s.Addrs()) != 2 {
		t.Fatalf("%d listeners", len(s.Addrs()))
	}
	for i := range 2 {
		c := dial(t, addrOf(s, i))
		roundTrip(t, c, "x")
		if off := <-pool.offsets; off != i {
			t.Fatalf("listener %d: offset %d", i, off)
		}
	}
}

// A socket bound to a wildcard address must answer from the address the
// client sent to (IP_PKTINFO / IPV6_PKTINFO).
func TestWildcardRepliesFromDestination(t *testing.T) {
	o := testpeer.QuietUDPEcho(t)
	for _, tt := range []struct {
		listen string
		dests  []string
	}{
		{"0.0.0.0:0", []string{"127.0.0.1", "127.0.0.2"}},
		{"[::]:0", []string{"127.0.0.3", "::1"}},
	} {
		t.Run(tt.listen, func(t *testing.T) {
			em := newCollector()
			s, err := New(prepared(t, App{ID: "w", Listen: listenOn(t, tt.listen), Pool: staticPool(t, o.String())}), em, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Start(); err != nil {
				t.Skipf("cannot bind %s: %v", tt.listen, err)
			}
			t.Cleanup(func() { _ = s.Shutdown(context.Background()) })
			port := addrOf(s, 0).Port()
			for _, d := range tt.dests {
				to := netip.AddrPortFrom(netip.MustParseAddr(d), port)
				network := "udp4"
				if to.Addr().Is6() {
					network = "udp6"
				}
				c, err := net.ListenUDP(network, nil)
				if err != nil {
					t.Skipf("no %s: %v", network, err)
				}
				defer c.Close()
				if _, err := c.WriteToUDPAddrPort([]byte("who"), to); err != nil {
					t.Skipf("cannot send to %v: %v", to, err)
				}
				_ = c.SetReadDeadline(time.Now().Add(waitFor))
				buf := make([]byte, 64)
				n, from, err := c.ReadFromUDPAddrPort(buf)
				if err != nil {
					t.Fatal(err)
				}
				if string(buf[:n]) != "who" || from.Addr().Unmap() != to.Addr() || from.Port() != port {
					t.Fatalf("reply %q from %v, want from %v", buf[:n], from, to)
				}
				if con := em.NextOf(t, event.Connect); con.LocalAddr != to {
					t.Fatalf("LocalAddr %v, want %v", con.LocalAddr, to)
				}
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		cfg  Config
		keys []string
	}{
		{Config{}, nil},
		{Config{IdleTimeout: -1, MaxSessions: -1, MaxSessionsPerClient: -1}, []string{"idle_timeout", "max_sessions", "max_sessions_per_client"}},
		{Config{MaxSessions: 5, MaxSessionsPerClient: 6}, []string{"max_sessions_per_client"}},
		{Config{ProxyV2Placement: "sometimes"}, []string{"proxy_v2_placement"}},
		{Config{MaxDatagramSize: 100}, []string{"max_datagram_size"}},
		{Config{MaxDatagramSize: 70000}, []string{"max_datagram_size"}},
		{Config{ReceiveBuffer: 1000}, []string{"receive_buffer"}},
	}
	for _, tt := range tests {
		errs := tt.cfg.Validate()
		var keys []string
		for _, e := range errs {
			keys = append(keys, e.Key)
		}
		if fmt.Sprint(keys) != fmt.Sprint(tt.keys) {
			t.Errorf("%+v: keys %v, want %v", tt.cfg, keys, tt.keys)
		}
	}
	var c Config
	c.SetDefaults()
	if c.IdleTimeout != DefaultIdleTimeout || c.ProxyV2Placement != PlacementFirst || c.MaxDatagramSize != DefaultMaxDatagramSize {
		t.Fatalf("defaults %+v", c)
	}
	// A small max_sessions alone lowers the per-client default with it
	// rather than making the defaulted config invalid.
	for _, tt := range []struct{ max, perClient, want int }{{500, 0, 500}, {5000, 0, DefaultMaxSessionsPerClient}, {500, 100, 100}} {
		c := Config{MaxSessions: tt.max, MaxSessionsPerClient: tt.perClient}
		c.SetDefaults()
		if errs := c.Validate(); len(errs) > 0 || c.MaxSessionsPerClient != tt.want {
			t.Errorf("max_sessions %d, max_sessions_per_client %d: defaulted to %d (want %d), errors %v", tt.max, tt.perClient, c.MaxSessionsPerClient, tt.want, errs)
		}
	}
}

func TestFirewallNegativeEntriesAreBounded(t *testing.T) {
	o := testpeer.StartUDPEcho(t, "")
	em := newCollector()
	fw := &fakeFirewall{block: map[netip.Addr]bool{netip.MustParseAddr("127.0.0.1"): true}}
	s := startServer(t, App{Pool: staticPool(t, o.Addr().String()), Firewall: fw,
		UDP: Config{IdleTimeout: time.Hour, MaxSessions: 1, MaxSessionsPerClient: 1}}, em, nil)
	for range 3 {
		c := dial(t, addrOf(s, 0))
		_, _ = c.Write([]byte("x"))
		em.NextOf(t, event.ClientFiltered)
	}
	eventually(t, "the extra entries to go", func() bool { return s.Stats().Blocked == 1 })
	if n := fw.calls.Load(); n != 3 {
		t.Fatalf("%d lookups", n)
	}
}

// TestInboundFollowUpAfterReload: after a reload hands the socket to a new
// server, a trusted front proxy's header-less follow-up still belongs to
// its proxied session, which goes on on the replaced server. The new
// server once looked only at its own (empty) alias table and opened a
// session of the front proxy itself.
func TestInboundFollowUpAfterReload(t *testing.T) {
	o := spptest.Start(t)
	em := newCollector()
	listen := listenOn(t, fmt.Sprintf("127.0.0.1:%d", testpeer.FreeUDPPort(t))) // a port with a hand-over key
	app := App{Pool: staticPool(t, o.Addr().String()), Listen: listen, ProxyProtocol: ProxySimple,
		Trusted: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, UDP: Config{Sockets: 1, IdleTimeout: time.Hour}}
	a := startServer(t, app, em, nil)
	front := dial(t, addrOf(a, 0))
	real := netip.MustParseAddrPort("192.0.2.10:5555")
	dg := proxiedDatagram(t, real, addrOf(a, 0), "proxied")
	if got := roundTrip(t, front, string(dg)); got != "proxied" {
		t.Fatalf("reply %q", got)
	}
	if seen := <-o.C(); seen.Client != real {
		t.Fatalf("origin saw %+v", seen)
	}
	startServerWith(t, app, em, nil, a.HandOff(func(string) bool { return true }))
	if got := roundTrip(t, front, "follow-up"); got != "follow-up" {
		t.Fatalf("reply %q", got)
	}
	if seen := <-o.C(); seen.Client != real {
		t.Fatalf("follow-up after the reload attributed to %v, want the real client %v", seen.Client, real)
	}
	if n := em.CountOf(event.Connect); n != 1 {
		t.Fatalf("%d connect records, want 1: the follow-up opened another session", n)
	}
}

// TestOldSessionKeepsHeaderPlacementAfterReload: after a reload hands the
// socket over, a session of the replaced server goes on with its own
// settings. Whether a datagram of it carried the PROXY v2 header was once
// decided by the new server's placement, with the old session's header.
func TestOldSessionKeepsHeaderPlacementAfterReload(t *testing.T) {
	for _, tt := range []struct{ old, next string }{
		{PlacementEvery, PlacementFirst}, // the old session's datagrams keep their header
		{PlacementFirst, PlacementEvery}, // and gain none
	} {
		t.Run(tt.old+"_to_"+tt.next, func(t *testing.T) {
			oa, seen := startV2Origin(t)
			listen := listenOn(t, fmt.Sprintf("127.0.0.1:%d", testpeer.FreeUDPPort(t))) // a port with a hand-over key
			app := App{Pool: staticPool(t, oa.String()), Listen: listen, ProxyProtocol: ProxyV2,
				UDP: Config{Sockets: 1, IdleTimeout: time.Hour, ProxyV2Placement: tt.old}}
			a := startServer(t, app, newCollector(), nil)
			c := dial(t, addrOf(a, 0))
			if got := roundTrip(t, c, "before"); got != "before" {
				t.Fatalf("reply %q", got)
			}
			if sn := <-seen; sn.header == nil {
				t.Fatal("the first datagram came without a header")
			}
			next := app
			next.UDP.ProxyV2Placement = tt.next
			startServerWith(t, next, newCollector(), nil, a.HandOff(func(string) bool { return true }))
			if got := roundTrip(t, c, "after"); got != "after" {
				t.Fatalf("reply %q", got)
			}
			want := tt.old == PlacementEvery
			if sn := <-seen; sn.payload != "after" || (sn.header != nil) != want {
				t.Fatalf("old session's datagram after the reload: payload %q header %v, want header %v (placement %s)",
					sn.payload, sn.header != nil, want, tt.old)
			}
		})
	}
}

// TestInboundLocalHealthCheck (spec §7.1): a trusted front's PROXY v2
// LOCAL datagram, its health check, opened a session of the front, wrote
// connect and disconnect records and sent the origin an empty datagram.
// It is counted as a health check now and dropped, with any payload after
// the header, before a session exists: the next proxied datagram is the
// first the origin and the records see.
func TestInboundLocalHealthCheck(t *testing.T) {
	o := testpeer.StartUDPEcho(t, "")
	em := newCollector()
	s := startServer(t, App{Pool: staticPool(t, o.Addr().String()),
		Trusted: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}, em, nil)
	front := dial(t, addrOf(s, 0))
	local, err := (&proxyproto.Header{Version: 2, Command: proxyproto.LOCAL, TransportProtocol: proxyproto.UNSPEC}).Format()
	if err != nil {
		t.Fatal(err)
	}
	for _, dg := range [][]byte{local, append(local, "front's own bytes"...)} {
		if _, err := front.Write(dg); err != nil {
			t.Fatal(err)
		}
	}
	real := netip.MustParseAddrPort("192.0.2.10:5555")
	if got := roundTrip(t, front, string(proxiedDatagram(t, real, addrOf(s, 0), "client"))); got != "client" {
		t.Fatalf("reply %q", got)
	}
	if got := <-o.Got; string(got) != "client" {
		t.Fatalf("the origin's first datagram is %q, want the client's", got)
	}
	if e := em.Next(t); e.Type != event.Connect || e.ClientAddr != real {
		t.Fatalf("first record %s for %v, want the client's connect", e.Type, e.ClientAddr)
	}
	st := s.Stats()
	if st.HealthChecks != 2 || st.Sessions != 1 || st.DropBadInbound != 0 {
		t.Fatalf("health checks %d sessions %d bad inbound %d, want 2 1 0", st.HealthChecks, st.Sessions, st.DropBadInbound)
	}
}

// TestInboundFollowUpGoesToLatestHeader: a trusted front's header-less
// datagram belongs to the session whose header came last. The alias was
// set only when a header opened a session, so after headers for a, b and
// a again the follow-up went to b, the latest opened.
func TestInboundFollowUpGoesToLatestHeader(t *testing.T) {
	o := spptest.Start(t)
	s := startServer(t, App{Pool: staticPool(t, o.Addr().String()), ProxyProtocol: ProxySimple,
		Trusted: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}, newCollector(), nil)
	front := dial(t, addrOf(s, 0))
	a := netip.MustParseAddrPort("192.0.2.1:1111")
	b := netip.MustParseAddrPort("192.0.2.2:2222")
	for _, c := range []netip.AddrPort{a, b, a, b, a} {
		if got := roundTrip(t, front, string(proxiedDatagram(t, c, addrOf(s, 0), "with header"))); got != "with header" {
			t.Fatalf("reply %q", got)
		}
		if seen := <-o.C(); seen.Client != c {
			t.Fatalf("origin saw %v, want %v", seen.Client, c)
		}
	}
	if got := roundTrip(t, front, "follow-up"); got != "follow-up" {
		t.Fatalf("reply %q", got)
	}
	if seen := <-o.C(); seen.Client != a {
		t.Fatalf("follow-up after a's header went to %v, want %v", seen.Client, a)
	}
	if n := s.Stats().Sessions; n != 2 {
		t.Fatalf("%d sessions, want 2", n)
	}
}

// TestInboundFollowUpToOldSessionAfterReload: a header naming the client
// of a session the replaced server opened points the front's header-less
// datagrams at it, over a newer session of the new server; once it has
// ended they are the front's own again, never sent to the ended session.
func TestInboundFollowUpToOldSessionAfterReload(t *testing.T) {
	o := spptest.Start(t)
	em := newCollector()
	listen := listenOn(t, fmt.Sprintf("127.0.0.1:%d", testpeer.FreeUDPPort(t))) // a port with a hand-over key
	app := App{Pool: staticPool(t, o.Addr().String()), Listen: listen, ProxyProtocol: ProxySimple,
		Trusted: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, UDP: Config{Sockets: 1, IdleTimeout: time.Hour}}
	old := startServer(t, app, em, nil)
	front := dial(t, addrOf(old, 0))
	a := netip.MustParseAddrPort("192.0.2.1:1111")
	b := netip.MustParseAddrPort("192.0.2.2:2222")
	send := func(payload []byte, want netip.AddrPort) {
		t.Helper()
		if got := roundTrip(t, front, string(payload)); got == "" {
			t.Fatal("empty reply")
		}
		if seen := <-o.C(); seen.Client != want {
			t.Fatalf("origin saw %v, want %v", seen.Client, want)
		}
	}
	send(proxiedDatagram(t, a, addrOf(old, 0), "a on the old server"), a)
	startServerWith(t, app, em, nil, old.HandOff(func(string) bool { return true }))
	send(proxiedDatagram(t, b, addrOf(old, 0), "b on the new server"), b)
	send(proxiedDatagram(t, a, addrOf(old, 0), "a again"), a)
	send([]byte("follow-up"), a)
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if err := old.Shutdown(ctx); err != nil { // a ends
		t.Fatal(err)
	}
	frontAddr := front.LocalAddr().(*net.UDPAddr).AddrPort()
	send([]byte("follow-up after a ended"), frontAddr)
}

// TestMaxDatagramSizeIsThePayload: max_datagram_size bounds the payload
// relayed. It was compared with the whole datagram, a trusted front's
// inbound PROXY header included, so a payload of the maximum size from
// behind a front was dropped as truncated. A longer payload still is,
// with a header or without, from the front or from anyone else.
func TestMaxDatagramSizeIsThePayload(t *testing.T) {
	o := testpeer.StartUDPEcho(t, "")
	const max = 512
	s := startServer(t, App{Pool: staticPool(t, o.Addr().String()),
		Trusted: []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")}, UDP: Config{MaxDatagramSize: max}}, newCollector(), nil)
	from := func(src string) *net.UDPConn {
		c, err := net.DialUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr(src), 0)), net.UDPAddrFromAddrPort(addrOf(s, 0)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	front, other := from("127.0.0.2"), from("127.0.0.1")
	full, over := strings.Repeat("x", max), strings.Repeat("y", max+1)
	real := netip.MustParseAddrPort("192.0.2.10:5555")
	v1 := "PROXY TCP4 192.0.2.11 127.0.0.1 6666 53\r\n"
	for _, tc := range []struct {
		name string
		c    *net.UDPConn
		dg   string
		ok   bool
	}{
		{"v2 header and a full payload", front, string(proxiedDatagram(t, real, addrOf(s, 0), full)), true},
		{"v1 header and a full payload", front, v1 + full, true},
		{"a full follow-up", front, full, true},
		{"a full datagram from an untrusted peer", other, full, true},
		{"v2 header and one byte too many", front, string(proxiedDatagram(t, real, addrOf(s, 0), over)), false},
		{"v1 header and one byte too many", front, v1 + over, false},
		{"a follow-up one byte too long", front, over, false},
		{"an untrusted datagram one byte too long", other, over, false},
		{"an untrusted datagram as long as header and payload", other, string(proxiedDatagram(t, real, addrOf(s, 0), full)), false},
	} {
		before := s.Stats()
		if _, err := tc.c.Write([]byte(tc.dg)); err != nil {
			t.Fatal(err)
		}
		if tc.ok {
			if got := read(t, tc.c); len(got) != max {
				t.Fatalf("%s: reply of %d bytes, want %d", tc.name, len(got), max)
			}
			if st := s.Stats(); st.DropTruncated != before.DropTruncated {
				t.Fatalf("%s: dropped as truncated", tc.name)
			}
			continue
		}
		eventually(t, tc.name+" dropped as truncated", func() bool { return s.Stats().DropTruncated == before.DropTruncated+1 })
	}
}
