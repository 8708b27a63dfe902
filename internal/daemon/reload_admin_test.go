package daemon

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prismproxy/prism/internal/config"
	"github.com/prismproxy/prism/internal/event"
	"github.com/prismproxy/prism/internal/event/eventtest"
	"github.com/prismproxy/prism/internal/geo/geotest"
	"github.com/prismproxy/prism/internal/testpeer"
)

// TestReloadShowsTheCurrentAppsInTheAdminAPI: after a reload that adds app
// b and removes app a, /api/v1/apps lists b (with its bound address) and
// not a, and /metrics counts b's sessions and has no series of a.
func TestReloadShowsTheCurrentAppsInTheAdminAPI(t *testing.T) {
	origin, addrA, addrB := testpeer.Echo(t), testpeer.ClosedPort(t), testpeer.ClosedPort(t)
	path := filepath.Join(t.TempDir(), "prism.yaml")
	app := func(id, listen string) string {
		return fmt.Sprintf("  - id: %s\n    listen: [\"%s\"]\n    origins: {addresses: [\"%s\"]}\n", id, listen, origin)
	}
	write := func(apps string) {
		if err := os.WriteFile(path, []byte("admin: {listen: \"127.0.0.1:0\"}\nnode: {colo: TST}\nshutdown: {drain_timeout: 300ms}\napps:\n"+apps), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(app("a", addrA))
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	ended := eventtest.New()
	ended.Timeout = 5 * time.Second
	d := start(t, cfg, ended)
	base := "http://" + d.AdminAddr().String()
	get := func(p string) string {
		t.Helper()
		resp, err := http.Get(base + p)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s: %d %s", p, resp.StatusCode, b)
		}
		return string(b)
	}
	apps := func() (ids []string, bound map[string][]string) {
		t.Helper()
		var out struct {
			Apps []struct {
				ID    string   `json:"id"`
				Bound []string `json:"bound"`
			} `json:"apps"`
		}
		if err := json.Unmarshal([]byte(get("/api/v1/apps")), &out); err != nil {
			t.Fatal(err)
		}
		bound = map[string][]string{}
		for _, a := range out.Apps {
			ids = append(ids, a.ID)
			bound[a.ID] = a.Bound
		}
		sort.Strings(ids)
		return ids, bound
	}
	if ids, _ := apps(); fmt.Sprint(ids) != "[a]" {
		t.Fatalf("apps before the reload: %v", ids)
	}

	write(app("b", addrB))
	res, err := d.ReloadConfig()
	if err != nil || fmt.Sprint(res.Added, res.Removed) != "[b] [a]" {
		t.Fatalf("reload: %v %v", res, err)
	}
	ids, bound := apps()
	if fmt.Sprint(ids) != "[b]" || fmt.Sprint(bound["b"]) != "["+addrB+"]" {
		t.Fatalf("apps after the reload: %v, bound %v (want [b] on %s)", ids, bound, addrB)
	}
	const n = 3
	for i := range n {
		c, err := net.Dial("tcp", addrB)
		if err != nil {
			t.Fatal(err)
		}
		echoOn(t, c, fmt.Sprint("hello ", i))
		c.Close()
	}
	// The tally counts a record before the test emitter sees it.
	ended.Take(t, n, "disconnect", func(e *event.Event) bool { return e.Type == event.Disconnect })
	metrics := get("/metrics")
	want := fmt.Sprintf(`prism_session_records_total{app="b",event="disconnect",status="200"} %d`, n)
	if !strings.Contains(metrics, want) {
		t.Fatalf("no %s in /metrics:\n%s", want, grepLines(metrics, `app="b"`))
	}
	if strings.Contains(metrics, `app="a"`) {
		t.Errorf("the removed app is still in /metrics:\n%s", grepLines(metrics, `app="a"`))
	}
	if !strings.Contains(metrics, fmt.Sprintf(`prism_sessions_opened_total{app="b",protocol="tcp"} %d`, n)) {
		t.Errorf("opened sessions of b:\n%s", grepLines(metrics, "prism_sessions_opened_total"))
	}
}

// TestReloadShowsTheCurrentGeoIPInMetrics: a reload that adds a GeoIP
// database (none before) shows its build time in /metrics, read from the
// database now in use rather than the one of the first config.
func TestReloadShowsTheCurrentGeoIPInMetrics(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "country.mmdb")
	geotest.Write(t, db, geotest.Options{}, geotest.Net{CIDR: "127.0.0.0/8", Country: "ZZ"})
	path := filepath.Join(dir, "prism.yaml")
	write := func(geoip string) {
		y := "admin: {listen: \"127.0.0.1:0\"}\nnode: {colo: TST}\n" + geoip + "apps:\n  - id: a\n    listen: [\"" + testpeer.ClosedPort(t) + "\"]\n    origins: {addresses: [\"127.0.0.1:9\"]}\n"
		if err := os.WriteFile(path, []byte(y), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("")
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	d := start(t, cfg, eventtest.New())
	metrics := func() string {
		t.Helper()
		resp, err := http.Get("http://" + d.AdminAddr().String() + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	series := `prism_geoip_database_build_timestamp_seconds{kind="country",path="` + db + `"}`
	if m := metrics(); strings.Contains(m, series) {
		t.Fatalf("a GeoIP series before any database was configured:\n%s", m)
	}
	write("geoip: {country_db: \"" + db + "\"}\n")
	if _, err := d.ReloadConfig(); err != nil {
		t.Fatal(err)
	}
	if m := metrics(); !strings.Contains(m, series) {
		t.Fatalf("after the reload, /metrics has no %s:\n%s", series, m)
	}
}
