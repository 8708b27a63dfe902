package admin

import (
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prismproxy/prism/internal/event"
)

func TestConfigValidate(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "token")
	if err := os.WriteFile(good, []byte("0123456789abcdef0123\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	short := filepath.Join(dir, "short")
	if err := os.WriteFile(short, []byte("abc\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		cfg  Config
		want string // "" valid
	}{
		{"off", Config{}, ""},
		{"loopback v4", Config{Listen: "127.0.0.1:9901"}, ""},
		{"loopback v6", Config{Listen: "[::1]:9901"}, ""},
		{"localhost", Config{Listen: "localhost:9901"}, ""},
		{"public without token", Config{Listen: "0.0.0.0:9901"}, "listen: \"0.0.0.0:9901\" is not a loopback address: a public admin listener needs token, token_file or tls.client_ca"},
		{"every address without token", Config{Listen: ":9901"}, "not a loopback address"},
		{"public with token", Config{Listen: "192.0.2.1:9901", Token: "0123456789abcdef"}, ""},
		{"public with token file", Config{Listen: "192.0.2.1:9901", TokenFile: good}, ""},
		{"short token", Config{Listen: "127.0.0.1:9901", Token: "short"}, "token: too short"},
		{"both", Config{Listen: "127.0.0.1:9901", Token: "0123456789abcdef", TokenFile: good}, "token_file: give token or token_file, not both"},
		{"missing token file", Config{Listen: "0.0.0.0:1", TokenFile: filepath.Join(dir, "nope")}, "token_file: open"},
		{"empty token file", Config{Listen: "0.0.0.0:1", TokenFile: empty}, "token_file:"},
		{"bad address", Config{Listen: "9901"}, "listen: bad address"},
		// validate said ok and prism run failed at the bind, without the key
		{"port not a number", Config{Listen: "127.0.0.1:abc"}, `listen: bad port "abc"`},
		{"port out of range", Config{Listen: "127.0.0.1:99999"}, `listen: bad port "99999"`},
		{"negative port", Config{Listen: "127.0.0.1:-1"}, `listen: bad port "-1"`},
		{"any free port", Config{Listen: "127.0.0.1:0"}, ""},
		{"short token from a file", Config{Listen: "127.0.0.1:9901", TokenFile: short}, "token_file: too short"},
		{"token without listen", Config{Token: "0123456789abcdef"}, "listen: missing"},
		{"pprof without listen", Config{Pprof: true}, "listen: missing"},
		{"public with client certificates", Config{Listen: "192.0.2.1:9901", TLS: TLSConfig{Cert: good, Key: good, ClientCA: good}}, ""},
		{"tls without key", Config{Listen: "127.0.0.1:9901", TLS: TLSConfig{Cert: good}}, "tls: give both cert and key"},
		{"tls file missing", Config{Listen: "127.0.0.1:9901", TLS: TLSConfig{Cert: good, Key: filepath.Join(dir, "nope")}}, "tls.key: stat"},
		{"public with tls but no client_ca", Config{Listen: "192.0.2.1:9901", TLS: TLSConfig{Cert: good, Key: good}}, "not a loopback address"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			errs := tc.cfg.Validate()
			if tc.want == "" {
				if len(errs) > 0 {
					t.Fatalf("unexpected: %v", errs)
				}
				return
			}
			if len(errs) == 0 || !strings.Contains(errs[0].Error(), tc.want) {
				t.Fatalf("got %v, want %q", errs, tc.want)
			}
		})
	}
}

func TestTallyCountsTerminalRecords(t *testing.T) {
	tl := NewTally([]string{"a"})
	now := time.Now()
	emit := func(typ event.Type, status int, f func(*event.Event)) {
		e := event.New("a", event.NewID(now))
		e.Type, e.Status = typ, status
		if f != nil {
			f(&e)
		}
		tl.Emit(&e)
	}
	emit(event.Connect, 0, nil)
	emit(event.Disconnect, 200, func(e *event.Event) {
		e.ConnectTime, e.ClientBytes, e.OriginBytes = now, 10, 20
		e.Firewall, e.FirewallMatch = true, event.FirewallWhitelistIP
		e.TLSMode, e.ClientTLS.Status = "flexible", "OK"
	})
	emit(event.ClientFiltered, 403, func(e *event.Event) { e.Firewall, e.FirewallMatch = true, event.FirewallBlockCountry })
	emit(event.TLSError, 443, func(e *event.Event) { e.TLSMode, e.ClientTLS.Status = "full", "HANDSHAKE_FAILED" })
	emit(event.OriginError, 777, nil) // unknown status → 999
	emit(event.Interim, 0, nil)       // not counted
	other := event.New("other", event.NewID(now))
	other.Type = event.Disconnect
	tl.Emit(&other) // another app: ignored

	c, ok := tl.App("a")
	if !ok {
		t.Fatal("no app a")
	}
	if c.Opened != 1 || c.Terminal() != 4 || c.Started() != 4 || c.ClientBytes != 10 || c.OriginBytes != 20 {
		t.Fatalf("counts: %+v (terminal %d, started %d)", c, c.Terminal(), c.Started())
	}
	want := map[string]uint64{"disconnect/200": 1, "clientFiltered/403": 1, "tlsError/443": 1, "originError/999": 1}
	for _, r := range c.Records {
		k := r.Label + "/" + strconv.Itoa(r.Code)
		if want[k] != r.N {
			t.Errorf("%s = %d, want %d", k, r.N, want[k])
		}
		delete(want, k)
	}
	if len(want) > 0 {
		t.Errorf("missing records: %v", want)
	}
	if len(c.Firewall) != 2 || len(c.TLS) != 2 {
		t.Errorf("firewall %v tls %v", c.Firewall, c.TLS)
	}
	if _, ok := tl.App("other"); ok {
		t.Error("an app that was not configured has counts")
	}
	d := event.New("a", event.NewID(now))
	d.Type, d.Status, d.Firewall, d.TLSMode = event.Disconnect, 200, true, "strict"
	if n := testing.AllocsPerRun(100, func() { tl.Emit(&d) }); n > 0 {
		t.Errorf("Emit allocates %v times", n)
	}
}

// 100k live sessions: a page costs one walk and holds only limit sessions;
// the pages together list every session once, in id order.
func TestSessionsPagesOver100kLiveSessions(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	reg := new(event.Registry)
	const n = 100_000
	start := time.Now().Add(-time.Minute)
	for i := range n {
		e := event.New([]string{"a", "b"}[i%2], event.NewID(start))
		e.StartTime = start
		e.ClientAddr = netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), 1000)
		reg.Add(event.NewLive(e))
	}
	s := &Server{p: &Parts{Registry: reg}, sessionSlots: make(chan struct{}, 2)}
	var last event.ID
	seen := 0
	after := ""
	for pages := 0; ; pages++ {
		if pages > n/MaxSessionLimit+1 {
			t.Fatal("too many pages")
		}
		f, err := parseSessionFilter(httptest.NewRequest(http.MethodGet, "/api/v1/sessions?app=a&limit=1000&after="+after, nil))
		if err != nil {
			t.Fatal(err)
		}
		got := listSessions(s.p.Registry, f, time.Now())
		if got.Matched != n/2 {
			t.Fatalf("matched %d", got.Matched)
		}
		for _, x := range got.Sessions {
			var id event.ID
			b, err := hex.DecodeString(x.ID)
			if err != nil {
				t.Fatal(err)
			}
			copy(id[:], b)
			if string(id[:]) <= string(last[:]) {
				t.Fatalf("ids out of order at %d", seen)
			}
			last = id
			seen++
		}
		if got.Next == "" {
			break
		}
		after = got.Next
	}
	if seen != n/2 {
		t.Fatalf("listed %d sessions, want %d", seen, n/2)
	}
	f, _ := parseSessionFilter(httptest.NewRequest(http.MethodGet, "/api/v1/sessions?client=10.0.0.0/24", nil))
	if got := listSessions(reg, f, time.Now()); got.Matched != 256 || len(got.Sessions) != DefaultSessionLimit {
		t.Fatalf("client prefix: matched %d, page %d", got.Matched, len(got.Sessions))
	}
}

func TestReadyzAnswers503UntilReady(t *testing.T) {
	var notReady error = errors.New("listeners not bound yet")
	s, err := New(Config{Listen: "127.0.0.1:0"}, &Parts{Tally: NewTally(nil), Ready: func() error { return notReady }}, nil)
	if err != nil {
		t.Fatal(err)
	}
	rr := httptest.NewRecorder()
	s.srv.Handler.ServeHTTP(rr, localRequest("/readyz"))
	if rr.Code != http.StatusServiceUnavailable || !strings.Contains(rr.Body.String(), "listeners not bound") {
		t.Fatalf("readyz: %d %s", rr.Code, rr.Body)
	}
	notReady = nil
	rr = httptest.NewRecorder()
	s.srv.Handler.ServeHTTP(rr, localRequest("/readyz"))
	if rr.Code != http.StatusOK {
		t.Fatalf("readyz: %d", rr.Code)
	}
}

func TestDashboardAssetsEmbedded(t *testing.T) {
	s, err := New(Config{Listen: "127.0.0.1:0"}, &Parts{Tally: NewTally(nil)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{"/": "<title>prism</title>", "/app.js": "api/v1/summary", "/style.css": "--accent"} {
		rr := httptest.NewRecorder()
		s.srv.Handler.ServeHTTP(rr, localRequest(path))
		if rr.Code != http.StatusOK || !strings.Contains(rr.Body.String(), want) {
			t.Errorf("%s: %d", path, rr.Code)
		}
		if csp := rr.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
			t.Errorf("%s: CSP %q", path, csp)
		}
	}
}

// Without a token, only loopback Host names are answered (DNS rebinding).
func TestLoopbackHostOnlyWithoutToken(t *testing.T) {
	s, err := New(Config{Listen: "127.0.0.1:0"}, &Parts{Tally: NewTally(nil)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for host, want := range map[string]int{"127.0.0.1:9901": 200, "localhost:9901": 200, "[::1]:9901": 200, "127.0.0.1": 200,
		"evil.example:9901": 403, "evil.example": 403, "192.0.2.1:9901": 403} {
		req := httptest.NewRequest(http.MethodGet, "/healthz", nil)
		req.Host = host
		rr := httptest.NewRecorder()
		s.srv.Handler.ServeHTTP(rr, req)
		if rr.Code != want {
			t.Errorf("Host %s: %d, want %d", host, rr.Code, want)
		}
	}
}

// localRequest is a GET of path as a local client sends it.
func localRequest(path string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, path, nil)
	r.Host = "127.0.0.1:9901"
	return r
}
