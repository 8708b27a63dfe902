package daemon

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prismproxy/prism/internal/config"
	"github.com/prismproxy/prism/internal/event"
	"github.com/prismproxy/prism/internal/event/eventtest"
	"github.com/prismproxy/prism/internal/testpeer"
)

// of is how many events of app with type typ em has recorded.
func of(em *eventtest.Recorder, app string, typ event.Type) int {
	return em.Count(func(e *event.Event) bool { return e.App == app && e.Type == typ })
}

func echoOn(t *testing.T, c net.Conn, msg string) {
	t.Helper()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, len(msg))
	if _, err := io.ReadFull(c, b); err != nil || string(b) != msg {
		t.Fatalf("echo %q: %v", b, err)
	}
}

func writeConfig(t *testing.T, path, apps string) *config.Config {
	t.Helper()
	if err := os.WriteFile(path, []byte("node: {colo: TST}\nshutdown: {drain_timeout: 300ms}\napps:\n"+apps), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// start runs a daemon on cfg, emitting to em, and shuts it down (checking
// the shutdown) when the test ends.
func start(t *testing.T, cfg *config.Config, em event.Emitter) *Daemon {
	t.Helper()
	d, err := New(cfg, slog.New(slog.DiscardHandler), WithEmitter(em))
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := d.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return d
}

// TestReloadMovesAnAddressBetweenApps: app a is removed and app b added on
// a's address: b gets a's socket (no bind error, no gap), a's open
// connection drains and ends at drain_timeout with its terminal record.
func TestReloadMovesAnAddressBetweenApps(t *testing.T) {
	origin, addr := testpeer.Echo(t), testpeer.ClosedPort(t)
	path := filepath.Join(t.TempDir(), "prism.yaml")
	app := func(id string) string {
		return fmt.Sprintf("  - id: %s\n    listen: [\"%s\"]\n    origins: {addresses: [\"%s\"]}\n", id, addr, origin)
	}
	em := eventtest.New()
	d := start(t, writeConfig(t, path, app("a")), em)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	echoOn(t, c, "on a")
	writeConfig(t, path, app("b"))
	res, err := d.ReloadConfig()
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(res.Added, res.Removed) != "[b] [a]" {
		t.Fatalf("reload result %+v", res)
	}
	c2, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("after the move: %v", err)
	}
	defer c2.Close()
	echoOn(t, c2, "on b")
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil || strings.Contains(err.Error(), "timeout") {
		t.Fatalf("a's connection not closed at its drain deadline: %v", err)
	}
	em.Timeout = 5 * time.Second
	em.WaitFor(t, "disconnect of a", func(e *event.Event) bool { return e.App == "a" && e.Type == event.Disconnect })
	if of(em, "a", event.Disconnect) != 1 || of(em, "b", event.Connect) != 1 {
		t.Errorf("a disconnects %d, b connects %d; want 1 and 1", of(em, "a", event.Disconnect), of(em, "b", event.Connect))
	}
}

// TestReloadKeepsOldSettingsWhenTheNewCannotStart: a changed app whose new
// extra address is taken reports the error and serves on with its old
// settings on its old socket; the reload is counted as failed.
func TestReloadKeepsOldSettingsWhenTheNewCannotStart(t *testing.T) {
	origin, addr := testpeer.Echo(t), testpeer.ClosedPort(t)
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	path := filepath.Join(t.TempDir(), "prism.yaml")
	em := eventtest.New()
	d := start(t, writeConfig(t, path, fmt.Sprintf("  - id: a\n    listen: [\"%s\"]\n    origins: {addresses: [\"%s\"]}\n", addr, origin)), em)
	writeConfig(t, path, fmt.Sprintf("  - id: a\n    listen: [\"%s\", \"%s\"]\n    origins: {addresses: [\"%s\"]}\n", addr, taken.Addr(), origin))
	res, err := d.ReloadConfig()
	if err == nil || !strings.Contains(err.Error(), "address already in use") {
		t.Fatalf("reload onto a taken address: %v", err)
	}
	// What the API and `prism status` show is what serves: the old entry,
	// not listed as changed (they showed the new listen addresses).
	if len(res.Changed) != 0 {
		t.Errorf("result lists %v as changed; a's new settings did not apply", res.Changed)
	}
	if got := d.Config().Apps[0].Listen; len(got) != 1 {
		t.Errorf("running config lists %d listen addresses for a, want its old 1", len(got))
	}
	if st := d.ReloadStats(); st.Failed != 1 || st.OK != 0 {
		t.Errorf("ReloadStats %+v, want 1 failed", st)
	}
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("the app stopped serving its old address: %v", err)
	}
	defer c.Close()
	echoOn(t, c, "still here")
	if got := d.Addrs("a"); len(got) != 1 || got[0].String() != addr {
		t.Errorf("addrs %v, want only %s", got, addr)
	}
}

// TestReloadOfABadFileChangesNothing: every problem is reported with its
// line, the running config stays.
func TestReloadOfABadFileChangesNothing(t *testing.T) {
	origin, addr := testpeer.Echo(t), testpeer.ClosedPort(t)
	path := filepath.Join(t.TempDir(), "prism.yaml")
	d := start(t, writeConfig(t, path, fmt.Sprintf("  - id: a\n    listen: [\"%s\"]\n    origins: {addresses: [\"%s\"]}\n", addr, origin)), eventtest.New())
	before := d.Config()
	if err := os.WriteFile(path, []byte("node: {colo: TST}\napps:\n  - id: a\n    protocol: sctp\n    listen: [\"x\"]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := d.ReloadConfig()
	if err == nil || !strings.Contains(err.Error(), path+":4: apps[0].protocol") || !strings.Contains(err.Error(), path+":5: apps[0].listen[0]") {
		t.Fatalf("reload of a bad file: %v", err)
	}
	if d.Config() != before {
		t.Error("the running config changed")
	}
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	echoOn(t, c, "unchanged")
}

// TestReloadThroughTheAdminAPI: POST /api/v1/reload applies the file and
// answers what changed; a bad file is a 422 with its problems, and counts
// as a failed reload in the metrics.
func TestReloadThroughTheAdminAPI(t *testing.T) {
	origin, addr, addr2 := testpeer.Echo(t), testpeer.ClosedPort(t), testpeer.ClosedPort(t)
	path := filepath.Join(t.TempDir(), "prism.yaml")
	head := "admin: {listen: \"127.0.0.1:0\"}\n"
	app := func(id, listen string) string {
		return fmt.Sprintf("  - id: %s\n    listen: [\"%s\"]\n    origins: {addresses: [\"%s\"]}\n", id, listen, origin)
	}
	write := func(apps string) {
		if err := os.WriteFile(path, []byte(head+"node: {colo: TST}\napps:\n"+apps), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(app("a", addr))
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	d := start(t, cfg, eventtest.New())
	url := "http://" + d.AdminAddr().String() + "/api/v1/reload"
	post := func() (int, string) {
		resp, err := http.Post(url, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	write(app("a", addr) + app("b", addr2))
	if code, body := post(); code != 200 || !regexp.MustCompile(`"added": \[\s*"b"\s*\]`).MatchString(body) {
		t.Fatalf("POST /api/v1/reload: %d %s", code, body)
	}
	c, err := net.Dial("tcp", addr2)
	if err != nil {
		t.Fatalf("the added app: %v", err)
	}
	c.Close()
	write("  - id: a\n    protocol: sctp\n")
	if code, body := post(); code != 422 || !strings.Contains(body, "apps[0].protocol") {
		t.Fatalf("POST /api/v1/reload of a bad file: %d %s", code, body)
	}
	resp, err := http.Get("http://" + d.AdminAddr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), `prism_config_reload_total{result="success"} 1`) || !strings.Contains(string(b), `prism_config_reload_total{result="failure"} 1`) {
		t.Errorf("reload counters in /metrics:\n%s", grepLines(string(b), "prism_config_reload_total"))
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

// TestOriginHealthInMetrics: a health-checked origin that is down shows as
// prism_origin_healthy 0 with its failed checks counted.
func TestOriginHealthInMetrics(t *testing.T) {
	dead := testpeer.ClosedPort(t) // nothing listens: every check fails
	path := filepath.Join(t.TempDir(), "prism.yaml")
	yaml := fmt.Sprintf("admin: {listen: \"127.0.0.1:0\"}\nnode: {colo: TST}\napps:\n  - id: a\n    listen: [\"127.0.0.1:0\"]\n    origins: {addresses: [\"%s\"], health_check: {interval: 100ms, timeout: 100ms, unhealthy_threshold: 2}}\n", dead)
	if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	d := start(t, cfg, eventtest.New())
	want := fmt.Sprintf(`prism_origin_healthy{app="a",origin="%s"} 0`, dead)
	deadline := time.Now().Add(10 * time.Second)
	var body string
	for time.Now().Before(deadline) { // the checks run on their own clock: poll the scrape, bounded
		resp, err := http.Get("http://" + d.AdminAddr().String() + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if body = string(b); strings.Contains(body, want) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !strings.Contains(body, want) || !strings.Contains(body, `prism_origin_health_transitions_total{app="a",origin="`+dead+`"} 1`) {
		t.Fatalf("no %s in /metrics:\n%s", want, grepLines(body, "prism_origin_"))
	}
}

// TestReloadToFewerUDPSockets: a reload that lowers udp.sockets hands over
// every SO_REUSEPORT socket of the port, and the new server reads them
// all. The kernel goes on hashing clients to each socket of the group; one
// left with the replaced server, draining (it opens no session), would drop
// every new client hashed to it until that server had ended.
func TestReloadToFewerUDPSockets(t *testing.T) {
	const clients = 64
	origin := testpeer.QuietUDPEcho(t)
	addr := fmt.Sprintf("127.0.0.1:%d", testpeer.FreeUDPPort(t))
	path := filepath.Join(t.TempDir(), "prism.yaml")
	app := func(sockets int) string {
		return fmt.Sprintf("  - id: u\n    protocol: udp\n    listen: [\"%s\"]\n    origins: {addresses: [\"%s\"]}\n    udp: {sockets: %d, idle_timeout: 2s}\n", addr, origin, sockets)
	}
	d := start(t, writeConfig(t, path, app(4)), eventtest.New())
	// A session of the replaced server keeps it draining.
	old, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	echoOn(t, old, "before")
	writeConfig(t, path, app(2))
	if _, err := d.ReloadConfig(); err != nil {
		t.Fatal(err)
	}
	lost := 0
	for i := range clients {
		c, err := net.Dial("udp", addr)
		if err != nil {
			t.Fatal(err)
		}
		msg := fmt.Sprintf("client %d", i)
		_ = c.SetDeadline(time.Now().Add(2 * time.Second))
		b := make([]byte, 64)
		if _, err := c.Write([]byte(msg)); err != nil {
			t.Fatal(err)
		}
		if n, err := c.Read(b); err != nil || string(b[:n]) != msg {
			lost++
		}
		c.Close()
	}
	if lost > 0 {
		t.Errorf("%d of %d new clients got no echo after the reload to fewer sockets", lost, clients)
	}
	echoOn(t, old, "after")
}

// TestAdminChangeNeedsRestart: a reload that changes admin.listen leaves
// the admin listener as it is, and an upgrade then hands its socket over
// under the address it was bound for, so that the new process binds the
// configured one (it once took the old socket for the new address, and
// served admin where the config no longer said).
func TestAdminChangeNeedsRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "prism.yaml")
	origin := testpeer.Echo(t)
	first, second := "127.0.0.1:"+strconv.Itoa(testpeer.FreePort(t)), "127.0.0.1:"+strconv.Itoa(testpeer.FreePort(t))
	write := func(admin string) {
		yaml := fmt.Sprintf("admin: {listen: %q}\nnode: {colo: TST}\napps:\n  - id: a\n    listen: [\"127.0.0.1:0\"]\n    origins: {addresses: [%q]}\n", admin, origin)
		if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(first)
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	d := start(t, cfg, eventtest.New())
	write(second)
	if _, err := d.ReloadConfig(); err != nil {
		t.Fatal(err)
	}
	if got := d.AdminAddr().String(); got != first {
		t.Fatalf("admin listening on %s after the reload, want %s still", got, first)
	}
	files, err := d.ListenFiles()
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, f := range files {
		keys = append(keys, f.Key)
		f.File.Close()
	}
	if !slices.Contains(keys, "admin "+first) || slices.Contains(keys, "admin "+second) {
		t.Fatalf("handed-over sockets %q: want the admin one under %s, not %s", keys, first, second)
	}
}

// TestReloadThatMovesLinesKeepsUnchangedApps: a reload that adds an app
// (and a comment) leaves the other app as it is, with its server, its
// health state and its limits (docs/reload.md). It rebuilt every app: the
// comparison of the top-level settings followed the config's key-to-line
// index, which differs whenever a line moves, so an unchanged app's
// max_connections count started again from zero and let in more
// connections than its limit.
func TestReloadThatMovesLinesKeepsUnchangedApps(t *testing.T) {
	origin := testpeer.Echo(t)
	addrA, addrB := testpeer.ClosedPort(t), testpeer.ClosedPort(t)
	path := filepath.Join(t.TempDir(), "prism.yaml")
	app := func(id, addr string) string {
		return fmt.Sprintf("  - id: %s\n    listen: [%q]\n    max_connections: 1\n    origins: {addresses: [%q]}\n", id, addr, origin)
	}
	em := eventtest.New()
	d := start(t, writeConfig(t, path, app("a", addrA)), em)
	held, err := net.Dial("tcp", addrA)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	echoOn(t, held, "holds a's one slot")

	writeConfig(t, path, "  # a comment moves every line below it\n"+app("a", addrA)+app("b", addrB))
	res, err := d.ReloadConfig()
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(res.Added, res.Changed, res.Unchanged, res.LogJobs) != "[b] [] [a] false" {
		t.Fatalf("reload result %+v; want b added, a unchanged", res)
	}
	// a still counts the held connection: a second one waits in the
	// backlog, not served.
	c, err := net.Dial("tcp", addrA)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("over the limit\n")); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if n, err := c.Read(make([]byte, 64)); err == nil {
		t.Errorf("a served a second connection (%d bytes) over its max_connections: 1 after the reload", n)
	}
	echoOn(t, held, "still served")
}

// TestPartlyFailedReloadKeepsTheStartedAppsWhole: a reload in which one app
// cannot start (its new address is taken) still applies the others, and
// they keep every part running. The reload's clean-up, meant for a build
// that failed before anything changed, ran on any error: it closed the
// parts of the apps that had just started (their health checks stopped,
// their firewall lists and certificates no longer watched) and, had the
// GeoIP section changed, the databases they read.
func TestPartlyFailedReloadKeepsTheStartedAppsWhole(t *testing.T) {
	dead := testpeer.ClosedPort(t) // nothing listens: every check fails
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	origin := testpeer.Echo(t)
	path := filepath.Join(t.TempDir(), "prism.yaml")
	a := func(threshold int) string {
		return fmt.Sprintf("  - id: a\n    listen: [\"127.0.0.1:0\"]\n    origins: {addresses: [%q], health_check: {interval: 100ms, timeout: 100ms, unhealthy_threshold: %d}}\n", dead, threshold)
	}
	d := start(t, writeConfig(t, path, a(2)), eventtest.New())
	writeConfig(t, path, a(3)+fmt.Sprintf("  - id: b\n    listen: [%q]\n    origins: {addresses: [%q]}\n", taken.Addr(), origin))
	res, err := d.ReloadConfig()
	if err == nil || !strings.Contains(err.Error(), "app b") {
		t.Fatalf("reload: %v; want app b's bind error", err)
	}
	if fmt.Sprint(res.Changed) != "[a]" {
		t.Fatalf("reload result %+v; want a changed", res)
	}
	failed := func() int64 {
		d.mu.Lock()
		defer d.mu.Unlock()
		h := d.apps["a"].parts.Pool.Health() // lists an origin once it has been checked
		if len(h) == 0 {
			return 0
		}
		return h[0].ChecksFailed
	}
	deadline := time.Now().Add(3 * time.Second)
	for failed() < 2 { // the checks run on their own clock (100 ms): poll, bounded
		if time.Now().After(deadline) {
			t.Fatalf("app a's health checks stopped at the reload: %d failed checks in 3 s", failed())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestFailedAppBuildIsAnError: an app whose parts cannot be built (here
// its ip_firewall list file is gone between the config's load, which read
// it, and the build: a list rotated by delete-and-recreate) is an error
// of New and of a reload, the running config staying. buildApp's cleanup
// closed its named result, which the error return had just set to nil:
// the daemon panicked (nil pointer dereference) instead, on a SIGHUP too.
func TestFailedAppBuildIsAnError(t *testing.T) {
	dir := t.TempDir()
	list, path := filepath.Join(dir, "block.txt"), filepath.Join(dir, "prism.yaml")
	origin := testpeer.Echo(t)
	base := fmt.Sprintf(`node: {colo: TST}
shutdown: {drain_timeout: 300ms}
apps:
  - id: web
    listen: ["127.0.0.1:0"]
    origins: {addresses: [%q]}
`, origin)
	withList := base + fmt.Sprintf(`  - id: fw
    listen: ["127.0.0.1:0"]
    origins: {addresses: [%q]}
    ip_firewall: {lists: [{action: block, path: %q}]}
`, origin, list)
	load := func(y string) *config.Config {
		t.Helper()
		if err := os.WriteFile(list, []byte("192.0.2.0/24\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(y), 0o644); err != nil {
			t.Fatal(err)
		}
		cfg, err := config.Load(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Remove(list); err != nil {
			t.Fatal(err)
		}
		return cfg
	}

	if _, err := New(load(withList), slog.New(slog.DiscardHandler)); err == nil || !strings.Contains(err.Error(), "ip_firewall") {
		t.Fatalf("New with an app that cannot be built: %v, want its ip_firewall error", err)
	}

	d := start(t, load(base), eventtest.New())
	if _, err := d.Apply(load(withList)); err == nil || !strings.Contains(err.Error(), "ip_firewall") {
		t.Fatalf("reload adding an app that cannot be built: %v, want its ip_firewall error", err)
	}
	if got := d.Config(); len(got.Apps) != 1 {
		t.Fatalf("running config has %d apps after the failed reload, want its 1", len(got.Apps))
	}
}
