package proxy_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/prismproxy/prism/internal/event"
	"github.com/prismproxy/prism/internal/event/eventtest"
	"github.com/prismproxy/prism/internal/proxy"
	"github.com/prismproxy/prism/internal/relay"
	"github.com/prismproxy/prism/internal/render"
	"github.com/prismproxy/prism/internal/testpeer"
	"github.com/prismproxy/prism/internal/tlstest"
)

// waitTracked waits until s handles n connections.
func waitTracked(t *testing.T, s *proxy.Server, n int) {
	t.Helper()
	for end := time.Now().Add(5 * time.Second); proxy.Tracked(s) < n; time.Sleep(2 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("%d connections handled after 5s, want %d", proxy.Tracked(s), n)
		}
	}
}

// TestStopBeforeUp: a connection that the drain deadline, or an
// operator's CloseSession, stops while prism waits on the client (a
// trusted front's PROXY header, the edge TLS handshake, the passthrough
// peek) ends at once with one record of its phase, Status 500, written as
// a close by prism (CloseSide proxy, reason closed: EdgeOne
// down:net_exception_closed), and no origin is dialed. It was a client
// failure (443 side client; 497 "sent nothing within header_timeout"),
// and a stopped peek went on to dial the origin (524, or connect and
// disconnect). Every phase waits 30s here, so a stop that a phase's own
// deadline undid would hold Shutdown that long.
func TestStopBeforeUp(t *testing.T) {
	ca := tlstest.NewCA(t, "ca")
	edge := ca.Issue(t, tlstest.Leaf{Names: []string{"edge.example"}})
	dialed := make(chan struct{}, 8)
	origin := testpeer.Serve(t, func(net.Conn) { dialed <- struct{}{} })
	phases := []struct {
		name, extra string
		typ         event.Type
	}{
		{"inbound PROXY header", `inbound_proxy_protocol: {trusted_cidrs: ["127.0.0.1/32"], header_timeout: 30s}`, event.ClientFiltered},
		{"edge TLS handshake", "tls: {mode: flexible, handshake_timeout: 30s, certificates: [{cert: " + edge.CertFile + ", key: " + edge.KeyFile + "}]}", event.TLSError},
		{"passthrough peek", `tls: {mode: "off", peek_sni: true, handshake_timeout: 30s}`, event.TLSError},
	}
	for _, ph := range phases {
		for _, how := range []string{"shutdown", "CloseSession"} {
			t.Run(ph.name+"/"+how, func(t *testing.T) {
				s, rec, addr := startProxy(t, appYAML("127.0.0.1:0", `{addresses: ["`+origin+`"]}`, ph.extra))
				c := dial(t, addr)
				if strings.HasPrefix(ph.name, "edge TLS") { // the handshake proper, past the ClientHello
					if _, err := c.Write(tlstest.ClientHello(t, "edge.example")); err != nil {
						t.Fatal(err)
					}
				}
				waitTracked(t, s, 1)
				start := time.Now()
				var e event.Event
				if how == "shutdown" {
					ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
					defer cancel()
					if err := s.Shutdown(ctx); err != nil {
						t.Fatal(err)
					}
					var ok bool
					if e, ok = rec.NextWithin(0); !ok {
						t.Fatal("Shutdown returned before the terminal record")
					}
				} else {
					if !s.CloseSession(proxy.SessionIDs(s)[0], "closed by an operator") {
						t.Fatal("CloseSession found no session")
					}
					e = rec.Terminal(t)
				}
				if d := time.Since(start); d > 5*time.Second {
					t.Fatalf("the stop took %v: the phase waited for its own timeout", d)
				}
				if e.Type != ph.typ || e.Status != event.StatusInternal || e.CloseSide != event.SideProxy || e.CloseReason != event.ReasonClosed {
					t.Fatalf("%s %d %s/%s %q, want %s 500 closed by the proxy", e.Type, e.Status, e.CloseSide, e.CloseReason, e.Detail, ph.typ)
				}
				wantDetail := "shutdown while"
				if how == "CloseSession" {
					wantDetail = "closed by an operator while"
				}
				if !strings.HasPrefix(e.Detail, wantDetail) {
					t.Errorf("detail %q, want it to start with %q", e.Detail, wantDetail)
				}
				if got := renderJSON(t, render.EdgeOne, &e)["DisconnetReason"]; got != "down:net_exception_closed" {
					t.Errorf("EdgeOne DisconnetReason %v, want down:net_exception_closed", got)
				}
				if how == "shutdown" {
					if e, ok := rec.NextWithin(0); ok {
						t.Fatalf("a second record: %s %d %q", e.Type, e.Status, e.Detail)
					}
				}
				select {
				case <-dialed: // a dial comes before the record it would lead to
					t.Fatal("the origin was dialed for a stopped connection")
				default:
				}
			})
		}
	}
}

// openFDs counts this process's open descriptors (the servers run in it).
func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc/self/fd: %v", err)
	}
	return len(ents)
}

// TestAcceptedAtGlobalLimitGetsItsRecord: a connection accepted while
// every global max_connections slot is taken waits, accepted, for one.
// When the server then stops accepting (Shutdown, or HandOff and a later
// Shutdown) it still gets its terminal record at the drain deadline:
// clientFiltered 500, a close by prism. At Shutdown it was closed with no
// record; after HandOff it waited for a slot on a goroutine no stop could
// reach, and handle, finding the server past its deadline, closed it with
// no record either.
func TestAcceptedAtGlobalLimitGetsItsRecord(t *testing.T) {
	for _, how := range []string{"Shutdown", "HandOff"} {
		t.Run(how, func(t *testing.T) {
			origin := testpeer.Echo(t)
			rec := eventtest.New()
			yaml := "max_connections: 1\napps:\n  - id: app\n    listen: [\"127.0.0.1:0\"]\n    origins: {addresses: [\"" + origin + "\"]}\n"
			s := startServers(t, parseConfig(t, yaml), rec)["app"]
			addr := s.Addrs()[0].String()
			echoOnce(t, dial(t, addr)) // holds the one slot
			rec.Expect(t, event.Connect, event.StatusConnect)
			fds := openFDs(t)
			dial(t, addr)
			// The accept loop takes it and waits for a slot: the
			// accepted socket is one more descriptor beside the dialed one.
			for end := time.Now().Add(5 * time.Second); openFDs(t) < fds+2; time.Sleep(2 * time.Millisecond) {
				if time.Now().After(end) {
					t.Fatal("the second connection was not accepted within 5s")
				}
			}
			if how == "HandOff" {
				s.HandOff(func(string) bool { return false })
			}
			ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
			defer cancel()
			if err := s.Shutdown(ctx); err != nil {
				t.Fatal(err)
			}
			got := map[event.Type]int{}
			for {
				e, ok := rec.NextWithin(0)
				if !ok {
					break
				}
				got[e.Type]++
				if e.Type == event.ClientFiltered &&
					(e.Status != event.StatusInternal || e.CloseSide != event.SideProxy || e.CloseReason != event.ReasonClosed) {
					t.Errorf("waiting connection: %s %d %s/%s %q, want clientFiltered 500 closed by the proxy", e.Type, e.Status, e.CloseSide, e.CloseReason, e.Detail)
				}
			}
			if got[event.Disconnect] != 1 || got[event.ClientFiltered] != 1 {
				t.Fatalf("records after Shutdown %v, want the holder's disconnect and the waiting connection's clientFiltered", got)
			}
		})
	}
}

// TestStopDuringOriginTLS: a connection that the drain deadline, or an
// operator's CloseSession, stops while prism runs the TLS handshake with
// the origin (mode full; the origin never answers its ClientHello) ends
// at once as originError 524 written as a close by prism (CloseSide
// proxy, reason closed), as docs/config.md has it for a stop while the
// origin leg is made. It was 520, side origin create_peer: the origin's
// failure.
func TestStopDuringOriginTLS(t *testing.T) {
	ca := tlstest.NewCA(t, "ca")
	edge := ca.Issue(t, tlstest.Leaf{Names: []string{"edge.example"}})
	hello := make(chan struct{}, 8)
	origin := testpeer.Serve(t, func(c net.Conn) {
		if _, err := io.ReadFull(c, make([]byte, 5)); err == nil { // the ClientHello's record header
			hello <- struct{}{}
		}
		_, _ = io.Copy(io.Discard, c) // never answers; ends when prism closes
	})
	for _, how := range []string{"shutdown", "CloseSession"} {
		t.Run(how, func(t *testing.T) {
			s, rec, addr := startProxy(t, appYAML("127.0.0.1:0", `{addresses: ["`+origin+`"]}`,
				"tls: {mode: full, handshake_timeout: 30s, certificates: [{cert: "+edge.CertFile+", key: "+edge.KeyFile+"}]}"))
			c, err := tls.Dial("tcp", addr, &tls.Config{ServerName: "edge.example", InsecureSkipVerify: true})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			select {
			case <-hello:
			case <-time.After(5 * time.Second):
				t.Fatal("prism sent the origin no ClientHello")
			}
			start := time.Now()
			var e event.Event
			if how == "shutdown" {
				ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
				defer cancel()
				if err := s.Shutdown(ctx); err != nil {
					t.Fatal(err)
				}
				var ok bool
				if e, ok = rec.NextWithin(0); !ok {
					t.Fatal("Shutdown returned before the terminal record")
				}
			} else {
				if !s.CloseSession(proxy.SessionIDs(s)[0], "closed by an operator") {
					t.Fatal("CloseSession found no session")
				}
				e = rec.Terminal(t)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Fatalf("the stop took %v: the handshake waited for its own timeout", d)
			}
			if e.Type != event.OriginError || e.Status != event.StatusOriginConnInternal || e.CloseSide != event.SideProxy || e.CloseReason != event.ReasonClosed {
				t.Fatalf("%s %d %s/%s %q, want originError 524 closed by the proxy", e.Type, e.Status, e.CloseSide, e.CloseReason, e.Detail)
			}
			wantDetail := "shutdown while in the origin TLS handshake"
			if how == "CloseSession" {
				wantDetail = "closed by an operator while in the origin TLS handshake"
			}
			if !strings.HasPrefix(e.Detail, wantDetail) {
				t.Errorf("detail %q, want it to start with %q", e.Detail, wantDetail)
			}
		})
	}
}

// waitSynSent waits until a socket of this network namespace is in
// SYN_SENT towards port (/proc/net/tcp): prism's dial of an origin whose
// accept queue is full (fullBacklog) has begun and waits for an answer
// that will not come. Nothing else signals that the dial is under way.
func waitSynSent(t *testing.T, port int) {
	t.Helper()
	suffix := fmt.Sprintf(":%04X", port)
	for end := time.Now().Add(5 * time.Second); ; time.Sleep(2 * time.Millisecond) {
		b, err := os.ReadFile("/proc/net/tcp")
		if err != nil {
			t.Skipf("no /proc/net/tcp to see the dial in: %v", err)
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			f := strings.Fields(line)
			if len(f) > 3 && strings.HasSuffix(f[2], suffix) && f[3] == "02" { // rem_address, st: TCP_SYN_SENT
				return
			}
		}
		if time.Now().After(end) {
			t.Fatalf("no dial of port %d in progress within 5s", port)
		}
	}
}

// stuckResolver is a DNS origin's resolver that never answers: a lookup
// ends only with its context, and says on started that it began.
type stuckResolver struct{ started chan struct{} }

func (r stuckResolver) LookupNetIP(ctx context.Context, _, host string) ([]netip.Addr, error) {
	r.started <- struct{}{}
	<-ctx.Done()
	return nil, fmt.Errorf("lookup %s: %w", host, ctx.Err())
}

// TestCloseSessionWhileMakingTheOriginLeg: an operator's CloseSession of
// a connection whose origin dial is still in progress (the origin's
// accept queue is full, connect_timeout 30s), or whose DNS origin lookup
// is, ends it at once with one record, a close by prism: originError 524
// "… while dialing the origin" (resolveOrigin 530 "… while resolving the
// origin"), CloseSide proxy, reason closed, the operator's detail; no
// connect record, and nothing told to passive ejection. The dial went on:
// it ended at connect_timeout as the stop's record (or, had the origin
// answered, with a connect and a disconnect 200), and the lookup never.
// Both ways to the origin: the raw path (a plain app) and net.Conn (an
// app with a trusted front, which reads the inbound PROXY header first).
func TestCloseSessionWhileMakingTheOriginLeg(t *testing.T) {
	target := fullBacklog(t)
	_, port := hostPort(t, target)
	const front = `inbound_proxy_protocol: {trusted_cidrs: ["127.0.0.1/32"]}`
	for _, tc := range []struct {
		name, origins, extra string
		resolver             stuckResolver
		typ                  event.Type
		status               int
		phase                string
	}{
		{name: "dial/raw path", origins: `{addresses: ["` + target + `"], passive_ejection: {consecutive_failures: 1, eject_for: 1m}}`,
			typ: event.OriginError, status: event.StatusOriginConnInternal, phase: "dialing the origin"},
		{name: "dial/net.Conn path", origins: `{addresses: ["` + target + `"], passive_ejection: {consecutive_failures: 1, eject_for: 1m}}`, extra: front,
			typ: event.OriginError, status: event.StatusOriginConnInternal, phase: "dialing the origin"},
		{name: "lookup/raw path", origins: `{dns: {name: stuck.test, port: "80"}}`, resolver: stuckResolver{make(chan struct{}, 1)},
			typ: event.ResolveOrigin, status: event.StatusResolveInternal, phase: "resolving the origin"},
		{name: "lookup/net.Conn path", origins: `{dns: {name: stuck.test, port: "80"}}`, resolver: stuckResolver{make(chan struct{}, 1)}, extra: front,
			typ: event.ResolveOrigin, status: event.StatusResolveInternal, phase: "resolving the origin"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var opts []startOpt
			if tc.resolver.started != nil {
				opts = append(opts, withResolver(tc.resolver))
			}
			s, rec, addr := startProxy(t, appYAML("127.0.0.1:0", tc.origins, "timeouts: {connect: 30s}", tc.extra), opts...)
			if raw := proxy.RawListeners(s) == 1; raw != (tc.extra == "" && relay.SocksAvailable()) {
				t.Fatalf("raw path %v, want it only for the plain app", raw)
			}
			c := dial(t, addr)
			if tc.extra != "" {
				if _, err := c.Write([]byte("PROXY TCP4 198.51.100.7 127.0.0.1 4000 443\r\n")); err != nil {
					t.Fatal(err)
				}
			}
			if tc.resolver.started != nil {
				select {
				case <-tc.resolver.started:
				case <-time.After(5 * time.Second):
					t.Fatal("no origin lookup within 5s")
				}
			} else {
				waitSynSent(t, port)
			}
			ids := proxy.SessionIDs(s)
			if len(ids) != 1 {
				t.Fatalf("%d sessions, want 1", len(ids))
			}
			rec.Timeout = 5 * time.Second // well under connect_timeout
			if !s.CloseSession(ids[0], "closed by an operator") {
				t.Fatal("CloseSession found no session")
			}
			e := rec.Next(t)
			t.Logf("%s %d: %s", e.Type, e.Status, e.Detail)
			if e.Type != tc.typ || e.Status != tc.status || e.CloseSide != event.SideProxy || e.CloseReason != event.ReasonClosed {
				t.Fatalf("%s %d %s/%s %q, want %s %d closed by the proxy", e.Type, e.Status, e.CloseSide, e.CloseReason, e.Detail, tc.typ, tc.status)
			}
			if want := "closed by an operator while " + tc.phase + ": "; !strings.HasPrefix(e.Detail, want) {
				t.Errorf("detail %q, want it to start with %q", e.Detail, want)
			}
			if n := rec.Len(); n != 1 {
				t.Errorf("%d records, want the stop's only", n)
			}
			for _, h := range s.OriginHealth() {
				if !h.Healthy || h.LastError != "" {
					t.Errorf("origin health %+v: the stopped dial was reported as the origin's failure", h)
				}
			}
		})
	}
}
