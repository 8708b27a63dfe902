package proxy_test

// The corners spec §7 decides, each produced for real and checked in the
// records of all three datasets as a log job renders them: inbound PROXY
// health checks and failures (§7.1), the client RTT on every TCP record
// (§7.2), OriginProto before an origin leg (§7.3), EdgeOne's
// ConnectTimeStamp (§7.4), firewall refusals in EdgeOne (§7.5) and unix
// sockets in the vendor enumerations (§7.6).

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pires/go-proxyproto"

	"github.com/prismproxy/prism/internal/event"
	"github.com/prismproxy/prism/internal/event/eventtest"
	"github.com/prismproxy/prism/internal/proxy"
	"github.com/prismproxy/prism/internal/render"
	"github.com/prismproxy/prism/internal/testpeer"
	"github.com/prismproxy/prism/internal/tlstest"
)

// records renders e in every dataset, all fields, as a log job writes it,
// and decodes each line. A dataset that writes no record for e's type is
// absent from the result. CloudConnexa's log object is flattened as
// "log.<key>".
func records(t *testing.T, e *event.Event) map[string]map[string]any {
	t.Helper()
	out := map[string]map[string]any{}
	for _, ds := range []string{render.Spectrum, render.EdgeOne, render.CloudConnexa} {
		if !render.Wants(ds, e.Type) {
			continue
		}
		m := renderJSON(t, ds, e)
		if l, ok := m["log"].(map[string]any); ok {
			for k, v := range l {
				m["log."+k] = v
			}
		}
		out[ds] = m
	}
	return out
}

// wantRecords checks fields per dataset (compared by printed form; the
// value "<nonzero>" asks for a number other than 0, "<iso>" for an ISO 8601
// UTC time) and that every dataset in want wrote a record.
func wantRecords(t *testing.T, e *event.Event, want map[string]map[string]any) map[string]map[string]any {
	t.Helper()
	recs := records(t, e)
	iso := regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$`)
	for ds, fields := range want {
		m, ok := recs[ds]
		if !ok {
			t.Errorf("%s %d: no %s record", e.Type, e.Status, ds)
			continue
		}
		for k, w := range fields {
			got, ok := m[k]
			switch {
			case !ok:
				t.Errorf("%s %d: %s record has no %s: %v", e.Type, e.Status, ds, k, m)
			case w == "<nonzero>":
				if n, _ := got.(float64); n == 0 {
					t.Errorf("%s %d: %s %s = %v, want a non-zero number", e.Type, e.Status, ds, k, got)
				}
			case w == "<iso>":
				if s, _ := got.(string); !iso.MatchString(s) {
					t.Errorf("%s %d: %s %s = %v, want an ISO 8601 time", e.Type, e.Status, ds, k, got)
				}
			case fmt.Sprint(got) != fmt.Sprint(w):
				t.Errorf("%s %d: %s %s = %v, want %v", e.Type, e.Status, ds, k, got, w)
			}
		}
	}
	return recs
}

// filteredRecords is what every dataset writes for a session refused
// before its origin leg (spec §7.1-§7.5): Spectrum clientFiltered with the
// client RTT and the app's OriginProto, EdgeOne a final record with the
// accept time and reason, CloudConnexa a refused flow.
func filteredRecords(status int, match, edgeoneReason string) map[string]map[string]any {
	return map[string]map[string]any{
		render.Spectrum: {"Event": "clientFiltered", "Status": status, "ClientMatchedIpFirewall": match,
			"ClientTcpRtt": "<nonzero>", "OriginProto": "tcp", "ConnectTimestamp": 0, "ClientProto": "tcp"},
		render.EdgeOne: {"DisconnetReason": edgeoneReason, "ConnectTimeStamp": "<iso>", "DisconnetTimeStamp": "<iso>",
			"ForwardProtocol": "TCP"},
		render.CloudConnexa: {"eventName": "flow-established", "log.allowed": false, "log.protocolName": "tcp", "log.protocol": 6},
	}
}

// noMoreEvents fails if the recorder holds or soon gets another event.
func noMoreEvents(t *testing.T, rec *eventtest.Recorder, why string) {
	t.Helper()
	if e, ok := rec.NextWithin(200 * time.Millisecond); ok {
		t.Fatalf("%s, but got %s %d (%s)", why, e.Type, e.Status, e.Detail)
	}
}

// waitHealthChecks waits until the server counted n health checks.
func waitHealthChecks(t *testing.T, s *proxy.Server, n int64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for s.Stats().HealthChecks < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d health checks counted, want %d", s.Stats().HealthChecks, n)
		}
		time.Sleep(10 * time.Millisecond) // polling a counter: there is no other signal
	}
}

// TestInboundProxyHealthChecksWriteNoRecord (§7.1): a trusted front's
// health checks — a connect and close (FIN or RST) without a byte, a PROXY
// v2 LOCAL header — write no record in any dataset and are counted; the
// origin is never dialed. HAProxy's own checks with send-proxy-v2 (which
// send LOCAL) are the real peer. (HAProxy's plain checks never reach
// prism's accept: HAProxy answers the SYN-ACK with a RST.)
func TestInboundProxyHealthChecksWriteNoRecord(t *testing.T) {
	dialed := make(chan struct{}, 64)
	origin := testpeer.Serve(t, func(c net.Conn) { dialed <- struct{}{} })
	s, rec, addr := startProxy(t, appYAML("127.0.0.1:0", `{addresses: ["`+origin+`"]}`,
		`inbound_proxy_protocol: {trusted_cidrs: ["127.0.0.0/8"], header_timeout: 2s}`))

	t.Run("connect and close", func(t *testing.T) {
		before := s.Stats().HealthChecks
		dial(t, addr).Close()
		waitHealthChecks(t, s, before+1)
	})
	t.Run("v2 LOCAL", func(t *testing.T) {
		before := s.Stats().HealthChecks
		c := dial(t, addr)
		h := &proxyproto.Header{Version: 2, Command: proxyproto.LOCAL, TransportProtocol: proxyproto.UNSPEC}
		if _, err := h.WriteTo(c); err != nil {
			t.Fatal(err)
		}
		waitHealthChecks(t, s, before+1)
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Read(make([]byte, 1)); err == nil {
			t.Fatal("prism kept a LOCAL health check open")
		}
	})
	t.Run("connect and reset", func(t *testing.T) {
		before := s.Stats().HealthChecks
		c := dial(t, addr)
		_ = c.SetLinger(0)
		c.Close()
		waitHealthChecks(t, s, before+1)
	})
	t.Run("HAProxy check send-proxy-v2", func(t *testing.T) {
		before := s.Stats().HealthChecks
		front := "127.0.0.1:" + strconv.Itoa(testpeer.FreePort(t))
		// The frontend only answers the readiness probe; the backend
		// exists for its checks.
		startHAProxy(t, fmt.Sprintf(`frontend fe
  bind %s
  tcp-request connection reject
backend be
  server prism %s send-proxy-v2 check inter 100ms
`, front, addr), front)
		waitHealthChecks(t, s, before+3)
	})
	noMoreEvents(t, rec, "health checks write no record")
	select {
	case <-dialed:
		t.Fatal("origin dialed for a health check")
	default:
	}
}

// TestInboundProxyBadHeaderIsClientFiltered (§7.1): a trusted peer that
// sends garbage, a malformed header or a header cut short by its close
// gets one clientFiltered 500; one whose header has not arrived whole at
// header_timeout, one clientFiltered 497 — never a bare disconnect; the
// origin is never dialed. The records carry the client RTT (§7.2), the
// app's OriginProto (§7.3) and EdgeOne's accept time (§7.4).
func TestInboundProxyBadHeaderIsClientFiltered(t *testing.T) {
	origin, received := captureServer(t)
	_, rec, addr := startProxy(t, appYAML("127.0.0.1:0", `{addresses: ["`+origin+`"]}`,
		`inbound_proxy_protocol: {trusted_cidrs: ["127.0.0.1/32"], header_timeout: 300ms}`))
	for _, tc := range []struct {
		name   string
		send   []string // written with a pause between parts
		close  bool     // close the write side after sending
		status int
	}{
		{"no header, other protocol", []string{"GET / HTTP/1.1\r\nHost: example\r\n\r\n"}, false, event.StatusInternal},
		{"malformed v1", []string{"PROXY TCP4 999.1.1.1 127.0.0.1 1 2\r\n"}, false, event.StatusInternal},
		{"v1 cut short by a close", []string{"PROXY TCP4 127.0.0.9 "}, true, event.StatusInternal},
		{"truncated v2 address block", []string{"\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x0c\x7f\x00"}, false, event.StatusClientTimeout},
		{"silence", nil, false, event.StatusClientTimeout},
		// Regression: a v1 header still arriving at header_timeout was
		// recorded 500 (the parser refuses a line that takes two reads).
		{"v1 header still arriving", []string{"PROXY TCP4 127.0.0.9 ", "127.0.0.1"}, false, event.StatusClientTimeout},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dial(t, addr)
			for i, p := range tc.send {
				if i > 0 {
					time.Sleep(50 * time.Millisecond) // a second segment, well before the timeout
				}
				if _, err := c.Write([]byte(p)); err != nil {
					t.Fatal(err)
				}
			}
			if tc.close {
				_ = c.CloseWrite()
			}
			e := rec.Next(t) // the first record of the connection: no connect before it
			if e.Type != event.ClientFiltered || e.Status != tc.status {
				t.Fatalf("got %s %d (%s), want clientFiltered %d", e.Type, e.Status, e.Detail, tc.status)
			}
			// Timed by the proxy's own clock (accept to record): the
			// client's starts after dial returns, which under load can
			// be well after the proxy accepted and set its deadline.
			if waited := e.Time.Sub(e.StartTime); tc.status == event.StatusClientTimeout && waited < 300*time.Millisecond {
				t.Errorf("timed out %v after accept, before header_timeout", waited)
			}
			reason := "down:net_exception_peer_error"
			if tc.status == event.StatusClientTimeout {
				reason = "down:net_exception_timeout"
			}
			want := filteredRecords(tc.status, "UNKNOWN", reason)
			want[render.Spectrum]["ClientIP"] = "127.0.0.1"
			want[render.Spectrum]["ClientPort"] = proxy.AddrPortOf(c.LocalAddr()).Port()
			want[render.Spectrum]["OriginIP"] = ""
			wantRecords(t, &e, want)
			_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
			if n, err := c.Read(make([]byte, 1)); err == nil {
				t.Fatalf("client still open (read %d bytes)", n)
			}
		})
	}
	noMoreEvents(t, rec, "one record per refused connection")
	select {
	case b := <-received:
		t.Fatalf("the origin was dialed (received %q)", b)
	default:
	}
}

// TestInboundProxySlowV1HeaderInTime: a v1 header that arrives in two
// segments within header_timeout is a header, not an error.
func TestInboundProxySlowV1HeaderInTime(t *testing.T) {
	_, rec, addr := startProxy(t, appYAML("127.0.0.1:0", `{addresses: ["`+testpeer.Echo(t)+`"]}`,
		`inbound_proxy_protocol: {trusted_cidrs: ["127.0.0.1/32"], header_timeout: 2s}`))
	c := dial(t, addr)
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	c.Write([]byte("PROXY TCP4 192.0.2.9 127.0.0.1 4242 "))
	time.Sleep(100 * time.Millisecond) // the rest comes as a second segment
	c.Write([]byte("80\r\nping"))
	got := make([]byte, 4)
	if _, err := io.ReadFull(c, got); err != nil || string(got) != "ping" {
		t.Fatalf("echo after a slow header: %q %v", got, err)
	}
	e := rec.Expect(t, event.Connect, 0)
	wantRecords(t, &e, map[string]map[string]any{
		render.Spectrum:     {"ClientIP": "192.0.2.9", "ClientPort": 4242},
		render.CloudConnexa: {"log.sourceIp": "192.0.2.9", "log.allowed": true},
	})
	c.Close()
	rec.Expect(t, event.Disconnect, event.StatusOK)
}

// originProtos is Spectrum's OriginProto enumeration, as the vendored
// seed of the dataset writes it ("tcp | udp | unix").
var originProtos = func() map[string]bool {
	seed, err := os.ReadFile("../render/testdata/seeds/spectrum_events.txt")
	if err != nil {
		panic(err)
	}
	_, sec, _ := strings.Cut(string(seed), "## OriginProto")
	sec, _, _ = strings.Cut(sec, "\n## ")
	m := map[string]bool{}
	for _, v := range regexp.MustCompile(`<em>([a-z]+)</em>`).FindAllStringSubmatch(sec, -1) {
		m[v[1]] = true
	}
	if len(m) != 3 {
		panic(fmt.Sprintf("OriginProto enumeration from the seed: %v", m))
	}
	return m
}()

// TestEveryTCPRecordHasClientRTT (§7.2, §7.3, §7.4): records that end
// before the relay — clientFiltered, tlsError, resolveOrigin (532, with an
// OriginIP), originError — and a TLS-terminated connection's connect and
// disconnect all carry the client leg's RTT and an OriginProto in its
// enumeration; EdgeOne's ConnectTimeStamp is a time on every one.
func TestEveryTCPRecordHasClientRTT(t *testing.T) {
	openssl := testpeer.Need(t, "openssl")
	ca := tlstest.NewCA(t, "prism e2e CA")
	edge := ca.Issue(t, tlstest.Leaf{Names: []string{"edge.test"}})
	tlsYAML := `tls: {mode: flexible, certificates: [{cert: "` + edge.CertFile + `", key: "` + edge.KeyFile + `"}]}`

	check := func(t *testing.T, e *event.Event, wantType event.Type, status int) {
		t.Helper()
		if e.Type != wantType || e.Status != status {
			t.Fatalf("got %s %d (%s), want %s %d", e.Type, e.Status, e.Detail, wantType, status)
		}
		want := map[string]map[string]any{render.Spectrum: {"ClientTcpRtt": "<nonzero>"}}
		if e.Type.Terminal() {
			want[render.EdgeOne] = map[string]any{"ConnectTimeStamp": "<iso>"}
		}
		recs := wantRecords(t, e, want)
		if p, _ := recs[render.Spectrum]["OriginProto"].(string); !originProtos[p] {
			t.Errorf("%s %d: OriginProto %q outside tcp|udp|unix", e.Type, e.Status, p)
		}
		if e.Type == event.ResolveOrigin && recs[render.Spectrum]["OriginIP"] != "" && recs[render.Spectrum]["OriginProto"] != "tcp" {
			t.Errorf("532 with OriginIP %v has OriginProto %v", recs[render.Spectrum]["OriginIP"], recs[render.Spectrum]["OriginProto"])
		}
	}

	t.Run("clientFiltered", func(t *testing.T) {
		_, rec, addr := startProxy(t, appYAML("127.0.0.1:0", `{addresses: ["`+testpeer.Echo(t)+`"]}`), withFirewall("app", blockLoopback(t)))
		dial(t, addr)
		e := rec.Next(t)
		check(t, &e, event.ClientFiltered, event.StatusFiltered)
		wantRecords(t, &e, filteredRecords(event.StatusFiltered, "BLOCK_IP", "down:net_exception_closed"))
	})
	t.Run("tlsError", func(t *testing.T) {
		_, rec, addr := startProxy(t, appYAML("127.0.0.1:0", `{addresses: ["`+testpeer.Echo(t)+`"]}`, tlsYAML))
		c := dial(t, addr)
		c.Write([]byte("this is not a ClientHello\r\n\r\n"))
		e := rec.Next(t)
		check(t, &e, event.TLSError, event.StatusClientHandshake)
		wantRecords(t, &e, map[string]map[string]any{
			render.Spectrum: {"OriginProto": "tcp", "ClientTlsStatus": "HANDSHAKE_FAILED"},
			render.EdgeOne:  {"DisconnetReason": "down:net_exception_peer_error"},
			render.CloudConnexa: {"eventName": "client-disconnected", "log.sessionDisconnectReason": "TLS Handshake Failed",
				"log.sessionProtocol": "TCP"},
		})
	})
	t.Run("resolveOrigin 532", func(t *testing.T) {
		_, rec, addr := startProxy(t, appYAML("127.0.0.1:0", `{addresses: ["169.254.169.254:80"]}`))
		dial(t, addr)
		e := rec.Next(t)
		check(t, &e, event.ResolveOrigin, event.StatusResolveBlocked)
		wantRecords(t, &e, map[string]map[string]any{
			render.Spectrum: {"OriginIP": "169.254.169.254", "OriginPort": 80, "OriginProto": "tcp"},
			render.EdgeOne:  {"DisconnetReason": "up:create_peer_channel_exception"},
		})
	})
	t.Run("originError unix origin", func(t *testing.T) {
		_, rec, addr := startProxy(t, appYAML("127.0.0.1:0", `{addresses: ["unix:`+filepath.Join(t.TempDir(), "gone.sock")+`"]}`))
		dial(t, addr)
		e := rec.Next(t)
		check(t, &e, event.OriginError, event.StatusOriginConnRefused)
		wantRecords(t, &e, map[string]map[string]any{render.Spectrum: {"OriginProto": "unix"}})
	})
	t.Run("TLS terminated, openssl s_client", func(t *testing.T) {
		_, rec, addr := startProxy(t, appYAML("127.0.0.1:0", `{addresses: ["`+testpeer.Echo(t)+`"]}`, tlsYAML))
		// s_client sends stdin and closes at its EOF.
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, openssl, "s_client", "-connect", addr, "-servername", "edge.test", "-CAfile", ca.CAFile)
		cmd.Stdin = strings.NewReader("ping\n")
		if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "Verify return code: 0 (ok)") {
			t.Fatalf("s_client: %v\n%s", err, out)
		}
		conn := rec.Expect(t, event.Connect, 0)
		check(t, &conn, event.Connect, 0)
		d := rec.Terminal(t)
		check(t, &d, event.Disconnect, event.StatusOK)
		wantRecords(t, &d, map[string]map[string]any{render.Spectrum: {"ClientTlsStatus": "OK", "OriginTcpRtt": "<nonzero>"}})
	})
}

// TestUnixSocketRecordsInVendorEnums (§7.6): socat → prism (unix listener)
// → a unix-socket origin. Spectrum keeps unix; EdgeOne and CloudConnexa,
// whose enumerations have no unix, report TCP, and the addresses a unix
// socket lacks are "-"/-1 and ""/0, never null.
func TestUnixSocketRecordsInVendorEnums(t *testing.T) {
	socat := testpeer.Need(t, "socat")
	dir := t.TempDir()
	originPath := filepath.Join(dir, "origin.sock")
	testpeer.EchoUnix(t, originPath)
	front := filepath.Join(dir, "front.sock")
	_, rec, _ := startProxy(t, appYAML("unix:"+front, `{addresses: ["unix:`+originPath+`"]}`))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, socat, "-t", "2", "-", "UNIX-CONNECT:"+front)
	cmd.Stdin = strings.NewReader("ping")
	if out, err := cmd.Output(); err != nil || string(out) != "ping" {
		t.Fatalf("socat through a unix listener: %q %v", out, err)
	}
	conn := rec.Expect(t, event.Connect, 0)
	wantRecords(t, &conn, map[string]map[string]any{
		render.Spectrum: {"ClientProto": "unix", "OriginProto": "unix", "ClientIP": "", "ClientTcpRtt": 0},
		render.CloudConnexa: {"publicIp": "", "log.protocolName": "tcp", "log.protocol": 6, "log.sourceIp": "",
			"log.destinationEntityIp": "", "log.destinationPort": 0},
	})
	d := rec.Expect(t, event.Disconnect, event.StatusOK)
	wantRecords(t, &d, map[string]map[string]any{
		render.Spectrum: {"ClientProto": "unix", "OriginProto": "unix", "ClientBytes": 4, "OriginBytes": 4},
		render.EdgeOne: {"ForwardProtocol": "TCP", "ClientRealIP": "-", "EdgeIP": "-", "ForwardPort": -1,
			"ConnectTimeStamp": "<iso>"},
		render.CloudConnexa: {"clientPublicIp": "", "log.clientPublicIp": "", "log.sessionProtocol": "TCP"},
	})
}
