package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/prismproxy/prism/internal/admin"
	"github.com/prismproxy/prism/internal/admin/admintest"
	"github.com/prismproxy/prism/internal/config"
	"github.com/prismproxy/prism/internal/event"
	"github.com/prismproxy/prism/internal/logjob"
	"github.com/prismproxy/prism/internal/testpeer"
)

// backgroundShutdown is a Shutdown running off the test's goroutine.
type backgroundShutdown struct {
	done chan struct{} // closed when it returned
	err  error         // what it returned, once done is closed
}

// shutdownInBackground starts d.Shutdown with a drain deadline far beyond
// the test's. When the test ends it closes hold (the connections that
// keep the drain going) and waits for Shutdown, so that a failing test
// still ends.
func shutdownInBackground(t *testing.T, d *Daemon, hold ...io.Closer) *backgroundShutdown {
	t.Helper()
	s := &backgroundShutdown{done: make(chan struct{})}
	go func() {
		defer close(s.done)
		ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
		defer cancel()
		s.err = d.Shutdown(ctx)
	}()
	t.Cleanup(func() {
		for _, c := range hold {
			c.Close()
		}
		select {
		case <-s.done:
		case <-time.After(30 * time.Second):
			t.Error("Shutdown did not return once the test's connections were closed")
		}
	})
	return s
}

// wait fails t unless Shutdown returns nil within waitFor.
func (s *backgroundShutdown) wait(t *testing.T) {
	t.Helper()
	select {
	case <-s.done:
		if s.err != nil {
			t.Fatalf("shutdown: %v", s.err)
		}
	case <-time.After(waitFor):
		t.Fatal("Shutdown did not return")
	}
}

// adminDuringShutdown makes one admin request off the test's goroutine
// and fails the test unless it answers within waitFor: a read that waits
// for the daemon's lock while Shutdown drains does not answer until the
// drain ends, which the open connections hold off.
func adminDuringShutdown(t *testing.T, method, addr, path, what string) adminRead {
	t.Helper()
	ch := make(chan adminRead, 1)
	go func() {
		req, err := http.NewRequest(method, "http://"+addr+path, nil)
		if err != nil {
			ch <- adminRead{err: err}
			return
		}
		resp, err := (&http.Client{Timeout: time.Minute}).Do(req)
		if err != nil {
			ch <- adminRead{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		ch <- adminRead{code: resp.StatusCode, body: b, err: err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatalf("%s %s %s: %v", method, path, what, r.err)
		}
		return r
	case <-time.After(waitFor):
		t.Fatalf("%s %s %s: no answer: the admin request waits for the drain to end", method, path, what)
	}
	return adminRead{}
}

func parseMetrics(t *testing.T, body []byte) *admintest.Metrics {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return &admintest.Metrics{Raw: body, Families: fams}
}

// TestAdminAnswersWhileShutdownDrains: a stop drains the open connections
// for shutdown.drain_timeout (here an hour: two TCP connections held open
// by the test). Shutdown held the daemon's lock for the whole drain, and
// every admin read that takes it (GET /metrics, /api/v1/sessions,
// /api/v1/summary, /readyz) waited for the drain to end: an operator
// watching the drain saw the scrapes hang. Now they answer during the
// drain and show it as it goes: the connections still open, the UDP
// session the stop ended at once, a connection the operator closes through
// the API during the drain counted as it ends (the counters move), and
// /readyz says prism is stopping. The
// drain's start is signalled by the UDP session's terminal record (UDP
// sessions end as the stop begins, docs/udp.md).
func TestAdminAnswersWhileShutdownDrains(t *testing.T) {
	tcpOrigin, udpOrigin := testpeer.Echo(t), testpeer.StartUDPEcho(t, "")
	cfg, err := config.Parse("test.yaml", []byte(fmt.Sprintf(`node: {colo: TST}
admin: {listen: "127.0.0.1:0"}
shutdown: {drain_timeout: 1h}
apps:
  - id: web
    listen: ["127.0.0.1:0"]
    origins: {addresses: [%q]}
  - id: dns
    protocol: udp
    listen: ["127.0.0.1:0"]
    origins: {addresses: [%q]}
    udp: {idle_timeout: 1h}
`, tcpOrigin, udpOrigin.Addr())))
	if err != nil {
		t.Fatal(err)
	}
	rec := newRecords()
	d, err := New(cfg, slog.New(slog.DiscardHandler), WithEmitter(rec))
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	adm, web, dns := d.AdminAddr().String(), d.Addrs("web")[0].String(), d.Addrs("dns")[0].String()

	c1, c2 := roundTrip(t, web, "one\n"), roundTrip(t, web, "two\n")
	u, err := net.Dial("udp", dns)
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	echoOn(t, u, "ping")
	rec.connects(t, 3)

	stop := shutdownInBackground(t, d, c1, c2)
	if e := rec.terminal(t, 1)[0]; e.App != "dns" || e.Type != event.Disconnect {
		t.Fatalf("first record of the stop: %s %s %d %q, want the UDP session's disconnect", e.App, e.Type, e.Status, e.Detail)
	}

	// The stop has begun, the two TCP connections hold the drain.
	r := adminDuringShutdown(t, http.MethodGet, adm, "/api/v1/sessions?app=web", "during the drain")
	var page admin.SessionsJSON
	if err := json.Unmarshal(r.body, &page); r.code != http.StatusOK || err != nil || page.Matched != 2 {
		t.Fatalf("sessions during the drain: %d %v %s; want the 2 open connections", r.code, err, r.body)
	}
	r = adminDuringShutdown(t, http.MethodGet, adm, "/metrics", "during the drain")
	if r.code != http.StatusOK {
		t.Fatalf("/metrics during the drain: %d %s", r.code, r.body)
	}
	m := parseMetrics(t, r.body)
	m.Want(t, 2, "prism_sessions_active", "app=web")
	m.Want(t, 0, "prism_sessions_active", "app=dns")
	m.Want(t, 1, "prism_session_records_total", "app=dns", "event=disconnect", "status=200")
	r = adminDuringShutdown(t, http.MethodGet, adm, "/readyz", "during the drain")
	if r.code != http.StatusServiceUnavailable || !strings.Contains(string(r.body), "stopping") {
		t.Errorf("/readyz during the drain: %d %q; want 503, stopping (no longer accepting)", r.code, r.body)
	}
	r = adminDuringShutdown(t, http.MethodGet, adm, "/api/v1/summary", "during the drain")
	var sum admin.SummaryJSON
	if err := json.Unmarshal(r.body, &sum); r.code != http.StatusOK || err != nil || sum.Ready || !strings.Contains(sum.NotReady, "stopping") {
		t.Errorf("summary during the drain: %d %v ready %v %q", r.code, err, sum.Ready, sum.NotReady)
	}

	// The operator closes one connection through the API (it held up the
	// drain): it ends at once, and is counted as it ends.
	var id string
	for _, ss := range page.Sessions {
		if ss.Client == c2.LocalAddr().String() {
			id = ss.ID
		}
	}
	if r = adminDuringShutdown(t, http.MethodDelete, adm, "/api/v1/sessions/"+id, "during the drain"); r.code != http.StatusOK {
		t.Fatalf("DELETE session %q during the drain: %d %s", id, r.code, r.body)
	}
	if e := rec.terminal(t, 1)[0]; e.App != "web" || e.SessionID.String() != id || e.Detail != admin.CloseDetail {
		t.Fatalf("record %s %s %s %q, want the disconnect of web's session %s", e.App, e.Type, e.SessionID, e.Detail, id)
	}
	r = adminDuringShutdown(t, http.MethodGet, adm, "/metrics", "during the drain, one connection left")
	m = parseMetrics(t, r.body)
	m.Want(t, 1, "prism_sessions_active", "app=web")
	m.Want(t, 1, "prism_session_records_total", "app=web", "event=disconnect", "status=200")

	// The other one was open through it all; once it ends, so does the
	// drain, and then the admin listener.
	echoOn(t, c1, "still open\n")
	select {
	case <-stop.done:
		t.Fatalf("Shutdown returned with a connection open: %v", stop.err)
	default:
	}
	c1.Close()
	stop.wait(t)
	if c, err := net.Dial("tcp", adm); err == nil {
		c.Close()
		t.Error("the admin listener still accepts after Shutdown")
	}
	if n := rec.Count(func(e *event.Event) bool { return e.Type.Terminal() }); n != 3 {
		t.Errorf("%d terminal records, want 3", n)
	}
}

// TestAdminAnswersWhileShutdownFlushesTheLogJobs: once the drain has
// ended, Shutdown flushes every log job (up to FlushTimeout, 15 s, when a
// destination is slow or down). The admin listener was closed before that
// flush: the last scrape of a stopping prism could not show whether its
// records got out. Now it answers until the log jobs are flushed (here: job
// h's http destination holds the batch), showing the job's counters, and
// closes only then.
func TestAdminAnswersWhileShutdownFlushesTheLogJobs(t *testing.T) {
	rcv := newHoldingReceiver(t)
	origin := testpeer.Echo(t)
	// A batch goes out only when the job is closed (max_interval 1h): the
	// receiver's first request is Shutdown's flush.
	cfg, err := config.Parse("test.yaml", []byte(fmt.Sprintf(`node: {colo: TST}
admin: {listen: "127.0.0.1:0"}
shutdown: {drain_timeout: 1h}
apps:
  - id: web
    listen: ["127.0.0.1:0"]
    origins: {addresses: [%q]}
log_jobs:
  - name: h
    dataset: spectrum_events
    batch: {max_interval: 1h}
    destination: {type: http, url: %q, compression: none, flush_timeout: 10s}
`, origin, rcv.url)))
	if err != nil {
		t.Fatal(err)
	}
	rec := newRecords()
	d, err := New(cfg, slog.New(slog.DiscardHandler), WithEmitter(rec))
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	adm := d.AdminAddr().String()
	shortConn(t, d.Addrs("web")[0].String(), "hello\n")
	rec.terminal(t, 1) // h has its connect and disconnect (the pipeline gets events first)

	stop := shutdownInBackground(t, d, closerFunc(rcv.release))
	select {
	case <-rcv.arrived: // no connection left to drain: the flush has begun, the receiver holds it
	case <-stop.done:
		t.Fatalf("Shutdown returned before job h flushed: %v", stop.err)
	case <-time.After(waitFor):
		t.Fatal("job h sent nothing")
	}
	r := adminDuringShutdown(t, http.MethodGet, adm, "/api/v1/jobs", "while the log jobs flush")
	var jobs struct{ Jobs []logjob.Stats }
	if err := json.Unmarshal(r.body, &jobs); r.code != http.StatusOK || err != nil {
		t.Fatalf("/api/v1/jobs while the log jobs flush: %d %v %s", r.code, err, r.body)
	}
	if h, ok := jobNamed(jobs.Jobs, "h"); !ok || h.Emitted != 2 || h.Delivery == nil || h.Delivery.Delivered != 0 {
		t.Errorf("job h while it flushes: %+v %+v; want its 2 records, none delivered yet", h, h.Delivery)
	}
	r = adminDuringShutdown(t, http.MethodGet, adm, "/readyz", "while the log jobs flush")
	if r.code != http.StatusServiceUnavailable {
		t.Errorf("/readyz while the log jobs flush: %d %q; want 503", r.code, r.body)
	}

	rcv.release()
	stop.wait(t)
	if n := rcv.received(); n != 2 {
		t.Errorf("the receiver got %d records, want 2", n)
	}
	if c, err := net.Dial("tcp", adm); err == nil {
		c.Close()
		t.Error("the admin listener still accepts after Shutdown")
	}
}

// closerFunc is f as an io.Closer.
type closerFunc func()

func (f closerFunc) Close() error { f(); return nil }

// TestReloadDuringShutdownIsRefused: POST /api/v1/reload while prism
// drains. Shutdown holds reloadMu to the end, so the reload waited for
// the whole drain and the flush (its request hung), and then ran on the
// stopped daemon: it would have started the apps the file added, after
// Shutdown returned. Now a reload is refused as soon as a stop has begun,
// at once (422, "stopping"), and only reopens the log files, as SIGHUP
// does while prism drains; nothing the file adds ever listens.
func TestReloadDuringShutdownIsRefused(t *testing.T) {
	origin, listen, added := testpeer.Echo(t), testpeer.ClosedPort(t), testpeer.ClosedPort(t)
	udpOrigin := testpeer.StartUDPEcho(t, "")
	path := filepath.Join(t.TempDir(), "prism.yaml")
	write := func(apps string) {
		t.Helper()
		y := fmt.Sprintf(`node: {colo: TST}
admin: {listen: "127.0.0.1:0"}
shutdown: {drain_timeout: 1h}
apps:
  - id: web
    listen: [%q]
    origins: {addresses: [%q]}
  - id: dns
    protocol: udp
    listen: ["127.0.0.1:0"]
    origins: {addresses: [%q]}
    udp: {idle_timeout: 1h}
`, listen, origin, udpOrigin.Addr()) + apps
		if err := os.WriteFile(path, []byte(y), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("")
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	rec := newRecords()
	d, err := New(cfg, slog.New(slog.DiscardHandler), WithEmitter(rec))
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	adm := d.AdminAddr().String()
	c := roundTrip(t, listen, "hello\n")
	u, err := net.Dial("udp", d.Addrs("dns")[0].String())
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	echoOn(t, u, "ping")
	rec.connects(t, 2)

	stop := shutdownInBackground(t, d, c)
	// The stop has begun: it ended the UDP session; the TCP connection
	// holds the drain.
	if e := rec.terminal(t, 1)[0]; e.App != "dns" {
		t.Fatalf("first record of the stop: %s %s, want the UDP session's", e.App, e.Type)
	}
	write(fmt.Sprintf("  - id: late\n    listen: [%q]\n    origins: {addresses: [%q]}\n", added, origin))
	r := adminDuringShutdown(t, http.MethodPost, adm, "/api/v1/reload", "during the drain")
	if r.code != http.StatusUnprocessableEntity || !strings.Contains(string(r.body), "stopping") {
		t.Errorf("POST /api/v1/reload during the drain: %d %s; want 422, stopping", r.code, r.body)
	}
	if _, err := d.ReloadConfig(); err == nil || !strings.Contains(err.Error(), "stopping") {
		t.Errorf("ReloadConfig during the drain: %v; want refused, stopping", err)
	}

	echoOn(t, c, "still open\n")
	c.Close()
	stop.wait(t)
	if a, err := net.Dial("tcp", added); err == nil {
		a.Close()
		t.Error("an app the reload during the drain added listens after Shutdown")
	}
	if st := d.ReloadStats(); st.OK != 0 {
		t.Errorf("reload stats %+v: a reload ran during the stop", st)
	}
	if got := d.Config(); len(got.Apps) != 2 {
		t.Errorf("running config after the stop has %d apps, want its 2", len(got.Apps))
	}
}
