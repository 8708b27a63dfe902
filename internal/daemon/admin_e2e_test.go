package daemon

// The admin listener of a whole in-process prism: real TCP connections and
// real UDP sessions (dig to dnsmasq) go through it, and the tests read them
// back from /metrics (parsed with the Prometheus text parser, exact values,
// checked by promtool) and from /api/v1/sessions, and close one session
// through the API. Terminal records, observed through WithEmitter, are the
// signal that a session has ended; the admin side counts the same record
// before the emitter sees it.

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pires/go-proxyproto"

	"github.com/prismproxy/prism/internal/admin"
	"github.com/prismproxy/prism/internal/admin/admintest"
	"github.com/prismproxy/prism/internal/config"
	"github.com/prismproxy/prism/internal/event"
	"github.com/prismproxy/prism/internal/event/eventtest"
	"github.com/prismproxy/prism/internal/geo/geotest"
	"github.com/prismproxy/prism/internal/sink/sinktest"
	"github.com/prismproxy/prism/internal/testpeer"
)

const waitFor = 10 * time.Second

// records collects the events prism emits.
type records struct{ *eventtest.Recorder }

func newRecords() *records { return &records{eventtest.New()} }

// terminal waits for the next n terminal records.
func (r *records) terminal(t *testing.T, n int) []event.Event {
	t.Helper()
	return r.Take(t, n, "terminal", func(e *event.Event) bool { return e.Type.Terminal() })
}

// connects waits for the next n connect records; a terminal record before
// them fails the test.
func (r *records) connects(t *testing.T, n int) []event.Event {
	t.Helper()
	out := r.Take(t, n, "connect", func(e *event.Event) bool { return e.Type == event.Connect || e.Type.Terminal() })
	for _, e := range out {
		if e.Type.Terminal() {
			t.Fatalf("unexpected terminal record %s %d: %s", e.Type, e.Status, e.Detail)
		}
	}
	return out
}

// startDaemon runs prism with yaml (a node section is added) and returns
// it, its records and the admin address.
func startDaemon(t *testing.T, yaml string) (*Daemon, *records, string) {
	t.Helper()
	cfg, err := config.Parse("test.yaml", []byte("node: {colo: TST, id: t1}\n"+yaml))
	if err != nil {
		t.Fatal(err)
	}
	rec := newRecords()
	d := start(t, cfg, rec)
	return d, rec, d.AdminAddr().String()
}

// geoFixture writes country and ASN databases that place loopback clients
// in NL, AS64500, and returns the geoip section.
func geoFixture(t *testing.T) string {
	dir := t.TempDir()
	cc, as := filepath.Join(dir, "cc.mmdb"), filepath.Join(dir, "asn.mmdb")
	geotest.Write(t, cc, geotest.Options{}, geotest.Net{CIDR: "127.0.0.0/8", Country: "NL"})
	geotest.Write(t, as, geotest.Options{}, geotest.Net{CIDR: "127.0.0.0/8", ASN: 64500})
	return fmt.Sprintf("geoip: {country_db: %q, asn_db: %q}\n", cc, as)
}

func webYAML(t *testing.T, origin string) string {
	return geoFixture(t) + fmt.Sprintf(`admin: {listen: "127.0.0.1:0"}
apps:
  - id: web
    listen: ["127.0.0.1:0"]
    origins: {addresses: [%q]}
    ip_firewall: {rules: [{action: allow, cidr: 127.0.0.0/8}]}
log_jobs:
  - name: spectrum
    dataset: spectrum_events
    destination: {type: file, path: %q}
`, origin, filepath.Join(t.TempDir(), "spectrum.log"))
}

// roundTrip opens a connection, echoes msg once and returns it open.
func roundTrip(t *testing.T, addr, msg string) *net.TCPConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := io.WriteString(c, msg); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, len(msg))
	_ = c.SetReadDeadline(time.Now().Add(waitFor))
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != msg {
		t.Fatalf("echo: %q %v", buf, err)
	}
	_ = c.SetReadDeadline(time.Time{})
	return c.(*net.TCPConn)
}

// shortConn is one whole connection: echo msg, half-close, read to EOF.
func shortConn(t *testing.T, addr, msg string) {
	t.Helper()
	c := roundTrip(t, addr, msg)
	_ = c.CloseWrite()
	_ = c.SetReadDeadline(time.Now().Add(waitFor))
	if _, err := io.Copy(io.Discard, c); err != nil {
		t.Fatalf("read to EOF: %v", err)
	}
	c.Close()
}

func promtoolCheck(t *testing.T, body []byte) {
	t.Helper()
	bin := testpeer.Need(t, "promtool")
	f := testpeer.WriteFile(t, "metrics.txt", string(body))
	out, err := testpeer.Run(t, 30*time.Second, "sh", "-c", bin+" check metrics < "+f)
	if err != nil {
		t.Fatalf("promtool check metrics: %v\n%s", err, out)
	}
}

func TestAdminTCPMetricsSessionsAndClose(t *testing.T) {
	d, rec, adm := startDaemon(t, webYAML(t, testpeer.Echo(t)))
	addr := d.Addrs("web")[0].String()

	const n, msg = 5, "hello\n"
	sent := float64(n * len(msg))
	for range n {
		shortConn(t, addr, msg)
	}
	for _, e := range rec.terminal(t, n) {
		if e.Type != event.Disconnect || e.Status != event.StatusOK {
			t.Fatalf("record %s %d (%s), want disconnect 200", e.Type, e.Status, e.Detail)
		}
	}
	m := admintest.Scrape(t, adm, "")
	m.Want(t, n, "prism_sessions_opened_total", "app=web", "protocol=tcp")
	m.Want(t, n, "prism_session_records_total", "app=web", "event=disconnect", "status=200")
	m.Want(t, 0, "prism_sessions_active", "app=web")
	m.Want(t, sent, "prism_transferred_bytes_total", "app=web", "direction=client_to_origin")
	m.Want(t, sent, "prism_transferred_bytes_total", "app=web", "direction=origin_to_client")
	m.Want(t, n, "prism_firewall_decisions_total", "app=web", "match=WHITELIST_IP")
	m.Want(t, n, "prism_origin_dial_duration_seconds", "app=web")
	m.Want(t, 2*n, "prism_logjob_events_total", "log_job=spectrum", "dataset=spectrum_events")
	m.Want(t, 0, "prism_logjob_dropped_total", "log_job=spectrum", "cause=queue_full")
	m.Want(t, 0, "prism_config_reload_total", "result=success")
	if v, ok := m.Value("prism_geoip_database_build_timestamp_seconds", "kind=country"); !ok || v < float64(time.Now().Add(-time.Hour).Unix()) {
		t.Errorf("geoip build time %v %v: want the fixture's (just built)", v, ok)
	}
	if _, ok := m.Value("go_goroutines"); !ok {
		t.Error("no Go collector metrics")
	}
	if _, ok := m.Families["prism_origin_errors_total"]; ok {
		t.Errorf("origin errors with none happened:\n%s", m.Samples("prism_origin_errors_total"))
	}
	t.Run("promtool", func(t *testing.T) { promtoolCheck(t, m.Raw) })

	// A reload is counted.
	if err := d.Reload(); err != nil {
		t.Fatal(err)
	}
	admintest.Scrape(t, adm, "").Want(t, 1, "prism_config_reload_total", "result=success")

	// Live sessions: eight held open, listed with every field, filtered
	// and paged.
	held := make([]*net.TCPConn, 8)
	for i := range held {
		held[i] = roundTrip(t, addr, "ping\n")
	}
	rec.connects(t, len(held))
	var page admin.SessionsJSON
	admintest.JSON(t, adm, "/api/v1/sessions?app=web&limit=1", &page)
	if page.Matched != 8 || len(page.Sessions) != 1 || page.Next == "" {
		t.Fatalf("first page: %+v", page)
	}
	s := page.Sessions[0]
	if s.App != "web" || s.Protocol != "tcp" || s.Client != held[0].LocalAddr().String() || s.Country != "NL" || s.ASN != 64500 ||
		s.BytesFromClient != 5 || s.BytesFromOrigin != 5 || s.AgeSeconds <= 0 || !strings.HasPrefix(s.Origin, "127.0.0.1:") {
		t.Fatalf("oldest session: %+v (client %s)", s, held[0].LocalAddr())
	}
	var ids []string
	after := ""
	for pages := 0; pages < 10; pages++ {
		page = admin.SessionsJSON{}
		admintest.JSON(t, adm, "/api/v1/sessions?limit=3&after="+after, &page)
		for _, x := range page.Sessions {
			ids = append(ids, x.ID)
		}
		if page.Next == "" {
			break
		}
		after = page.Next
	}
	if len(ids) != 8 || !slices.IsSorted(ids) || len(slices.Compact(slices.Clone(ids))) != 8 {
		t.Fatalf("paged ids: %v", ids)
	}
	for q, want := range map[string]int{
		"client=127.0.0.0/8": 8, "client=10.0.0.0/8": 0, "client=" + held[3].LocalAddr().(*net.TCPAddr).IP.String(): 8,
		"min_age=1h": 0, "min_age=0s": 8, "app=nope": 0,
	} {
		page = admin.SessionsJSON{}
		admintest.JSON(t, adm, "/api/v1/sessions?"+q, &page)
		if page.Matched != want {
			t.Errorf("%s: matched %d, want %d", q, page.Matched, want)
		}
	}
	for _, bad := range []string{"client=nonsense", "min_age=soon", "limit=0", "limit=100000", "after=xyz"} {
		if code, body := admintest.Get(t, adm, "/api/v1/sessions?"+bad, ""); code != http.StatusBadRequest {
			t.Errorf("%s: %d %s, want 400", bad, code, body)
		}
	}
	m = admintest.Scrape(t, adm, "")
	m.Want(t, 8, "prism_sessions_active", "app=web")
	m.Want(t, 8, "prism_origin_active_connections", "app=web")
	m.Want(t, sent+8*5, "prism_transferred_bytes_total", "app=web", "direction=client_to_origin")

	// Close the oldest through the API: the client sees the end, and the
	// terminal record is a close by the proxy.
	code, body := admintest.Do(t, http.MethodDelete, adm, "/api/v1/sessions/"+ids[0], "")
	if code != http.StatusOK {
		t.Fatalf("DELETE: %d %s", code, body)
	}
	_ = held[0].SetReadDeadline(time.Now().Add(waitFor))
	if _, err := io.Copy(io.Discard, held[0]); err != nil {
		t.Fatalf("closed session: read: %v", err)
	}
	e := rec.terminal(t, 1)[0]
	if e.SessionID.String() != ids[0] || e.Type != event.Disconnect || e.Status != event.StatusOK ||
		e.CloseSide != event.SideProxy || e.CloseReason != event.ReasonClosed || e.Detail != admin.CloseDetail {
		t.Fatalf("terminal record of the closed session: %s %d side %s reason %s %q", e.Type, e.Status, e.CloseSide, e.CloseReason, e.Detail)
	}
	if code, _ := admintest.Do(t, http.MethodDelete, adm, "/api/v1/sessions/"+ids[0], ""); code != http.StatusNotFound {
		t.Errorf("second DELETE: %d, want 404", code)
	}
	m = admintest.Scrape(t, adm, "")
	m.Want(t, n+1, "prism_session_records_total", "app=web", "event=disconnect", "status=200")
	m.Want(t, 7, "prism_sessions_active", "app=web")

	// Apps and jobs.
	var apps struct{ Apps []admin.AppJSON }
	admintest.JSON(t, adm, "/api/v1/apps", &apps)
	if len(apps.Apps) != 1 || apps.Apps[0].ID != "web" || len(apps.Apps[0].Bound) != 1 || apps.Apps[0].Bound[0] != addr {
		t.Errorf("apps: %+v", apps)
	}
	var jobs struct{ Jobs []map[string]any }
	admintest.JSON(t, adm, "/api/v1/jobs", &jobs)
	if len(jobs.Jobs) != 1 || jobs.Jobs[0]["Job"] != "spectrum" {
		t.Errorf("jobs: %+v", jobs)
	}
	for _, c := range held[1:] {
		c.Close()
	}
	rec.terminal(t, 7)
	admintest.Scrape(t, adm, "").Want(t, 0, "prism_sessions_active", "app=web")
}

func TestAdminOriginErrorsCounted(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	d, rec, adm := startDaemon(t, webYAML(t, closed))
	for range 3 {
		c, err := net.Dial("tcp", d.Addrs("web")[0].String())
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, c) // prism closes it when the dial fails
		c.Close()
	}
	rec.terminal(t, 3)
	m := admintest.Scrape(t, adm, "")
	m.Want(t, 3, "prism_origin_errors_total", "app=web", "event=originError", "status=521")
	m.Want(t, 3, "prism_session_records_total", "app=web", "event=originError", "status=521")
	m.Want(t, 0, "prism_sessions_opened_total", "app=web")
	m.Want(t, 3, "prism_origin_dial_duration_seconds", "app=web")
}

func startDnsmasq(t *testing.T) string {
	port := testpeer.FreePort(t)
	testpeer.Dnsmasq(t, port, "/test.example/192.0.2.1")
	return fmt.Sprintf("127.0.0.1:%d", port)
}

func TestAdminUDPSessionsThroughDnsmasq(t *testing.T) {
	dig := testpeer.Need(t, "dig")
	dns := startDnsmasq(t)
	d, rec, adm := startDaemon(t, fmt.Sprintf(`admin: {listen: "127.0.0.1:0"}
apps:
  - id: dns
    protocol: udp
    listen: ["127.0.0.1:0"]
    origins: {addresses: [%q]}
    udp: {idle_timeout: 3s}
`, dns))
	host, port, _ := net.SplitHostPort(d.Addrs("dns")[0].String())
	const n = 3
	for range n {
		out, err := testpeer.Run(t, waitFor, dig, "@"+host, "-p", port, "+tries=1", "+time=3", "+short", "test.example", "A")
		if err != nil || strings.TrimSpace(out) != "192.0.2.1" {
			t.Fatalf("dig: %v\n%s", err, out)
		}
	}
	rec.connects(t, n)
	var page admin.SessionsJSON
	admintest.JSON(t, adm, "/api/v1/sessions?app=dns", &page)
	if page.Matched != n {
		t.Fatalf("udp sessions listed: %+v", page)
	}
	s := page.Sessions[0]
	if s.Protocol != "udp" || s.Origin != dns || s.BytesFromClient == 0 || s.BytesFromOrigin == 0 {
		t.Fatalf("udp session: %+v", s)
	}
	m := admintest.Scrape(t, adm, "")
	m.Want(t, n, "prism_sessions_opened_total", "app=dns", "protocol=udp")
	m.Want(t, n, "prism_sessions_active", "app=dns")
	m.Want(t, n, "prism_udp_sessions", "app=dns")
	m.Want(t, n, "prism_udp_datagrams_total", "app=dns", "from=client")
	m.Want(t, n, "prism_udp_datagrams_total", "app=dns", "from=origin")
	m.Want(t, 0, "prism_udp_dropped_datagrams_total", "app=dns", "cause=send_origin")

	// One is closed through the API, the others end idle; either way
	// with a record.
	if code, body := admintest.Do(t, http.MethodDelete, adm, "/api/v1/sessions/"+s.ID, ""); code != http.StatusOK {
		t.Fatalf("DELETE: %d %s", code, body)
	}
	e := rec.terminal(t, 1)[0]
	if e.SessionID.String() != s.ID || e.Status != event.StatusOK || e.CloseSide != event.SideProxy || e.CloseReason != event.ReasonClosed || e.Detail != admin.CloseDetail {
		t.Fatalf("closed udp session record: %s %d %s %s %q", e.Type, e.Status, e.CloseSide, e.CloseReason, e.Detail)
	}
	for _, e := range rec.terminal(t, n-1) {
		if e.CloseReason != event.ReasonTimeout {
			t.Errorf("record %s %d %s, want an idle timeout", e.Type, e.Status, e.CloseReason)
		}
	}
	m = admintest.Scrape(t, adm, "")
	m.Want(t, n, "prism_session_records_total", "app=dns", "event=disconnect", "status=200")
	m.Want(t, 0, "prism_sessions_active", "app=dns")
	m.Want(t, 0, "prism_udp_sessions", "app=dns")
	t.Run("promtool", func(t *testing.T) { promtoolCheck(t, m.Raw) })
}

func TestAdminTokenRequiredAndCounted(t *testing.T) {
	tok := "0123456789abcdef0123"
	_, _, adm := startDaemon(t, fmt.Sprintf(`admin: {listen: "127.0.0.1:0", token: %q}
apps:
  - id: web
    listen: ["127.0.0.1:0"]
    origins: {addresses: ["127.0.0.1:9"]}
`, tok))
	for _, p := range []string{"/metrics", "/api/v1/sessions", "/api/v1/apps", "/api/v1/summary"} {
		if code, _ := admintest.Get(t, adm, p, ""); code != http.StatusUnauthorized {
			t.Errorf("%s without token: %d, want 401", p, code)
		}
		if code, _ := admintest.Get(t, adm, p, "wrong-token-wrong-token"); code != http.StatusUnauthorized {
			t.Errorf("%s with a wrong token: %d, want 401", p, code)
		}
	}
	if code, _ := admintest.Do(t, http.MethodDelete, adm, "/api/v1/sessions/000000000000000000000000", ""); code != http.StatusUnauthorized {
		t.Errorf("DELETE without token: %d", code)
	}
	for _, p := range []string{"/healthz", "/readyz"} {
		if code, _ := admintest.Get(t, adm, p, ""); code != http.StatusOK {
			t.Errorf("%s: %d, want 200 without a token", p, code)
		}
	}
	if code, _ := admintest.Get(t, adm, "/debug/pprof/", tok); code != http.StatusNotFound {
		t.Errorf("pprof not enabled: %d, want 404", code)
	}
	admintest.Scrape(t, adm, tok).Want(t, 9, "prism_admin_unauthorized_requests_total")
}

func TestAdminPprofOnlyWhenEnabled(t *testing.T) {
	_, _, adm := startDaemon(t, `admin: {listen: "127.0.0.1:0", pprof: true}
apps:
  - id: web
    listen: ["127.0.0.1:0"]
    origins: {addresses: ["127.0.0.1:9"]}
`)
	if code, body := admintest.Get(t, adm, "/debug/pprof/", ""); code != http.StatusOK || !strings.Contains(string(body), "goroutine") {
		t.Errorf("pprof index: %d", code)
	}
}

func TestAdminOffByDefault(t *testing.T) {
	cfg, err := config.Parse("t.yaml", []byte("node: {colo: TST}\napps:\n  - id: web\n    listen: [\"127.0.0.1:0\"]\n    origins: {addresses: [\"127.0.0.1:9\"]}\n"))
	if err != nil {
		t.Fatal(err)
	}
	d, err := New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	defer d.Shutdown(context.Background())
	if d.AdminAddr() != nil || d.tally != nil {
		t.Fatal("admin listener or tally without an admin section")
	}
}

// Edge TLS through openssl on both sides: openssl makes the certificate
// and s_client is the client. Handshakes are counted by status, and the
// certificate's expiry is exported.
func TestAdminTLSHandshakesAndCertificateExpiry(t *testing.T) {
	ossl := testpeer.Need(t, "openssl")
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if out, err := testpeer.Run(t, waitFor, ossl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
		"-keyout", key, "-out", cert, "-days", "30", "-subj", "/CN=web.test", "-addext", "subjectAltName=DNS:web.test"); err != nil {
		t.Fatalf("openssl req: %v\n%s", err, out)
	}
	d, rec, adm := startDaemon(t, fmt.Sprintf(`admin: {listen: "127.0.0.1:0"}
apps:
  - id: tls
    listen: ["127.0.0.1:0"]
    origins: {addresses: [%q]}
    tls:
      mode: flexible
      certificates: [{cert: %q, key: %q}]
`, testpeer.Echo(t), cert, key))
	addr := d.Addrs("tls")[0].String()
	const ok = 2
	for range ok {
		// s_client sends stdin and closes at its EOF (no -quiet: that
		// implies -ign_eof).
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		cmd := exec.CommandContext(ctx, ossl, "s_client", "-connect", addr, "-servername", "web.test")
		cmd.Stdin = strings.NewReader("hello\n")
		out, err := cmd.CombinedOutput()
		cancel()
		if err != nil || !strings.Contains(string(out), "CONNECTED") || !strings.Contains(string(out), "web.test") {
			t.Fatalf("s_client: %v\n%s", err, out)
		}
	}
	rec.terminal(t, ok)
	// Not TLS at all: a handshake failure.
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.WriteString(c, "GET / HTTP/1.0\r\n\r\n")
	_, _ = io.Copy(io.Discard, c)
	c.Close()
	if e := rec.terminal(t, 1)[0]; e.Type != event.TLSError {
		t.Fatalf("plain text to a TLS app: %s %d %s", e.Type, e.Status, e.Detail)
	}
	m := admintest.Scrape(t, adm, "")
	m.Want(t, ok, "prism_tls_handshakes_total", "app=tls", "status=OK")
	if v, found := m.Value("prism_tls_handshakes_total", "app=tls", "status=HANDSHAKE_FAILED"); !found || v != 1 {
		t.Errorf("failed handshakes: %v %v\n%s", v, found, m.Samples("prism_tls_handshakes_total"))
	}
	exp, found := m.Value("prism_tls_certificate_expiry_timestamp_seconds", "app=tls", "name=web.test")
	if want := float64(time.Now().Add(30 * 24 * time.Hour).Unix()); !found || exp < want-3600 || exp > want+3600 {
		t.Errorf("certificate expiry %v (found %v), want about %v", exp, found, want)
	}
}

// Client-certificate TLS on the admin listener, with openssl making the
// certificates and curl as the client: a certificate from client_ca
// authorises like a token, none is a 401 (counted), one from another CA
// fails the handshake.
func TestAdminClientCertificateTLS(t *testing.T) {
	ossl := testpeer.Need(t, "openssl")
	curl := testpeer.Need(t, "curl")
	dir := t.TempDir()
	f := func(n string) string { return filepath.Join(dir, n) }
	gen := func(args ...string) {
		t.Helper()
		base := []string{"req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2"}
		if out, err := testpeer.Run(t, waitFor, ossl, append(base, args...)...); err != nil {
			t.Fatalf("openssl %v: %v\n%s", args, err, out)
		}
	}
	gen("-keyout", f("ca.key"), "-out", f("ca.pem"), "-subj", "/CN=prism admin test CA")
	gen("-keyout", f("other.key"), "-out", f("other.pem"), "-subj", "/CN=another CA")
	gen("-keyout", f("server.key"), "-out", f("server.pem"), "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
		"-CA", f("ca.pem"), "-CAkey", f("ca.key"))
	gen("-keyout", f("client.key"), "-out", f("client.pem"), "-subj", "/CN=operator", "-addext", "extendedKeyUsage=clientAuth",
		"-CA", f("ca.pem"), "-CAkey", f("ca.key"))
	gen("-keyout", f("rogue.key"), "-out", f("rogue.pem"), "-subj", "/CN=rogue", "-addext", "extendedKeyUsage=clientAuth",
		"-CA", f("other.pem"), "-CAkey", f("other.key"))
	_, _, adm := startDaemon(t, fmt.Sprintf(`admin:
  listen: "127.0.0.1:0"
  tls: {cert: %q, key: %q, client_ca: %q}
apps:
  - id: web
    listen: ["127.0.0.1:0"]
    origins: {addresses: ["127.0.0.1:9"]}
`, f("server.pem"), f("server.key"), f("ca.pem")))
	get := func(path string, extra ...string) (string, error) {
		args := append([]string{"-sS", "--max-time", "10", "--cacert", f("ca.pem"), "-o", "-", "-w", "\n%{http_code}"}, extra...)
		return testpeer.Run(t, waitFor, curl, append(args, "https://"+adm+path)...)
	}
	out, err := get("/api/v1/apps", "--cert", f("client.pem"), "--key", f("client.key"))
	if err != nil || !strings.HasSuffix(out, "\n200") || !strings.Contains(out, `"id": "web"`) {
		t.Fatalf("with the client certificate: %v\n%s", err, out)
	}
	if out, err := get("/api/v1/apps"); err != nil || !strings.HasSuffix(out, "\n401") {
		t.Fatalf("without a client certificate: %v\n%s", err, out)
	}
	if out, err := get("/api/v1/apps", "--cert", f("rogue.pem"), "--key", f("rogue.key")); err == nil {
		t.Fatalf("a certificate from another CA was accepted:\n%s", out)
	}
	if out, err := get("/healthz"); err != nil || !strings.HasSuffix(out, "\n200") {
		t.Fatalf("healthz over TLS without a certificate: %v\n%s", err, out)
	}
	out, err = get("/metrics", "--cert", f("client.pem"), "--key", f("client.key"))
	if err != nil || !strings.Contains(out, "prism_admin_unauthorized_requests_total 1\n") {
		t.Fatalf("metrics: %v\n%s", err, out)
	}
	// prism status's client, over the same TLS.
	c := admin.NewClient(adm, "")
	if err := c.UseTLS(f("ca.pem"), f("client.pem"), f("client.key")); err != nil {
		t.Fatal(err)
	}
	var sb strings.Builder
	if err := c.PrintStatus(context.Background(), &sb); err != nil || !strings.Contains(sb.String(), "web ") {
		t.Fatalf("status over TLS: %v\n%s", err, sb.String())
	}
}

// A job with a remote destination (HTTP, to the test receiver) exports its
// delivery counters; stdout and file jobs have none.
func TestAdminDeliveryCounters(t *testing.T) {
	recv := sinktest.NewReceiver(t)
	d, rec, adm := startDaemon(t, fmt.Sprintf(`admin: {listen: "127.0.0.1:0"}
apps:
  - id: web
    listen: ["127.0.0.1:0"]
    origins: {addresses: [%q]}
log_jobs:
  - name: remote
    dataset: spectrum_events
    batch: {max_interval: 50ms}
    destination: {type: http, url: %q, retry: {initial: 50ms, max: 500ms}}
  - name: siem
    dataset: ocsf
    batch: {max_interval: 50ms}
    destination: {type: http, url: %q, retry: {initial: 50ms, max: 500ms}}
    spool: {dir: %q}
  - name: local
    dataset: spectrum_events
    destination: {type: file, path: %q}
`, testpeer.Echo(t), recv.URL, recv.URL, t.TempDir(), filepath.Join(t.TempDir(), "local.log")))
	const n = 3
	for range n {
		shortConn(t, d.Addrs("web")[0].String(), "hi\n")
	}
	rec.terminal(t, n)
	if !recv.WaitRecords(4*n, waitFor) {
		t.Fatalf("receiver got %d records, want %d", len(recv.Records()), 4*n)
	}
	// The receiver has the records; prism counts them delivered when it
	// reads the answer. Nothing else signals that: poll, bounded.
	var m *admintest.Metrics
	for deadline := time.Now().Add(waitFor); ; {
		m = admintest.Scrape(t, adm, "")
		v, _ := m.Value("prism_logjob_delivered_total", "log_job=remote")
		o, _ := m.Value("prism_logjob_delivered_total", "log_job=siem")
		if v == 2*n && o == 2*n || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	m.Want(t, 2*n, "prism_logjob_delivered_total", "log_job=remote")
	m.Want(t, 2*n, "prism_logjob_delivery_accepted_total", "log_job=remote")
	m.Want(t, 0, "prism_logjob_delivery_pending", "log_job=remote")
	m.Want(t, 0, "prism_logjob_delivery_lag_seconds", "log_job=remote")
	m.Want(t, 0, "prism_logjob_delivery_dropped_total", "log_job=remote", "cause=memory_full")
	// The ocsf dataset is a job like the others: its delivery through a
	// spool is on /metrics with its dataset label.
	m.Want(t, 2*n, "prism_logjob_delivered_total", "log_job=siem", "dataset=ocsf")
	m.Want(t, 2*n, "prism_logjob_delivery_accepted_total", "log_job=siem", "dataset=ocsf")
	m.Want(t, 0, "prism_logjob_delivery_pending", "log_job=siem", "dataset=ocsf")
	m.Want(t, 0, "prism_logjob_spool_bytes", "log_job=siem", "dataset=ocsf")
	var jobs struct {
		Jobs []struct {
			Job, Dataset string
			Delivery     *struct{ Delivered uint64 }
		}
	}
	admintest.JSON(t, adm, "/api/v1/jobs", &jobs)
	if len(jobs.Jobs) != 3 || jobs.Jobs[1].Job != "siem" || jobs.Jobs[1].Dataset != "ocsf" ||
		jobs.Jobs[1].Delivery == nil || jobs.Jobs[1].Delivery.Delivered != 2*n {
		t.Errorf("jobs: %+v", jobs)
	}
	if _, ok := m.Value("prism_logjob_delivered_total", "log_job=local"); ok {
		t.Error("a file job has delivery counters")
	}
	m.Want(t, 2*n, "prism_logjob_events_total", "log_job=local")
	t.Run("promtool", func(t *testing.T) { promtoolCheck(t, m.Raw) })
}

// TestAdminUDPHealthChecksCounted: a trusted front's PROXY v2 LOCAL
// datagram is its health check, as a LOCAL header is on TCP, and is in
// prism_inbound_health_checks_total with the TCP ones (the daemon summed
// the tcp apps' only).
func TestAdminUDPHealthChecksCounted(t *testing.T) {
	o := testpeer.StartUDPEcho(t, "")
	d, rec, adm := startDaemon(t, fmt.Sprintf(`admin: {listen: "127.0.0.1:0"}
apps:
  - id: behind-front
    protocol: udp
    listen: ["127.0.0.1:0"]
    origins: {addresses: [%q]}
    inbound_proxy_protocol: {trusted_cidrs: ["127.0.0.0/8"]}
`, o.Addr()))
	to := d.Addrs("behind-front")[0].(*net.UDPAddr)
	front, err := net.DialUDP("udp", nil, to)
	if err != nil {
		t.Fatal(err)
	}
	defer front.Close()
	local, err := (&proxyproto.Header{Version: 2, Command: proxyproto.LOCAL, TransportProtocol: proxyproto.UNSPEC}).Format()
	if err != nil {
		t.Fatal(err)
	}
	client := &net.UDPAddr{IP: net.IPv4(192, 0, 2, 10), Port: 5555}
	proxied, err := proxyproto.HeaderProxyFromAddrs(2, client, to).FormatUDPDatagram([]byte("client"))
	if err != nil {
		t.Fatal(err)
	}
	for _, dg := range [][]byte{local, proxied} {
		if _, err := front.Write(dg); err != nil {
			t.Fatal(err)
		}
	}
	// The socket is read in order: once the client's session connected,
	// the health check before it has been counted.
	rec.connects(t, 1)
	admintest.Scrape(t, adm, "").Want(t, 1, "prism_inbound_health_checks_total")
}
