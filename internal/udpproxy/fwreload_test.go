package udpproxy

import (
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prismproxy/prism/internal/cfgerr"
	"github.com/prismproxy/prism/internal/event"
	"github.com/prismproxy/prism/internal/firewall"
	"github.com/prismproxy/prism/internal/geo"
	"github.com/prismproxy/prism/internal/geo/geotest"
	"github.com/prismproxy/prism/internal/limit"
	"github.com/prismproxy/prism/internal/testpeer"
)

// A client blocked by a list file is let through as soon as the list is
// reloaded without it: its negative entry must not outlive the rule.
func TestFirewallReloadExpiresNegativeEntries(t *testing.T) {
	list := filepath.Join(t.TempDir(), "block.txt")
	if err := os.WriteFile(list, []byte("127.0.0.1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := firewall.Config{Lists: []firewall.List{{Action: "block", Path: list}}, ReloadInterval: -1}
	if err := cfgerr.Prepare(&cfg); err != nil {
		t.Fatal(err)
	}
	fw, err := firewall.New(cfg, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fw.Close() })
	origin := testpeer.StartUDPEcho(t, "")
	col := newCollector()
	s := startServer(t, App{Pool: staticPool(t, origin.Addr().String()), Firewall: fw, UDP: Config{IdleTimeout: time.Minute}}, col, nil)
	c := dial(t, addrOf(s, 0))
	if _, err := c.Write([]byte("one")); err != nil {
		t.Fatal(err)
	}
	if e := col.NextOf(t, event.ClientFiltered); e.FirewallMatch != event.FirewallBlockIP {
		t.Fatalf("match %s", e.FirewallMatch)
	}
	if err := os.WriteFile(list, []byte("# nobody blocked now\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := fw.Reload(true); err != nil {
		t.Fatal(err)
	}
	// The sweeper expires the negative entry when the firewall signals the
	// change; no datagram is needed for that.
	eventually(t, "negative entry expired after the list reload", func() bool {
		return s.Stats().Blocked == 0
	})
	if got := roundTrip(t, c, "three"); got != "three" {
		t.Fatalf("echo %q", got)
	}
	col.NextOf(t, event.Connect)
}

// TestFirewallCheckWithoutChangeKeepsNegativeEntries: every reload check
// of the list files (each reload_interval, and a forced re-read) ended
// every negative entry, changed or not, so a blocked client that kept
// sending got a clientFiltered record per check. Only a change of the
// rules ends them.
func TestFirewallCheckWithoutChangeKeepsNegativeEntries(t *testing.T) {
	list := filepath.Join(t.TempDir(), "block.txt")
	if err := os.WriteFile(list, []byte("127.0.0.1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := firewall.Config{Lists: []firewall.List{{Action: "block", Path: list}}, ReloadInterval: -1}
	if err := cfgerr.Prepare(&cfg); err != nil {
		t.Fatal(err)
	}
	fw, err := firewall.New(cfg, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fw.Close() })
	origin := testpeer.StartUDPEcho(t, "")
	col := newCollector()
	s := startServer(t, App{Pool: staticPool(t, origin.Addr().String()), Firewall: fw, UDP: Config{IdleTimeout: time.Minute}}, col, nil)
	c := dial(t, addrOf(s, 0))
	if _, err := c.Write([]byte("one")); err != nil {
		t.Fatal(err)
	}
	col.NextOf(t, event.ClientFiltered)
	if err := fw.Reload(false); err != nil { // what the periodic check does
		t.Fatal(err)
	}
	if err := fw.Reload(true); err != nil { // SIGHUP: the same entries again
		t.Fatal(err)
	}
	// Absence: the sweep ends entries within a tick of a signal; none
	// may come.
	for deadline := time.Now().Add(300 * time.Millisecond); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if s.Stats().Blocked != 1 {
			t.Fatal("the negative entry ended at a list check that changed nothing")
		}
	}
	if _, err := c.Write([]byte("two")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the second datagram dropped by the negative entry", func() bool { return s.Stats().DropFiltered == 2 })
	if n := col.CountOf(event.ClientFiltered); n != 1 {
		t.Fatalf("%d clientFiltered records for one blocked flow, want 1", n)
	}
}

// TestFirewallChangeKeepsLimitRefusals: a change of the firewall's rules
// ended every negative entry, the limit refusals' too, which have nothing
// to do with the lists: they last until the flow falls silent.
func TestFirewallChangeKeepsLimitRefusals(t *testing.T) {
	list := filepath.Join(t.TempDir(), "block.txt")
	if err := os.WriteFile(list, []byte("127.0.0.1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := firewall.Config{Lists: []firewall.List{{Action: "block", Path: list}}, ReloadInterval: -1}
	if err := cfgerr.Prepare(&cfg); err != nil {
		t.Fatal(err)
	}
	fw, err := firewall.New(cfg, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fw.Close() })
	origin := testpeer.StartUDPEcho(t, "")
	col := newCollector()
	s := startServer(t, App{Pool: staticPool(t, origin.Addr().String()), Firewall: fw, UDP: Config{IdleTimeout: time.Minute},
		Limits: limit.Config{RatePerClient: 1, Burst: 1}}, col, nil)
	from := func(src string) *net.UDPConn {
		c, err := net.DialUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr(src), 0)), net.UDPAddrFromAddrPort(addrOf(s, 0)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	if _, err := from("127.0.0.1").Write([]byte("blocked")); err != nil {
		t.Fatal(err)
	}
	col.NextOf(t, event.ClientFiltered)
	roundTrip(t, from("127.9.0.1"), "first") // the client's burst
	refused := from("127.9.0.1")
	if _, err := refused.Write([]byte("over the rate")); err != nil {
		t.Fatal(err)
	}
	if e := col.NextOf(t, event.ClientFiltered); e.Detail != "client over limits.new_connections_per_second" {
		t.Fatalf("refusal record %q", e.Detail)
	}
	if err := os.WriteFile(list, []byte("# nobody blocked now\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := fw.Reload(true); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the firewall's negative entry ended", func() bool { return s.Stats().Blocked < 2 })
	for deadline := time.Now().Add(100 * time.Millisecond); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if s.Stats().Blocked != 1 {
			t.Fatal("the limit refusal's negative entry ended with the firewall's")
		}
	}
	if _, err := refused.Write([]byte("still over")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the refused flow's datagram dropped by its entry", func() bool { return s.Stats().DropLimitRate == 2 })
	if n := col.CountOf(event.ClientFiltered); n != 2 {
		t.Fatalf("%d clientFiltered records, want 2", n)
	}
}

// TestGeoIPReplaceExpiresNegativeEntries: a client blocked by a country
// rule stayed blocked after the GeoIP database was replaced by one that
// places it elsewhere, until its flow fell silent: only a change of the
// list files ended the negative entries, though the rule's verdict reads
// the database too. The new database ends them as a list change does; a
// re-read of the same database (SIGHUP) keeps them.
func TestGeoIPReplaceExpiresNegativeEntries(t *testing.T) {
	ccPath := filepath.Join(t.TempDir(), "country.mmdb")
	geotest.Write(t, ccPath, geotest.Options{}, geotest.Net{CIDR: "127.0.0.0/8", Country: "XX"})
	gcfg := geo.Config{CountryDB: ccPath, ReloadInterval: -1}
	if err := cfgerr.Prepare(&gcfg); err != nil {
		t.Fatal(err)
	}
	db, err := geo.Open(gcfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	cfg := firewall.Config{Rules: []firewall.Rule{{Action: "block", Country: "XX"}}}
	if err := cfgerr.Prepare(&cfg); err != nil {
		t.Fatal(err)
	}
	fw, err := firewall.New(cfg, db, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fw.Close() })
	origin := testpeer.StartUDPEcho(t, "")
	col := newCollector()
	s := startServer(t, App{Pool: staticPool(t, origin.Addr().String()), Firewall: fw, UDP: Config{IdleTimeout: time.Minute}}, col, nil)
	c := dial(t, addrOf(s, 0))
	if _, err := c.Write([]byte("one")); err != nil {
		t.Fatal(err)
	}
	if e := col.NextOf(t, event.ClientFiltered); e.FirewallMatch != event.FirewallBlockCountry {
		t.Fatalf("match %s", e.FirewallMatch)
	}
	if err := db.Reload(true); err != nil { // SIGHUP: the same database again
		t.Fatal(err)
	}
	for deadline := time.Now().Add(300 * time.Millisecond); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if s.Stats().Blocked != 1 {
			t.Fatal("the negative entry ended at a re-read of the same database")
		}
	}
	geotest.Write(t, ccPath, geotest.Options{}, geotest.Net{CIDR: "127.0.0.0/8", Country: "NL"})
	if err := db.Reload(true); err != nil {
		t.Fatal(err)
	}
	eventually(t, "negative entry expired after the GeoIP database was replaced", func() bool {
		return s.Stats().Blocked == 0
	})
	if got := roundTrip(t, c, "two"); got != "two" {
		t.Fatalf("echo %q", got)
	}
	if e := col.NextOf(t, event.Connect); e.Country != "NL" {
		t.Fatalf("session's country %q, want NL", e.Country)
	}
}
