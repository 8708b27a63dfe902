package admin

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prismproxy/prism/internal/event"

	"github.com/prismproxy/prism/internal/testpeer"
	"github.com/prismproxy/prism/internal/tlsedge"
)

// scrape is GET /metrics through s's whole handler.
func scrape(t *testing.T, s *Server) string {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, "http://127.0.0.1/metrics", nil)
	rr := httptest.NewRecorder()
	s.srv.Handler.ServeHTTP(rr, req)
	body, _ := io.ReadAll(rr.Body)
	if rr.Code != http.StatusOK {
		t.Fatalf("GET /metrics: %d\n%s", rr.Code, body)
	}
	return string(body)
}

// An RSA and an ECDSA certificate for one name (docs/tls.md allows it), and
// a second RSA one for it: the scrape succeeds (it failed whole with 500 on
// the duplicate label set), each key type has its series, and a type held
// twice reports the earlier expiry.
func TestCertificateExpiryOfTwoCertificatesForOneName(t *testing.T) {
	soon, later := time.Unix(1900000000, 0), time.Unix(1950000000, 0)
	certs := []tlsedge.Certificate{
		{Name: "web.test", KeyType: "rsa", NotAfter: later},
		{Name: "web.test", KeyType: "ecdsa", NotAfter: later},
		{Name: "web.test", KeyType: "rsa", NotAfter: soon},
	}
	s, err := New(Config{Listen: "127.0.0.1:0"}, &Parts{Tally: NewTally([]string{"tls"}),
		Apps: []App{{ID: "tls", Protocol: "tcp", Certs: func() []tlsedge.Certificate { return certs }}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	body := scrape(t, s)
	for _, want := range []string{
		`prism_tls_certificate_expiry_timestamp_seconds{app="tls",key_type="rsa",name="web.test"} 1.9e+09`,
		`prism_tls_certificate_expiry_timestamp_seconds{app="tls",key_type="ecdsa",name="web.test"} 1.95e+09`,
	} {
		if !strings.Contains(body, want+"\n") {
			t.Errorf("no %s in\n%s", want, grepLines(body, "certificate_expiry"))
		}
	}
	bin := testpeer.Need(t, "promtool")
	f := testpeer.WriteFile(t, "metrics.txt", body)
	if out, err := testpeer.Run(t, 30*time.Second, "sh", "-c", bin+" check metrics < "+f); err != nil {
		t.Fatalf("promtool check metrics: %v\n%s", err, out)
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// liveSession is an open session of app with the given byte counts, in
// reg and counted by tl as connected.
func liveSession(reg *event.Registry, tl *Tally, app string, now time.Time, fromClient, fromOrigin int64) *event.Live {
	e := event.Event{Type: event.Connect, App: app, SessionID: event.NewID(now), StartTime: now, ConnectTime: now,
		ClientAddr: netip.MustParseAddrPort("192.0.2.1:1000"), OriginAddr: netip.MustParseAddrPort("10.0.0.1:80")}
	l := event.NewLive(e)
	l.ClientBytes.Store(fromClient)
	l.OriginBytes.Store(fromOrigin)
	reg.Add(l)
	tl.Emit(l.Base())
	return l
}

// endSession ends l as the data path does: out of the registry, then its
// terminal record (with its bytes) to the tally.
func endSession(reg *event.Registry, tl *Tally, l *event.Live) {
	reg.Remove(l)
	e := *l.Base()
	e.Type, e.Status = event.Disconnect, event.StatusOK
	e.ClientBytes, e.OriginBytes = l.ClientBytes.Load(), l.OriginBytes.Load()
	tl.Emit(&e)
}

// A session that ends during a scrape is counted once in the byte totals,
// on that scrape and the next. The collector walked the open sessions
// first and read the tally after: a session ending in between was counted
// twice (open in the walk, ended in the tally), and monotonic kept the
// double count.
func TestScrapeDuringASessionEndCountsItsBytesOnce(t *testing.T) {
	reg, tl := &event.Registry{}, NewTally([]string{"a"})
	l := liveSession(reg, tl, "a", time.Now(), 1000, 2000)
	var ended atomic.Bool
	p := &Parts{Registry: reg, Tally: tl}
	// The collector asks for the apps once per scrape (it was between the
	// walk and the tally read); the first time, the session ends then.
	p.AppList = func() []App {
		if !ended.Swap(true) {
			defer endSession(reg, tl, l)
		}
		return []App{{ID: "a", Protocol: "tcp"}}
	}
	s, err := New(Config{Listen: "127.0.0.1:0"}, p, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		body := scrape(t, s)
		for _, want := range []string{
			`prism_transferred_bytes_total{app="a",direction="client_to_origin"} 1000`,
			`prism_transferred_bytes_total{app="a",direction="origin_to_client"} 2000`,
		} {
			if !strings.Contains(body, want+"\n") {
				t.Errorf("scrape %d: no %s in\n%s", i, want, grepLines(body, "transferred_bytes"))
			}
		}
	}
}

// The summary's open sessions are cached for liveTTL; its ended-session
// counts must come from the same moment. A session that ends while the
// cached walk still shows it open was counted twice: bytes in the walk and
// in a fresh tally, active and ended both 1.
func TestSummaryCountsAnEndingSessionOnce(t *testing.T) {
	reg, tl := &event.Registry{}, NewTally([]string{"a"})
	now := time.Now()
	l := liveSession(reg, tl, "a", now, 1000, 2000)
	s, err := New(Config{Listen: "127.0.0.1:0"}, &Parts{Apps: []App{{ID: "a", Protocol: "tcp"}}, Registry: reg, Tally: tl}, nil)
	if err != nil {
		t.Fatal(err)
	}
	check := func(when string, at time.Time, active int, ended uint64) {
		t.Helper()
		a := s.buildSummary(at).Apps[0]
		if a.BytesFromClient != 1000 || a.BytesFromOrigin != 2000 || a.Active != active || a.Ended != ended {
			t.Errorf("%s: active %d ended %d bytes %d/%d, want active %d ended %d bytes 1000/2000",
				when, a.Active, a.Ended, a.BytesFromClient, a.BytesFromOrigin, active, ended)
		}
	}
	check("open", now, 1, 0)
	endSession(reg, tl, l)
	check("ended, the cached view", now.Add(liveTTL/5), 1, 0)
	check("ended, a new view", now.Add(liveTTL+time.Millisecond), 0, 1)
}

// Clients of a unix-socket listener have no address: top_clients lists
// them by the socket's path, as the session list does (it showed
// "invalid IP"); one whose trusted PROXY header gave an address is listed
// by it.
func TestTopClientsOfAUnixSocketListener(t *testing.T) {
	reg, tl := &event.Registry{}, NewTally([]string{"u"})
	now := time.Now()
	for i, client := range []string{"", "", "198.51.100.9:4000"} {
		e := event.Event{Type: event.Connect, App: "u", SessionID: event.NewID(now.Add(time.Duration(i))), StartTime: now,
			ConnectTime: now, ClientProto: event.ProtoUnix, ClientPath: "/run/prism/app.sock"}
		if client != "" {
			e.ClientAddr = netip.MustParseAddrPort(client)
		}
		l := event.NewLive(e)
		reg.Add(l)
		tl.Emit(l.Base())
	}
	s, err := New(Config{Listen: "127.0.0.1:0"}, &Parts{Apps: []App{{ID: "u", Protocol: "tcp"}}, Registry: reg, Tally: tl}, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := fmt.Sprint(s.buildSummary(now).TopClients)
	if want := "[{unix:/run/prism/app.sock 2} {198.51.100.9 1}]"; got != want {
		t.Fatalf("top clients %s, want %s", got, want)
	}
}
