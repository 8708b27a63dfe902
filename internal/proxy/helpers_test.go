package proxy_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prismproxy/prism/internal/cfgerr"
	"github.com/prismproxy/prism/internal/config"
	"github.com/prismproxy/prism/internal/daemon"
	"github.com/prismproxy/prism/internal/daemon/appbuild"
	"github.com/prismproxy/prism/internal/event"
	"github.com/prismproxy/prism/internal/event/eventtest"
	"github.com/prismproxy/prism/internal/firewall"
	"github.com/prismproxy/prism/internal/geo"
	"github.com/prismproxy/prism/internal/origin"
	"github.com/prismproxy/prism/internal/proxy"
	"github.com/prismproxy/prism/internal/render"
	"github.com/prismproxy/prism/internal/testpeer"
)

// runDaemon runs the whole daemon from the config yml (a prism.yaml with
// its node section), its events going to em. stop shuts it down within
// timeout the first time it is called and returns nil after; cleanup
// calls it with 10s and reports an error.
func runDaemon(t *testing.T, yml string, em event.Emitter) (d *daemon.Daemon, stop func(timeout time.Duration) error) {
	t.Helper()
	cfg, err := config.Parse("prism.yaml", []byte(yml))
	if err != nil {
		t.Fatal(err)
	}
	d, err = daemon.New(cfg, slog.New(slog.DiscardHandler), daemon.WithEmitter(em))
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	stopped := false
	stop = func(timeout time.Duration) error {
		if stopped {
			return nil
		}
		stopped = true
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		return d.Shutdown(ctx)
	}
	t.Cleanup(func() {
		if err := stop(10 * time.Second); err != nil {
			t.Error(err)
		}
	})
	return d, stop
}

// newFirewall prepares cfg and builds a firewall from it (looking clients
// up in db, which may be nil), closed at cleanup.
func newFirewall(t *testing.T, cfg firewall.Config, db *geo.DB) *firewall.Firewall {
	t.Helper()
	if err := cfgerr.Prepare(&cfg); err != nil {
		t.Fatalf("ip_firewall: %v", err)
	}
	fw, err := firewall.New(cfg, db, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fw.Close() })
	return fw
}

// blockLoopback is a firewall that refuses every 127.0.0.0/8 client.
func blockLoopback(t *testing.T) *firewall.Firewall {
	t.Helper()
	return newFirewall(t, firewall.Config{Rules: []firewall.Rule{{Action: "block", CIDR: "127.0.0.0/8"}}}, nil)
}

// startHAProxy writes cfg (with the common global/defaults sections in
// front) and runs HAProxy in the foreground until the test ends, waiting
// until probe accepts connections.
func startHAProxy(t *testing.T, cfg, probe string) {
	t.Helper()
	hap := testpeer.Need(t, "haproxy")
	path := filepath.Join(t.TempDir(), "haproxy.cfg")
	full := `global
  maxconn 64
defaults
  mode tcp
  timeout connect 5s
  timeout client 30s
  timeout server 30s
` + cfg
	if err := os.WriteFile(path, []byte(full), 0o644); err != nil {
		t.Fatal(err)
	}
	testpeer.Start(t, hap, "-f", path, "-db").WaitTCP(t, probe, 10*time.Second)
}

// nextOfApp skips events until one of type typ from app and returns it,
// failing the test after rec's timeout.
func nextOfApp(t *testing.T, rec *eventtest.Recorder, app string, typ event.Type) event.Event {
	t.Helper()
	return rec.WaitFor(t, typ.String()+" (app "+app+")", func(e *event.Event) bool { return e.App == app && e.Type == typ })
}

// renderJSON renders e with the dataset's encoder, every field, as a log
// job writes it, and decodes the JSON line: the tests check what an
// operator reads, not only the canonical event.
func renderJSON(t *testing.T, dataset string, e *event.Event) map[string]any {
	t.Helper()
	enc, err := render.NewEncoder(dataset, render.Node{Colo: "TST", ID: "t1"}, render.Options{})
	if err != nil {
		t.Fatal(err)
	}
	line := enc.Append(nil, e)
	m := map[string]any{}
	if err := json.Unmarshal(line, &m); err != nil {
		t.Fatalf("rendered %s record %q: %v", dataset, line, err)
	}
	return m
}

// wantSpectrum renders e as a spectrum_events record and checks the given
// fields (compared by their printed form, so 521 matches the JSON number);
// it returns the record for further checks.
func wantSpectrum(t *testing.T, e *event.Event, want map[string]any) map[string]any {
	t.Helper()
	m := renderJSON(t, render.Spectrum, e)
	for k, v := range want {
		got, ok := m[k]
		if !ok {
			t.Errorf("spectrum record has no field %s: %v", k, m)
			continue
		}
		if fmt.Sprint(got) != fmt.Sprint(v) {
			t.Errorf("spectrum %s %d: %s = %v, want %v", e.Type, e.Status, k, got, v)
		}
	}
	return m
}

// hostPort splits a literal "ip:port" for comparing with rendered fields.
func hostPort(t *testing.T, addr string) (string, int) {
	t.Helper()
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	return h, n
}

// startConf is what a test sets besides the YAML.
type startConf struct {
	fw       map[string]proxy.Firewall // by app id: replaces the firewall built from the config
	resolver origin.Resolver
	log      *slog.Logger
}

// startOpt adjusts how startServers builds the apps.
type startOpt func(*startConf)

// withFirewall gives app id the firewall fw instead of its configured one.
func withFirewall(id string, fw proxy.Firewall) startOpt {
	return func(c *startConf) {
		if c.fw == nil {
			c.fw = map[string]proxy.Firewall{}
		}
		c.fw[id] = fw
	}
}

// withResolver makes every DNS origin resolve through r (a DNS server the
// test runs).
func withResolver(r origin.Resolver) startOpt { return func(c *startConf) { c.resolver = r } }

// withLogger gives the servers logger l (the tests that read it).
func withLogger(l *slog.Logger) startOpt { return func(c *startConf) { c.log = l } }

// startServers builds the tcp apps of cfg as the daemon does (appbuild,
// one proxy.Server per app, the global max_connections shared), starts
// them, and shuts them down and closes their parts at cleanup.
func startServers(t *testing.T, cfg *config.Config, em event.Emitter, opts ...startOpt) map[string]*proxy.Server {
	t.Helper()
	var c startConf
	for _, o := range opts {
		o(&c)
	}
	slots := appbuild.GlobalSlots(cfg)
	reg := new(event.Registry)
	out := map[string]*proxy.Server{}
	for i := range cfg.Apps {
		a := &cfg.Apps[i]
		if a.Protocol != "tcp" {
			continue
		}
		parts, err := appbuild.Build(a, appbuild.Options{Resolver: c.resolver, Log: c.log})
		if err != nil {
			t.Fatal(err)
		}
		app := parts.TCP()
		if fw, ok := c.fw[a.ID]; ok {
			app.Firewall = fw
		}
		s, err := proxy.New(app, em, reg, c.log, proxy.WithGlobalSlots(slots))
		if err != nil {
			parts.Close()
			t.Fatal(err)
		}
		if err := s.Start(); err != nil {
			parts.Close()
			t.Fatal(err)
		}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			_ = s.Shutdown(ctx)
			parts.Close()
		})
		out[a.ID] = s
	}
	return out
}

// parseConfig parses a test config (the node is set).
func parseConfig(t *testing.T, yaml string) *config.Config {
	t.Helper()
	cfg, err := config.Parse("test.yaml", []byte("node: {colo: TST, id: t1}\n"+yaml))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// startProxy starts the servers of a config whose tcp app "app" it
// returns, with that app's first listen address.
func startProxy(t *testing.T, yaml string, opts ...startOpt) (*proxy.Server, *eventtest.Recorder, string) {
	t.Helper()
	rec := eventtest.New()
	s := startServers(t, parseConfig(t, yaml), rec, opts...)["app"]
	if s == nil {
		t.Fatal("no tcp app \"app\" in the config")
	}
	addrs := s.Addrs()
	if len(addrs) == 0 {
		return s, rec, ""
	}
	return s, rec, addrs[0].String()
}

func appYAML(listen, origins string, extra ...string) string {
	return "apps:\n  - id: app\n    listen: [\"" + listen + "\"]\n    origins: " + origins + "\n" + indent(strings.Join(extra, "\n"))
}

func indent(s string) string {
	if s == "" {
		return ""
	}
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = "    " + l
	}
	return strings.Join(lines, "\n") + "\n"
}

func dial(t *testing.T, addr string) *net.TCPConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c.(*net.TCPConn)
}
