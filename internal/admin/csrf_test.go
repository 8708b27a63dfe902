package admin

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/prismproxy/prism/internal/admin/admintest"
	"github.com/prismproxy/prism/internal/event"
)

// reloadCounting is an admin server on loopback, without a token, whose
// reload counts its calls.
func reloadCounting(t *testing.T) (*Server, *atomic.Int64) {
	t.Helper()
	var calls atomic.Int64
	s, err := New(Config{Listen: "127.0.0.1:0"}, &Parts{Tally: NewTally(nil), Registry: &event.Registry{},
		Reload: func() (any, error) { calls.Add(1); return map[string]any{}, nil }}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s, &calls
}

// A page on another origin that the operator happens to visit, in a real
// browser, POSTs to the loopback admin listener's /api/v1/reload without a
// body: a simple request, sent without a preflight, with Host 127.0.0.1.
// It is refused (it reloaded the config); the dashboard's own POST, same
// origin, goes through.
func TestCrossOriginReloadFromABrowserIsRefused(t *testing.T) {
	s, calls := reloadCounting(t)
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Shutdown(context.Background()) })
	adm := s.Addr().String()
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprintf(w, `<!doctype html><script>
window.result = null;
fetch("http://%s/api/v1/reload", {method: "POST", mode: "no-cors"})
  .then(() => { window.result = "answered"; }, e => { window.result = "failed: " + e; });
</script>`, adm)
	}))
	t.Cleanup(evil.Close)
	// localhost: another site than 127.0.0.1, as any page on the web is.
	evilURL := strings.Replace(evil.URL, "127.0.0.1", "localhost", 1)

	ctx := admintest.Chromium(t)
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Navigate(evilURL+"/")); err != nil {
		t.Fatal(err)
	}
	res, err := chromedp.Run(ctx, chromedp.Poll[string](`window.result`))
	if err != nil {
		t.Fatalf("the page's request never finished: %v", err)
	}
	if n := calls.Load(); n != 0 {
		t.Fatalf("a cross-origin page reloaded the config (%d calls; fetch %s)", n, res)
	}

	// The dashboard's own request.
	if err := chromedp.Do(ctx, chromedp.Navigate("http://"+adm+"/")); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`window.own = null; fetch("/api/v1/reload", {method: "POST"}).then(r => { window.own = String(r.status); }); true`)); err != nil {
		t.Fatal(err)
	}
	st, err := chromedp.Run(ctx, chromedp.Poll[string](`window.own`))
	if err != nil || st != "200" {
		t.Fatalf("the dashboard's own POST: %q %v", st, err)
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("reload calls after the dashboard's POST: %d, want 1", n)
	}
}

// What browsers send, crafted: a state-changing request from another
// origin is refused (403), one from the listener's own page and one from a
// client that sends neither header (prism status, curl) is served; reads
// are never refused for their origin (a cross-origin page cannot read the
// answer: no CORS headers).
func TestCrossOriginStateChangesAreRefused(t *testing.T) {
	s, calls := reloadCounting(t)
	const self = "http://127.0.0.1:9901"
	for _, tc := range []struct {
		name, method, path string
		hdr                map[string]string
		want               int
	}{
		{"curl", "POST", "/api/v1/reload", nil, 200},
		{"dashboard", "POST", "/api/v1/reload", map[string]string{"Origin": self, "Sec-Fetch-Site": "same-origin"}, 200},
		{"cross-site", "POST", "/api/v1/reload", map[string]string{"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}, 403},
		{"same-site other port", "POST", "/api/v1/reload", map[string]string{"Origin": "http://127.0.0.1:8080", "Sec-Fetch-Site": "same-site"}, 403},
		{"old browser, Origin only", "POST", "/api/v1/reload", map[string]string{"Origin": "https://evil.example"}, 403},
		{"opaque origin", "POST", "/api/v1/reload", map[string]string{"Origin": "null"}, 403},
		{"delete cross-site", "DELETE", "/api/v1/sessions/000000000000000000000000", map[string]string{"Sec-Fetch-Site": "cross-site"}, 403},
		{"delete from curl", "DELETE", "/api/v1/sessions/000000000000000000000000", nil, 404},
		{"read cross-site", "GET", "/api/v1/apps", map[string]string{"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}, 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(tc.method, self+tc.path, nil)
			for k, v := range tc.hdr {
				req.Header.Set(k, v)
			}
			rr := httptest.NewRecorder()
			s.srv.Handler.ServeHTTP(rr, req)
			if rr.Code != tc.want {
				t.Fatalf("%s %s: %d %s, want %d", tc.method, tc.path, rr.Code, rr.Body, tc.want)
			}
		})
	}
	if n := calls.Load(); n != 2 {
		t.Fatalf("reload calls: %d, want 2 (curl and the dashboard)", n)
	}
}
