// Package admintest helps tests read a running admin listener: scrape
// /metrics and parse it with the Prometheus text parser, read values by
// name and labels, get JSON from the API, and drive the dashboard in a real
// headless Chromium.
package admintest

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/prismproxy/prism/internal/testpeer"
)

// Get fetches path from the admin listener at addr and returns the status
// and body.
func Get(t testing.TB, addr, path, token string) (int, []byte) {
	t.Helper()
	return Do(t, http.MethodGet, addr, path, token)
}

// Do sends one request without a body.
func Do(t testing.TB, method, addr, path, token string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+addr+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read: %v", method, path, err)
	}
	return resp.StatusCode, b
}

// JSON gets path and decodes the answer into v; the status must be 200.
func JSON(t testing.TB, addr, path string, v any) {
	t.Helper()
	code, b := Get(t, addr, path, "")
	if code != http.StatusOK {
		t.Fatalf("GET %s: %d %s", path, code, b)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("GET %s: %v\n%s", path, err, b)
	}
}

// Metrics is one parsed scrape.
type Metrics struct {
	Raw      []byte
	Families map[string]*dto.MetricFamily
}

// Scrape reads and parses /metrics.
func Scrape(t testing.TB, addr, token string) *Metrics {
	t.Helper()
	code, b := Get(t, addr, "/metrics", token)
	if code != http.StatusOK {
		t.Fatalf("GET /metrics: %d %s", code, b)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(string(b)))
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return &Metrics{Raw: b, Families: fams}
}

// Value returns the value of the sample of family name whose labels
// include every pair of labels ("k=v"), and whether there is exactly one.
// Counters, gauges and untyped samples give their value; histograms their
// count.
func (m *Metrics) Value(name string, labels ...string) (float64, bool) {
	f := m.Families[name]
	if f == nil {
		return 0, false
	}
	var found []float64
	for _, s := range f.GetMetric() {
		if !hasLabels(s, labels) {
			continue
		}
		switch {
		case s.Counter != nil:
			found = append(found, s.Counter.GetValue())
		case s.Gauge != nil:
			found = append(found, s.Gauge.GetValue())
		case s.Histogram != nil:
			found = append(found, float64(s.Histogram.GetSampleCount()))
		case s.Untyped != nil:
			found = append(found, s.Untyped.GetValue())
		}
	}
	if len(found) != 1 {
		return 0, false
	}
	return found[0], true
}

// Want fails t unless the sample exists and has value want.
func (m *Metrics) Want(t testing.TB, want float64, name string, labels ...string) {
	t.Helper()
	v, ok := m.Value(name, labels...)
	if !ok {
		t.Errorf("%s{%s}: no single sample; have:\n%s", name, strings.Join(labels, ","), m.Samples(name))
		return
	}
	if v != want {
		t.Errorf("%s{%s} = %v, want %v", name, strings.Join(labels, ","), v, want)
	}
}

// Samples lists the lines of family name in the raw scrape (for messages).
func (m *Metrics) Samples(name string) string {
	var out []string
	for _, l := range strings.Split(string(m.Raw), "\n") {
		if strings.HasPrefix(l, name) {
			out = append(out, l)
		}
	}
	sort.Strings(out)
	return strings.Join(out, "\n")
}

func hasLabels(s *dto.Metric, want []string) bool {
	for _, kv := range want {
		k, v, _ := strings.Cut(kv, "=")
		ok := false
		for _, lp := range s.GetLabel() {
			if lp.GetName() == k && lp.GetValue() == v {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

// Chromium starts a fresh headless Chromium for the test (skipped when it
// is not installed, failed in CI) and returns a browser context that ends
// with the test.
func Chromium(t testing.TB) context.Context {
	t.Helper()
	bin := testpeer.Need(t, "chromium")
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(bin),
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Headless,
		chromedp.DisableGPU,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.WindowSize(1400, 1000),
	}
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelB := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelB(); cancelA() })
	if err := chromedp.Do(ctx); err != nil { // starts the browser
		if testpeer.InCI() {
			t.Fatalf("start chromium: %v", err)
		}
		t.Skipf("cannot start chromium: %v", err)
	}
	return ctx
}

// Screenshot saves a PNG of the page to the path in PRISM_SCREENSHOT, if
// set (how docs/admin-dashboard.png is made).
func Screenshot(t testing.TB, ctx context.Context) {
	t.Helper()
	path := os.Getenv("PRISM_SCREENSHOT")
	if path == "" {
		return
	}
	buf, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if err := os.WriteFile(path, buf, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot written to %s (%d bytes)", path, len(buf))
}
