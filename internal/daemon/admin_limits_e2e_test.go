package daemon

import (
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prismproxy/prism/internal/admin/admintest"
	"github.com/prismproxy/prism/internal/config"
	"github.com/prismproxy/prism/internal/event"
	"github.com/prismproxy/prism/internal/testpeer"
)

// Refusals by an app's limits: section are metrics: per app and limit for
// TCP connections, and for the datagrams of refused UDP sessions as drop
// causes. The accept error counter is always there.
func TestAdminLimitRefusalsCounted(t *testing.T) {
	d, rec, adm := startDaemon(t, geoFixture(t)+fmt.Sprintf(`admin: {listen: "127.0.0.1:0"}
apps:
  - id: web
    listen: ["127.0.0.1:0"]
    origins: {addresses: [%q]}
    limits: {max_connections_per_client: 1}
log_jobs:
  - name: spectrum
    dataset: spectrum_events
    destination: {type: file, path: %q}
`, testpeer.Echo(t), filepath.Join(t.TempDir(), "spectrum.log")))
	addr := d.Addrs("web")[0].String()
	held, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	rec.connects(t, 1)
	const n = 3
	for range n {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, c) // prism closes a refused connection
		c.Close()
	}
	for _, e := range rec.terminal(t, n) {
		if e.Type != event.ClientFiltered || e.Status != event.StatusFiltered {
			t.Fatalf("record %s %d (%s), want clientFiltered 403", e.Type, e.Status, e.Detail)
		}
	}
	m := admintest.Scrape(t, adm, "")
	m.Want(t, n, "prism_limit_refusals_total", "app=web", "limit=max_connections_per_client")
	m.Want(t, 0, "prism_limit_refusals_total", "app=web", "limit=new_connections_per_second")
	m.Want(t, n, "prism_session_records_total", "app=web", "event=clientFiltered", "status=403")
	m.Want(t, 0, "prism_accept_errors_total")
	t.Run("promtool", func(t *testing.T) { promtoolCheck(t, m.Raw) })
}

func TestAdminUDPLimitDropsCounted(t *testing.T) {
	dig := testpeer.Need(t, "dig")
	dns := startDnsmasq(t)
	d, rec, adm := startDaemon(t, fmt.Sprintf(`admin: {listen: "127.0.0.1:0"}
apps:
  - id: dns
    protocol: udp
    listen: ["127.0.0.1:0"]
    origins: {addresses: [%q]}
    udp: {idle_timeout: 30s}
    limits: {max_connections_per_client: 1}
`, dns))
	host, port, _ := net.SplitHostPort(d.Addrs("dns")[0].String())
	query := func() (string, error) {
		return testpeer.Run(t, waitFor, dig, "@"+host, "-p", port, "+tries=1", "+time=1", "+short", "test.example", "A")
	}
	if out, err := query(); err != nil || strings.TrimSpace(out) != "192.0.2.1" {
		t.Fatalf("dig: %v\n%s", err, out)
	}
	rec.connects(t, 1)
	// A second client port is a second session: over the limit, refused
	// with one record, its datagram dropped.
	if out, _ := query(); strings.Contains(out, "192.0.2.1") {
		t.Fatalf("a session over max_connections_per_client was answered:\n%s", out)
	}
	if e := rec.terminal(t, 1)[0]; e.Type != event.ClientFiltered || e.Status != event.StatusFiltered {
		t.Fatalf("record %s %d (%s), want clientFiltered 403", e.Type, e.Status, e.Detail)
	}
	m := admintest.Scrape(t, adm, "")
	m.Want(t, 1, "prism_limit_refusals_total", "app=dns", "limit=max_connections_per_client")
	m.Want(t, 1, "prism_udp_dropped_datagrams_total", "app=dns", "cause=max_connections_per_client")
	m.Want(t, 0, "prism_udp_dropped_datagrams_total", "app=dns", "cause=new_connections_per_second")
}

// Rate buckets the limiter evicts because its table is full (a wide-source
// flood) are a metric per app, carried across a reload that rebuilds the
// app with its limiter. They were counted (limit.Limiter.Evicted) but not
// exported: an operator could not see that returning prefixes were getting
// a full burst again.
func TestAdminRateBucketEvictionsCounted(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "prism.yaml")
	origin, addr := testpeer.Echo(t), testpeer.ClosedPort(t)
	write := func(burst int) *config.Config {
		y := fmt.Sprintf(`node: {colo: TST}
shutdown: {drain_timeout: 300ms}
admin: {listen: "127.0.0.1:0"}
apps:
  - id: web
    listen: [%q]
    origins: {addresses: [%q]}
    limits: {new_connections_per_second: 1, new_connections_burst: %d}
`, addr, origin, burst)
		if err := os.WriteFile(path, []byte(y), 0o644); err != nil {
			t.Fatal(err)
		}
		cfg, err := config.Load(path)
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	cfg := write(100) // a bucket refills in 100 s: none is swept meanwhile
	const buckets, clients = 2, 6
	cfg.Apps[0].Limits.RateBuckets = buckets
	d := start(t, cfg, newRecords())
	adm := d.AdminAddr().String()
	// Each client its own loopback address, so its own rate bucket.
	for i := range clients {
		local := &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(2+i))}
		c, err := (&net.Dialer{LocalAddr: local, Timeout: waitFor}).Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		echoOn(t, c, "admitted") // past the limiter: its bucket is in the table
		c.Close()
	}
	m := admintest.Scrape(t, adm, "")
	m.Want(t, clients-buckets, "prism_limit_rate_buckets_evicted_total", "app=web")
	m.Want(t, 0, "prism_limit_refusals_total", "app=web", "limit=new_connections_per_second")
	t.Run("promtool", func(t *testing.T) { promtoolCheck(t, m.Raw) })

	write(101)
	if res, err := d.ReloadConfig(); err != nil || fmt.Sprint(res.Changed) != "[web]" {
		t.Fatalf("reload: %v %v", res, err)
	}
	m = admintest.Scrape(t, adm, "")
	m.Want(t, clients-buckets, "prism_limit_rate_buckets_evicted_total", "app=web")
}
