package proxy_test

// End to end: the IP firewall and GeoIP in a running proxy. Client
// addresses from the MaxMind test databases' networks arrive in inbound
// PROXY v2 headers from a trusted peer (written by the test with
// go-proxyproto, and by a real HAProxy with send-proxy-v2); the emitted
// events and their Spectrum / EdgeOne renderings must carry the firewall
// outcome, country and ASN, and refused clients must never reach the origin.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pires/go-proxyproto"
	"go.yaml.in/yaml/v3"

	"github.com/prismproxy/prism/internal/config"
	"github.com/prismproxy/prism/internal/event"
	"github.com/prismproxy/prism/internal/event/eventtest"
	"github.com/prismproxy/prism/internal/firewall"
	"github.com/prismproxy/prism/internal/geo"
	"github.com/prismproxy/prism/internal/geo/geotest"
	"github.com/prismproxy/prism/internal/proxy"
	"github.com/prismproxy/prism/internal/render"
	"github.com/prismproxy/prism/internal/testpeer"
)

// clientEvent skips events until one of type typ from client and returns
// it, failing the test after rec's timeout.
func clientEvent(t *testing.T, rec *eventtest.Recorder, client netip.Addr, typ event.Type) event.Event {
	t.Helper()
	return rec.WaitFor(t, typ.String()+" (client "+client.String()+")", func(e *event.Event) bool {
		return e.ClientAddr.Addr() == client && e.Type == typ
	})
}

// clientEvents is how many events from client rec holds, read or not.
func clientEvents(rec *eventtest.Recorder, client netip.Addr) int {
	return rec.Count(func(e *event.Event) bool { return e.ClientAddr.Addr() == client })
}

// The app's ip_firewall section, as an operator writes it.
const fwYAML = `
rules:
  - {action: block, country: BT}
  - {action: block, country: se}
  - {action: allow, asn: AS29518}
  - {action: block, asn: 721}
  - {action: block, cidr: 203.0.113.0/24}
  - {action: allow, ip: 203.0.113.7}
  - {action: block, ip: 127.0.0.66}
`

type fwCase struct {
	name    string
	client  string
	blocked bool
	match   string
	country string
	asn     uint32
}

var fwCases = []fwCase{
	{"asn allow beats country block", "89.160.20.130", false, event.FirewallWhitelistASN, "SE", 29518},
	{"v4-mapped client", "::ffff:89.160.20.131", false, event.FirewallWhitelistASN, "SE", 29518},
	{"country block", "67.43.156.1", true, event.FirewallBlockCountry, "BT", 35908},
	{"asn block", "214.78.0.1", true, event.FirewallBlockASN, "US", 721},
	{"cidr block", "203.0.113.9", true, event.FirewallBlockIP, "", 0},
	{"ip allow inside blocked cidr", "203.0.113.7", false, event.FirewallWhitelistIP, "", 0},
	{"no rule matched, geo still recorded", "81.2.69.142", false, event.FirewallUnknown, "GB", 0},
	{"v6, no rule matched", "2001:218::1", false, event.FirewallUnknown, "JP", 0},
	{"v6 asn", "2600:6000::1", false, event.FirewallUnknown, "", 237},
}

// startFirewalledProxy runs one TCP app in front of an echo origin that
// counts its connections, trusting PROXY headers from 127.0.0.1.
func startFirewalledProxy(t *testing.T) (*proxy.Server, *eventtest.Recorder, string, *atomic.Int64) {
	t.Helper()
	db, err := geo.Open(geo.Config{
		CountryDB: geotest.Shared(t, geotest.GeoLite2Country),
		ASNDB:     geotest.Shared(t, geotest.GeoLite2ASN),
	}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })

	var fwc firewall.Config
	dec := yaml.NewDecoder(bytes.NewReader([]byte(fwYAML)))
	dec.KnownFields(true)
	if err := dec.Decode(&fwc); err != nil {
		t.Fatal(err)
	}
	fw := newFirewall(t, fwc, db)

	var originConns atomic.Int64
	origin := echoOrigin(t, &originConns)
	cfg, err := config.Parse("fw.yaml", []byte(fmt.Sprintf(`node: {colo: TST, id: t1}
apps:
  - id: app
    listen: ["127.0.0.1:0"]
    origins: {addresses: ["%s"]}
    inbound_proxy_protocol: {trusted_cidrs: ["127.0.0.1/32"], header_timeout: 3s}
`, origin)))
	if err != nil {
		t.Fatal(err)
	}
	rec := eventtest.New()
	s := startServers(t, cfg, rec, withFirewall("app", fw))["app"]
	addrs := s.Addrs()
	if len(addrs) == 0 {
		t.Fatal("app has no listener")
	}
	return s, rec, addrs[0].String(), &originConns
}

// echoOrigin is an echo origin that counts the connections it serves.
func echoOrigin(t *testing.T, n *atomic.Int64) string {
	t.Helper()
	return testpeer.Serve(t, func(c net.Conn) {
		n.Add(1)
		_, _ = io.Copy(c, c)
	})
}

// sendThrough connects to the proxy as client (in a PROXY v2 header), sends
// a line and reads what comes back until the proxy closes the connection.
func sendThrough(t *testing.T, proxyAddr string, client netip.Addr, blocked bool) {
	t.Helper()
	c, err := net.Dial("tcp", proxyAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	src := &net.TCPAddr{IP: client.AsSlice(), Port: 40000}
	dst := c.LocalAddr().(*net.TCPAddr) // any destination will do
	if client.Is6() && !client.Is4In6() {
		dst = &net.TCPAddr{IP: net.IPv6loopback, Port: dst.Port}
	}
	h := proxyproto.HeaderProxyFromAddrs(2, src, dst)
	if _, err := h.WriteTo(c); err != nil {
		t.Fatal(err)
	}
	msg := []byte("hello " + client.String() + "\n")
	if _, err := c.Write(msg); err != nil && !blocked {
		t.Fatal(err)
	}
	if blocked {
		// The proxy closes without a byte back.
		b, err := io.ReadAll(c)
		if len(b) != 0 {
			t.Fatalf("blocked client %s got %q back", client, b)
		}
		_ = err // a reset is as good as a close here
		return
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("echo through the proxy for %s: %q, %v", client, got, err)
	}
	_ = c.(*net.TCPConn).CloseWrite()
	_, _ = io.Copy(io.Discard, c)
}

func checkFirewallEvent(t *testing.T, e event.Event, tc fwCase) {
	t.Helper()
	if !e.Firewall || e.FirewallMatch != tc.match || e.Country != tc.country || e.ASN != tc.asn {
		t.Errorf("%s event: IpFirewall %v, %s, %q, AS%d; want true, %s, %q, AS%d",
			e.Type, e.Firewall, e.FirewallMatch, e.Country, e.ASN, tc.match, tc.country, tc.asn)
	}
}

func TestFirewallEndToEnd(t *testing.T) {
	_, rec, addr, originConns := startFirewalledProxy(t)
	allowed := 0
	for _, tc := range fwCases {
		t.Run(tc.name, func(t *testing.T) {
			sent := netip.MustParseAddr(tc.client)
			client := sent.Unmap() // what the proxy records
			sendThrough(t, addr, sent, tc.blocked)
			if tc.blocked {
				e := clientEvent(t, rec, client, event.ClientFiltered)
				if e.Status != event.StatusFiltered {
					t.Errorf("clientFiltered Status %d, want 403", e.Status)
				}
				checkFirewallEvent(t, e, tc)
				if n := clientEvents(rec, client); n != 1 {
					t.Errorf("%d events for a refused client, want exactly 1", n)
				}
				sp := renderJSON(t, render.Spectrum, &e)
				want := map[string]any{
					"Event": "clientFiltered", "Status": float64(403),
					"ClientMatchedIpFirewall": tc.match, "IpFirewall": true,
					"ClientIP": client.String(), "ClientAsn": float64(tc.asn),
				}
				for k, v := range want {
					if sp[k] != v {
						t.Errorf("Spectrum %s = %v, want %v", k, sp[k], v)
					}
				}
				if cc, _ := sp["ClientCountry"].(string); !equalFoldCC(cc, tc.country) {
					t.Errorf("Spectrum ClientCountry = %q, want %q", cc, tc.country)
				}
				if rtt, _ := sp["ClientTcpRtt"].(float64); rtt == 0 || sp["OriginProto"] != "tcp" {
					t.Errorf("Spectrum ClientTcpRtt %v OriginProto %v; want the client RTT and tcp (spec §7.2, §7.3)", sp["ClientTcpRtt"], sp["OriginProto"])
				}
				eo := renderJSON(t, render.EdgeOne, &e)
				if tc.country != "" && (eo["ClientRegion"] != tc.country || eo["ClientRealIP"] != client.String()) {
					t.Errorf("EdgeOne ClientRegion %v ClientRealIP %v; want %s %s", eo["ClientRegion"], eo["ClientRealIP"], tc.country, client)
				}
				if eo["DisconnetReason"] != "down:net_exception_closed" || eo["ConnectTimeStamp"] == "-" {
					t.Errorf("EdgeOne DisconnetReason %v ConnectTimeStamp %v; want down:net_exception_closed and the accept time (spec §7.5, §7.4)",
						eo["DisconnetReason"], eo["ConnectTimeStamp"])
				}
				cc := renderJSON(t, render.CloudConnexa, &e)
				if l, _ := cc["log"].(map[string]any); cc["eventName"] != "flow-established" || l["allowed"] != false || l["sourceIp"] != client.String() {
					t.Errorf("CloudConnexa %v log %v; want a refused flow from %s", cc["eventName"], cc["log"], client)
				}
				return
			}
			allowed++
			connect := clientEvent(t, rec, client, event.Connect)
			checkFirewallEvent(t, connect, tc)
			end := clientEvent(t, rec, client, event.Disconnect)
			checkFirewallEvent(t, end, tc)
			sp := renderJSON(t, render.Spectrum, &connect)
			if sp["Event"] != "connect" || sp["ClientMatchedIpFirewall"] != tc.match || sp["ClientAsn"] != float64(tc.asn) {
				t.Errorf("Spectrum connect: Event %v ClientMatchedIpFirewall %v ClientAsn %v", sp["Event"], sp["ClientMatchedIpFirewall"], sp["ClientAsn"])
			}
		})
	}
	// Refused clients never reached the origin.
	if got := originConns.Load(); got != int64(allowed) {
		t.Errorf("origin saw %d connections, want %d (one per allowed client)", got, allowed)
	}
}

func equalFoldCC(a, b string) bool { return len(a) == len(b) && bytes.EqualFold([]byte(a), []byte(b)) }

// A real HAProxy in front, sending PROXY v2 with the address it accepted
// from: the client binds 127.0.0.66 (blocked by an ip rule) or 127.0.0.67
// (no rule), while the proxy's socket peer is HAProxy at 127.0.0.1.
func TestFirewallBehindHAProxy(t *testing.T) {
	testpeer.Need(t, "haproxy")
	_, rec, addr, originConns := startFirewalledProxy(t)

	port := testpeer.FreePort(t)
	front := fmt.Sprintf("127.0.0.1:%d", port)
	// The probe startHAProxy waits with comes from 127.0.0.1.
	startHAProxy(t, fmt.Sprintf(`frontend fe
  bind %s
  default_backend be
backend be
  server prism %s send-proxy-v2
`, front, addr), front)

	for _, tc := range []struct {
		src     string
		blocked bool
		match   string
	}{
		{"127.0.0.66", true, event.FirewallBlockIP},
		{"127.0.0.67", false, event.FirewallUnknown},
	} {
		src := netip.MustParseAddr(tc.src)
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: src.AsSlice()}, Timeout: 5 * time.Second}
		c, err := d.Dial("tcp", front)
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		msg := []byte("via haproxy\n")
		_, _ = c.Write(msg)
		if tc.blocked {
			b, _ := io.ReadAll(c)
			if len(b) != 0 {
				t.Errorf("blocked %s got %q", src, b)
			}
			e := clientEvent(t, rec, src, event.ClientFiltered)
			if e.Status != event.StatusFiltered || e.FirewallMatch != tc.match || e.PeerAddr.Addr() != netip.MustParseAddr("127.0.0.1") {
				t.Errorf("via HAProxy %s: Status %d, %s, peer %s; want 403, %s, peer 127.0.0.1", src, e.Status, e.FirewallMatch, e.PeerAddr, tc.match)
			}
		} else {
			got := make([]byte, len(msg))
			if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, msg) {
				t.Errorf("echo via HAProxy: %q %v", got, err)
			}
			e := clientEvent(t, rec, src, event.Connect)
			if e.FirewallMatch != tc.match || !e.Firewall {
				t.Errorf("via HAProxy %s: %s, IpFirewall %v", src, e.FirewallMatch, e.Firewall)
			}
		}
		c.Close()
	}
	// The probe and the allowed client reached the origin; the blocked one did not.
	if n := clientEvents(rec, netip.MustParseAddr("127.0.0.66")); n != 1 {
		t.Errorf("%d events for the refused client, want 1", n)
	}
	if got := originConns.Load(); got > 2 {
		t.Errorf("origin saw %d connections, want at most 2 (probe + allowed client)", got)
	}
}

// The whole daemon from one YAML file: geoip and ip_firewall (with a list
// file) as an operator writes them, records written by a real log job to a
// file. A second app has no ip_firewall section: its records still carry
// the client's country and ASN, with IpFirewall false.
func TestFirewallFromConfigFile(t *testing.T) {
	dir := t.TempDir()
	list := filepath.Join(dir, "block.txt")
	if err := os.WriteFile(list, []byte("# blocked\nBT\n203.0.113.0/24\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(dir, "spectrum.log")
	var originConns atomic.Int64
	origin := echoOrigin(t, &originConns)
	yml := fmt.Sprintf(`node: {colo: TST, id: t1}
geoip:
  country_db: %s
  asn_db: %s
apps:
  - id: guarded
    listen: ["127.0.0.1:0"]
    origins: {addresses: ["%s"]}
    inbound_proxy_protocol: {trusted_cidrs: ["127.0.0.1/32"]}
    ip_firewall:
      fail_closed: true
      rules:
        - {action: allow, asn: 29518}
        - {action: block, country: SE}
      lists:
        - {action: block, path: %s}
  - id: open
    listen: ["127.0.0.1:0"]
    origins: {addresses: ["%s"]}
    inbound_proxy_protocol: {trusted_cidrs: ["127.0.0.1/32"]}
log_jobs:
  - name: spectrum
    dataset: spectrum_events
    destination: {type: file, path: %s}
`, geotest.Shared(t, geotest.GeoLite2Country), geotest.Shared(t, geotest.GeoLite2ASN), origin, list, origin, logPath)
	rec := eventtest.New()
	d, stop := runDaemon(t, yml, rec)
	guarded, open := d.Addrs("guarded")[0].String(), d.Addrs("open")[0].String()

	type sent struct {
		addr, client string
		blocked      bool
	}
	for _, s := range []sent{
		{guarded, "67.43.156.1", true},    // BT, from the list
		{guarded, "203.0.113.5", true},    // CIDR, from the list
		{guarded, "89.160.20.130", false}, // SE but AS29518 allowed
		{open, "214.78.0.1", false},       // no firewall: US, AS721 recorded
	} {
		client := netip.MustParseAddr(s.client)
		sendThrough(t, s.addr, client, s.blocked)
		if s.blocked {
			clientEvent(t, rec, client, event.ClientFiltered)
		} else {
			clientEvent(t, rec, client, event.Disconnect)
		}
	}
	if err := stop(20 * time.Second); err != nil {
		t.Fatal(err)
	}

	b, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	type key struct{ ip, ev string }
	got := map[key]map[string]any{}
	for _, line := range bytes.Split(bytes.TrimSpace(b), []byte("\n")) {
		var m map[string]any
		if err := json.Unmarshal(line, &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		ip, _ := m["ClientIP"].(string)
		ev, _ := m["Event"].(string)
		got[key{ip, ev}] = m
	}
	for _, w := range []struct {
		ip, ev, app, match, country string
		asn                         float64
		firewall                    bool
		status                      float64
	}{
		{"67.43.156.1", "clientFiltered", "guarded", "BLOCK_COUNTRY", "bt", 35908, true, 403},
		{"203.0.113.5", "clientFiltered", "guarded", "BLOCK_IP", "", 0, true, 403},
		{"89.160.20.130", "connect", "guarded", "WHITELIST_ASN", "se", 29518, true, 0},
		{"89.160.20.130", "disconnect", "guarded", "WHITELIST_ASN", "se", 29518, true, 200},
		{"214.78.0.1", "connect", "open", "UNKNOWN", "us", 721, false, 0},
		{"214.78.0.1", "disconnect", "open", "UNKNOWN", "us", 721, false, 200},
	} {
		m, ok := got[key{w.ip, w.ev}]
		if !ok {
			t.Errorf("no %s record for %s in the log file", w.ev, w.ip)
			continue
		}
		if m["Application"] != w.app || m["ClientMatchedIpFirewall"] != w.match || m["ClientAsn"] != w.asn ||
			m["IpFirewall"] != w.firewall || m["Status"] != w.status {
			t.Errorf("%s %s: Application %v ClientMatchedIpFirewall %v ClientAsn %v IpFirewall %v Status %v; want %s %s %v %v %v",
				w.ev, w.ip, m["Application"], m["ClientMatchedIpFirewall"], m["ClientAsn"], m["IpFirewall"], m["Status"],
				w.app, w.match, w.asn, w.firewall, w.status)
		}
		if cc, _ := m["ClientCountry"].(string); !equalFoldCC(cc, w.country) {
			t.Errorf("%s %s: ClientCountry %q, want %q", w.ev, w.ip, cc, w.country)
		}
	}
	if n := originConns.Load(); n != 2 {
		t.Errorf("origin saw %d connections, want 2", n)
	}
}
