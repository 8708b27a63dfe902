package proxy_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prismproxy/prism/internal/config"
	"github.com/prismproxy/prism/internal/daemon/appbuild"
	"github.com/prismproxy/prism/internal/event"
	"github.com/prismproxy/prism/internal/event/eventtest"
	"github.com/prismproxy/prism/internal/origin"
	"github.com/prismproxy/prism/internal/proxy"
	"github.com/prismproxy/prism/internal/render"
)

// nextOfApp skips events until one of type typ from app and returns it,
// failing the test after rec's timeout.
func nextOfApp(t *testing.T, rec *eventtest.Recorder, app string, typ event.Type) event.Event {
	t.Helper()
	return rec.WaitFor(t, typ.String()+" (app "+app+")", func(e *event.Event) bool { return e.App == app && e.Type == typ })
}

// spectrumRecord renders e with the spectrum_events encoder, every field,
// as a log job writes it, and decodes the JSON line: the tests check what
// an operator reads, not only the canonical event.
func spectrumRecord(t *testing.T, e *event.Event) map[string]any {
	t.Helper()
	enc, err := render.NewEncoder(render.Spectrum, render.Node{Colo: "TST", ID: "t1"}, render.Options{})
	if err != nil {
		t.Fatal(err)
	}
	line := enc.Append(nil, e)
	m := map[string]any{}
	if err := json.Unmarshal(line, &m); err != nil {
		t.Fatalf("rendered spectrum record %q: %v", line, err)
	}
	return m
}

// wantSpectrum renders e as a spectrum_events record and checks the given
// fields (compared by their printed form, so 521 matches the JSON number);
// it returns the record for further checks.
func wantSpectrum(t *testing.T, e *event.Event, want map[string]any) map[string]any {
	t.Helper()
	m := spectrumRecord(t, e)
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
