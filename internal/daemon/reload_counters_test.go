package daemon

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pires/go-proxyproto"

	"github.com/prismproxy/prism/internal/admin"
	"github.com/prismproxy/prism/internal/admin/admintest"
	"github.com/prismproxy/prism/internal/config"
	"github.com/prismproxy/prism/internal/deliver"
	"github.com/prismproxy/prism/internal/logjob"
	"github.com/prismproxy/prism/internal/testpeer"
)

// A reload that changes udp app u, removes app h and changes log job b
// takes nothing away from the counters: u's datagrams (and those of its
// session still on the replaced server), h's health check, and job a's
// events (every job is rebuilt) go on from where they were. They were
// sums over the parts running now, so each went down (a counter reset for
// Prometheus), and the replaced server's datagrams were not counted.
func TestReloadKeepsTheCountersOfReplacedParts(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "prism.yaml")
	o := testpeer.StartUDPEcho(t, "")
	uAddr := fmt.Sprintf("127.0.0.1:%d", testpeer.FreeUDPPort(t))
	hAddr := fmt.Sprintf("127.0.0.1:%d", testpeer.FreeUDPPort(t))
	write := func(idle string, withH bool, bFile string) *config.Config {
		y := fmt.Sprintf(`admin: {listen: "127.0.0.1:0"}
node: {colo: TST}
shutdown: {drain_timeout: 300ms}
log_jobs:
  - name: a
    dataset: spectrum_events
    destination: {type: file, path: %q}
  - name: b
    dataset: spectrum_events
    destination: {type: file, path: %q}
apps:
  - id: u
    protocol: udp
    listen: [%q]
    origins: {addresses: [%q]}
    udp: {idle_timeout: %s}
`, filepath.Join(dir, "a.log"), filepath.Join(dir, bFile), uAddr, o.Addr(), idle)
		if withH {
			y += fmt.Sprintf(`  - id: h
    protocol: udp
    listen: [%q]
    origins: {addresses: [%q]}
    inbound_proxy_protocol: {trusted_cidrs: ["127.0.0.0/8"]}
`, hAddr, o.Addr())
		}
		if err := os.WriteFile(path, []byte(y), 0o644); err != nil {
			t.Fatal(err)
		}
		cfg, err := config.Load(path)
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	rec := newRecords()
	d := start(t, write("2s", true, "b.log"), rec)
	adm := d.AdminAddr().String()

	c, err := net.Dial("udp", uAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, m := range []string{"one", "two", "three"} {
		echoOn(t, c, m)
	}
	// A health check of h: a PROXY v2 LOCAL datagram, then a client's
	// (read in order: once its session connected, the check was counted).
	front, err := net.Dial("udp", hAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer front.Close()
	local, err := (&proxyproto.Header{Version: 2, Command: proxyproto.LOCAL, TransportProtocol: proxyproto.UNSPEC}).Format()
	if err != nil {
		t.Fatal(err)
	}
	proxied, err := proxyproto.HeaderProxyFromAddrs(2, &net.UDPAddr{IP: net.IPv4(192, 0, 2, 10), Port: 5555}, front.RemoteAddr()).FormatUDPDatagram([]byte("client"))
	if err != nil {
		t.Fatal(err)
	}
	for _, dg := range [][]byte{local, proxied} {
		if _, err := front.Write(dg); err != nil {
			t.Fatal(err)
		}
	}
	rec.connects(t, 2) // u's session and h's
	m := admintest.Scrape(t, adm, "")
	m.Want(t, 3, "prism_udp_datagrams_total", "app=u", "from=client")
	m.Want(t, 3, "prism_udp_datagrams_total", "app=u", "from=origin")
	m.Want(t, 1, "prism_inbound_health_checks_total")
	eventsA, _ := m.Value("prism_logjob_events_total", "log_job=a")
	eventsB, _ := m.Value("prism_logjob_events_total", "log_job=b")
	if eventsA < 2 || eventsB < 2 {
		t.Fatalf("log job events before the reload: a %v, b %v (want the two connects)", eventsA, eventsB)
	}

	write("3s", false, "b2.log")
	if res, err := d.ReloadConfig(); err != nil || fmt.Sprint(res.Changed, res.Removed, res.LogJobs) != "[u] [h] true" {
		t.Fatalf("reload: %v %v", res, err)
	}
	m = admintest.Scrape(t, adm, "")
	m.Want(t, 3, "prism_udp_datagrams_total", "app=u", "from=client")
	m.Want(t, 3, "prism_udp_datagrams_total", "app=u", "from=origin")
	m.Want(t, 1, "prism_inbound_health_checks_total")
	for job, before := range map[string]float64{"a": eventsA, "b": eventsB} {
		if v, _ := m.Value("prism_logjob_events_total", "log_job="+job); v < before {
			t.Errorf("job %s's events went down across the reload: %v, before %v", job, v, before)
		}
	}

	// u's session is the replaced server's: the new one reads its client's
	// datagram off the handed-over socket, the old one its origin's reply.
	echoOn(t, c, "four")
	rec.terminal(t, 1) // h's session, ended by the drain: h's part is gone
	m = admintest.Scrape(t, adm, "")
	m.Want(t, 4, "prism_udp_datagrams_total", "app=u", "from=client")
	m.Want(t, 4, "prism_udp_datagrams_total", "app=u", "from=origin")
	m.Want(t, 1, "prism_inbound_health_checks_total")
}

// A replaced pipeline's job counters are added to the running job of the
// same name, delivery counters included; its gauges (queue, pending,
// spool size, oldest undelivered) are not: they are the running job's.
func TestCarriedJobCountersLeaveGaugesOut(t *testing.T) {
	c := carried{jobs: map[string]logjob.Stats{}}
	old := time.Unix(1700000000, 0)
	addJobCounts(c.jobs, []logjob.Stats{
		{Job: "r", Dataset: "d", Emitted: 10, Written: 9, Dropped: 1, Queued: 3,
			Delivery: &deliver.Stats{Accepted: 9, Delivered: 7, Pending: 2, SpoolBytes: 100, OldestUndelivered: old, Restored: 1}},
		{Job: "gone", Emitted: 5},
	})
	addJobCounts(c.jobs, []logjob.Stats{{Job: "r", Dataset: "d", Emitted: 1, Delivery: &deliver.Stats{Delivered: 2}}})
	now := time.Unix(1700000100, 0)
	got := c.jobStats([]logjob.Stats{
		{Job: "r", Dataset: "d", Emitted: 4, Written: 4, Queued: 1, Delivery: &deliver.Stats{Accepted: 4, Delivered: 1, Pending: 3, SpoolBytes: 7, OldestUndelivered: now}},
		{Job: "new", Emitted: 2},
	})
	r := got[0]
	if r.Emitted != 15 || r.Written != 13 || r.Dropped != 1 || r.Queued != 1 {
		t.Errorf("job r: %+v", r)
	}
	if d := *r.Delivery; d.Accepted != 13 || d.Delivered != 10 || d.Restored != 1 || d.Pending != 3 || d.SpoolBytes != 7 || !d.OldestUndelivered.Equal(now) {
		t.Errorf("job r's delivery: %+v", d)
	}
	if got[1].Emitted != 2 || len(got) != 2 {
		t.Errorf("jobs: %+v", got)
	}
}

// A session of an app that a reload changed is still listed (it goes on
// with the replaced server): DELETE /api/v1/sessions/{id} closes it too,
// with the operator's close record. It answered 404 "no open session".
func TestCloseASessionOfAReplacedApp(t *testing.T) {
	path := filepath.Join(t.TempDir(), "prism.yaml")
	listen, origin := testpeer.ClosedPort(t), testpeer.Echo(t)
	write := func(idle string) *config.Config {
		y := fmt.Sprintf("admin: {listen: \"127.0.0.1:0\"}\nnode: {colo: TST}\napps:\n  - id: web\n    listen: [%q]\n    origins: {addresses: [%q]}\n    timeouts: {idle: %s}\n", listen, origin, idle)
		if err := os.WriteFile(path, []byte(y), 0o644); err != nil {
			t.Fatal(err)
		}
		cfg, err := config.Load(path)
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	rec := newRecords()
	d := start(t, write("1m"), rec)
	adm := d.AdminAddr().String()
	held := roundTrip(t, listen, "hello\n")
	defer held.Close()
	id := rec.connects(t, 1)[0].SessionID.String()
	write("2m")
	if res, err := d.ReloadConfig(); err != nil || fmt.Sprint(res.Changed) != "[web]" {
		t.Fatalf("reload: %v %v", res, err)
	}
	if code, body := admintest.Do(t, "DELETE", adm, "/api/v1/sessions/"+id, ""); code != 200 {
		t.Fatalf("DELETE a session of the replaced server: %d %s", code, body)
	}
	e := rec.terminal(t, 1)[0]
	if e.SessionID.String() != id || e.Detail != admin.CloseDetail {
		t.Fatalf("terminal record %s %s %q, want the operator's close of %s", e.SessionID, e.Type, e.Detail, id)
	}
}
