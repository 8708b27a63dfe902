package proxy_test

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/pires/go-proxyproto"

	"github.com/prismproxy/prism/internal/config"
	"github.com/prismproxy/prism/internal/event"
	"github.com/prismproxy/prism/internal/event/eventtest"
	"github.com/prismproxy/prism/internal/testpeer"
	"github.com/prismproxy/prism/internal/tlstest"
)

// TestPropertyRandomLifecycles drives random connections through apps that
// end them in every phase — health checks and bad headers from a trusted
// front, firewall refusals, edge TLS failures, blocked and refused origins,
// relayed connections closed by either side, with FIN or RST — then shuts
// the server down and checks every record against the rules that hold for
// all of them (spec §1, §7.1-§7.3):
//
//   - per session: at most one connect, exactly one terminal record, and a
//     disconnect only after a connect;
//   - ClientTcpRtt is never 0 on a TCP record;
//   - OriginProto is tcp, udp or unix;
//   - nothing lost: sessions with records plus counted health checks equal
//     the connections made.
func TestPropertyRandomLifecycles(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("PRISM_PROPERTY_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	t.Logf("seed %d (PRISM_PROPERTY_SEED reruns it)", seed)
	rng := rand.New(rand.NewPCG(seed, 1))

	echo := testpeer.Echo(t)
	ca := tlstest.NewCA(t, "prism e2e CA")
	edge := ca.Issue(t, tlstest.Leaf{Names: []string{"edge.test"}})
	yml := fmt.Sprintf(`node: {colo: TST, id: t1}
apps:
  - {id: plain, listen: ["127.0.0.1:0"], origins: {addresses: ["%[1]s"]}}
  - id: trusted
    listen: ["127.0.0.1:0"]
    origins: {addresses: ["%[1]s"]}
    inbound_proxy_protocol: {trusted_cidrs: ["127.0.0.1/32"], header_timeout: 150ms}
  - {id: blocked, listen: ["127.0.0.1:0"], origins: {addresses: ["%[1]s"]}}
  - {id: refused, listen: ["127.0.0.1:0"], origins: {addresses: ["%[2]s"]}}
  - {id: metadata, listen: ["127.0.0.1:0"], origins: {addresses: ["169.254.169.254:80"]}}
  - id: tls
    listen: ["127.0.0.1:0"]
    origins: {addresses: ["%[1]s"]}
    tls: {mode: flexible, certificates: [{cert: "%[3]s", key: "%[4]s"}]}
`, echo, testpeer.ClosedPort(t), edge.CertFile, edge.KeyFile)
	cfg, err := config.Parse("property.yaml", []byte(yml))
	if err != nil {
		t.Fatal(err)
	}
	fw := blockLoopback(t)
	rec := eventtest.New()
	servers := startServers(t, cfg, rec, withFirewall("blocked", fw))
	addr := map[string]string{}
	for _, id := range []string{"plain", "trusted", "blocked", "refused", "metadata", "tls"} {
		addr[id] = servers[id].Addrs()[0].String()
	}

	// What a client does once connected. Each returns when it is done with
	// the connection; the server may still be finishing it.
	v2Local, _ := (&proxyproto.Header{Version: 2, Command: proxyproto.LOCAL, TransportProtocol: proxyproto.UNSPEC}).Format()
	exchange := func(c *net.TCPConn) {
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Write([]byte("ping")); err == nil {
			_, _ = io.ReadFull(c, make([]byte, 4))
		}
	}
	type action struct {
		app string
		do  func(c *net.TCPConn)
	}
	actions := []action{
		{"plain", func(c *net.TCPConn) { exchange(c); c.Close() }},
		{"plain", func(c *net.TCPConn) { exchange(c); _ = c.SetLinger(0); c.Close() }}, // RST: 499
		{"plain", func(c *net.TCPConn) { c.Close() }},
		{"trusted", func(c *net.TCPConn) { c.Close() }}, // health check
		{"trusted", func(c *net.TCPConn) { c.Write(v2Local); io.Copy(io.Discard, c) }},
		{"trusted", func(c *net.TCPConn) { c.Write([]byte("garbage\r\n")); io.Copy(io.Discard, c) }},
		{"trusted", func(c *net.TCPConn) { io.Copy(io.Discard, c) }}, // header timeout
		{"trusted", func(c *net.TCPConn) {
			c.Write([]byte("PROXY TCP4 192.0.2.1 127.0.0.1 1 2\r\n"))
			exchange(c)
			c.Close()
		}},
		{"blocked", func(c *net.TCPConn) { io.Copy(io.Discard, c) }},
		{"refused", func(c *net.TCPConn) { io.Copy(io.Discard, c) }},
		{"metadata", func(c *net.TCPConn) { io.Copy(io.Discard, c) }},
		{"tls", func(c *net.TCPConn) { c.Write([]byte("not a ClientHello\r\n\r\n")); io.Copy(io.Discard, c) }},
	}

	const n = 120
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	made := 0
	for i := 0; i < n; i++ {
		a := actions[rng.IntN(len(actions))]
		c, err := net.Dial("tcp", addr[a.app])
		if err != nil {
			t.Fatal(err)
		}
		made++
		sem <- struct{}{}
		wg.Add(1)
		go func(c *net.TCPConn) {
			defer wg.Done()
			defer func() { <-sem }()
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			a.do(c)
			c.Close()
		}(c.(*net.TCPConn))
	}
	wg.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var healthChecks int64
	for _, s := range servers {
		if err := s.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
		healthChecks += s.Stats().HealthChecks
	}

	evs := rec.All()
	type life struct{ types []event.Type }
	lives := map[event.ID]*life{}
	var order []event.ID
	for i := range evs {
		e := &evs[i]
		l := lives[e.SessionID]
		if l == nil {
			l = &life{}
			lives[e.SessionID] = l
			order = append(order, e.SessionID)
		}
		l.types = append(l.types, e.Type)
		if e.ClientProto == event.ProtoTCP && e.ClientRTT <= 0 {
			t.Errorf("%s %d of %s: ClientTcpRtt %v on a TCP record", e.Type, e.Status, e.App, e.ClientRTT)
		}
		if !originProtos[e.OriginProto] {
			t.Errorf("%s %d of %s: OriginProto %q", e.Type, e.Status, e.App, e.OriginProto)
		}
	}
	for _, id := range order {
		ts := lives[id].types
		switch {
		case len(ts) == 2 && ts[0] == event.Connect && ts[1] == event.Disconnect:
		case len(ts) == 1 && ts[0].Terminal() && ts[0] != event.Disconnect:
		default:
			t.Errorf("session %s: records %v; want connect+disconnect or one error record", id, ts)
		}
	}
	if got := int64(len(lives)) + healthChecks; got != int64(made) {
		t.Errorf("%d sessions with records + %d health checks, want the %d connections made", len(lives), healthChecks, made)
	}
}
