package origin

// Each active check type against a real origin: nginx stream (tcp,
// send_expect), openssl s_server (tls) and dnsmasq (send_expect over UDP,
// a DNS query out and its answer back), each also failing where it must.

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prismproxy/prism/internal/testpeer"
)

func probeOnce(hc HealthCheck, addr, transport string) error {
	hc.setDefaults()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	return probe(ctx, &hc, Target{Addr: netip.MustParseAddrPort(addr)}, transport)
}

func TestProbeNginxStream(t *testing.T) {
	addr := "127.0.0.1:" + strconv.Itoa(testpeer.FreePort(t))
	testpeer.NginxStream(t, fmt.Sprintf(`server { listen %s; return "+PONG\r\n"; }`, addr), addr)
	if err := probeOnce(HealthCheck{Type: CheckTCP}, addr, "tcp"); err != nil {
		t.Errorf("tcp check of a listening nginx: %v", err)
	}
	if err := probeOnce(HealthCheck{Type: CheckSendExpect, Send: "PING\r\n", Expect: "+PONG"}, addr, "tcp"); err != nil {
		t.Errorf("send_expect +PONG: %v", err)
	}
	if err := probeOnce(HealthCheck{Type: CheckSendExpect, Send: "PING\r\n", Expect: "-ERR"}, addr, "tcp"); err == nil {
		t.Error("send_expect -ERR passed against an origin answering +PONG")
	}
	if err := probeOnce(HealthCheck{Type: CheckTLS}, addr, "tcp"); err == nil {
		t.Error("tls check passed against a plain-text origin")
	}
	if err := probeOnce(HealthCheck{Type: CheckTCP}, "127.0.0.1:"+strconv.Itoa(testpeer.FreePort(t)), "tcp"); err == nil {
		t.Error("tcp check passed against a closed port")
	}
}

func TestProbeOpenSSLServer(t *testing.T) {
	openssl := testpeer.Need(t, "openssl")
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
	if out, err := testpeer.Run(t, 30*time.Second, openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
		"-nodes", "-subj", "/CN=origin.test", "-days", "1", "-keyout", key, "-out", cert); err != nil {
		t.Fatalf("openssl req: %v\n%s", err, out)
	}
	addr := "127.0.0.1:" + strconv.Itoa(testpeer.FreePort(t))
	p := testpeer.Start(t, openssl, "s_server", "-accept", addr, "-cert", cert, "-key", key, "-quiet")
	p.WaitTCP(t, addr, 10*time.Second)
	if err := probeOnce(HealthCheck{Type: CheckTLS, ServerName: "origin.test"}, addr, "tcp"); err != nil {
		t.Errorf("tls check of openssl s_server: %v", err)
	}
}

// TestUDPChecksFollowDnsmasq: a udp pool checked with a DNS query follows
// dnsmasq going away and coming back.
func TestUDPChecksFollowDnsmasq(t *testing.T) {
	port := testpeer.FreePort(t) // dnsmasq binds TCP and UDP on the same port
	addr := "127.0.0.1:" + strconv.Itoa(port)
	start := func() *testpeer.Process { return testpeer.Dnsmasq(t, port, "/test.example/192.0.2.1") }
	d := start()
	// A query for hc.test.example, type A; the answer holds 192.0.2.1.
	query := "\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x02hc\x04test\x07example\x00\x00\x01\x00\x01"
	hc := HealthCheck{Type: CheckSendExpect, Send: query, Expect: "\xc0\x00\x02\x01", Interval: 150 * time.Millisecond,
		Timeout: 150 * time.Millisecond, UnhealthyThreshold: 2, HealthyThreshold: 2}
	if err := probeOnce(hc, addr, "udp"); err != nil {
		t.Fatalf("udp send_expect against dnsmasq: %v", err)
	}
	p, err := NewPool(prepared(t, Config{Addresses: []string{addr}, HealthCheck: &hc}), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	logs := make(chan string, 64)
	p.StartChecks(slog.New(chanHandler(logs)), "udp")
	defer p.Close()
	d.Stop(t)
	waitMsg(t, logs, "origin unhealthy")
	start()
	waitMsg(t, logs, "origin healthy")
	if h := p.Health(); len(h) != 1 || !h[0].Healthy || h[0].Transitions != 2 {
		t.Errorf("Health() = %+v", h)
	}
}

func waitMsg(t *testing.T, ch chan string, msg string) {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		select {
		case m := <-ch:
			if strings.Contains(m, msg) {
				return
			}
		case <-deadline:
			t.Fatalf("no %q log line within 20s", msg)
		}
	}
}

type chanHandler chan string

func (c chanHandler) Enabled(context.Context, slog.Level) bool { return true }
func (c chanHandler) WithAttrs([]slog.Attr) slog.Handler       { return c }
func (c chanHandler) WithGroup(string) slog.Handler            { return c }
func (c chanHandler) Handle(_ context.Context, r slog.Record) error {
	select {
	case c <- r.Message:
	default:
	}
	return nil
}
