package proxy_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prismproxy/prism/internal/config"
	"github.com/prismproxy/prism/internal/daemon/appbuild"
	"github.com/prismproxy/prism/internal/event"
	"github.com/prismproxy/prism/internal/origin"
	"github.com/prismproxy/prism/internal/proxy"
	"github.com/prismproxy/prism/internal/render"
)

// recorder is an event.Emitter that keeps every event for assertions.
type recorder struct {
	mu  sync.Mutex
	evs []event.Event
	ch  chan event.Event
}

func newRecorder() *recorder { return &recorder{ch: make(chan event.Event, 4096)} }

func (r *recorder) Emit(e *event.Event) {
	r.mu.Lock()
	r.evs = append(r.evs, *e)
	r.mu.Unlock()
	r.ch <- *e
}

// next returns the next event or fails the test after a timeout.
func (r *recorder) next(t *testing.T) event.Event {
	t.Helper()
	select {
	case e := <-r.ch:
		return e
	case <-time.After(10 * time.Second):
		t.Fatal("no event within 10s")
	}
	return event.Event{}
}

// terminal skips non-terminal events and returns the first terminal one.
func (r *recorder) terminal(t *testing.T) event.Event {
	t.Helper()
	for {
		e := r.next(t)
		if e.Type.Terminal() {
			return e
		}
	}
}

func (r *recorder) expect(t *testing.T, typ event.Type, status int) event.Event {
	t.Helper()
	e := r.next(t)
	if e.Type != typ || e.Status != status {
		t.Fatalf("got %s %d (%s), want %s %d", e.Type, e.Status, e.Detail, typ, status)
	}
	return e
}

// waitFor skips events until one satisfies match (peer processes such as
// HAProxy probe or health-check connections of their own), failing after 10s.
func (r *recorder) waitFor(t *testing.T, what string, match func(*event.Event) bool) event.Event {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case e := <-r.ch:
			if match(&e) {
				return e
			}
		case <-deadline:
			t.Fatalf("no %s event within 10s", what)
		}
	}
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
func startProxy(t *testing.T, yaml string, opts ...startOpt) (*proxy.Server, *recorder, string) {
	t.Helper()
	rec := newRecorder()
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

// echoServer accepts connections and echoes until EOF, then closes.
func echoServer(t *testing.T) string {
	t.Helper()
	return serve(t, func(c net.Conn) {
		_, _ = io.Copy(c, c)
	})
}

// sinkServer accepts connections, reads until EOF and never writes: an
// origin that stays open for as long as the proxy keeps its leg open.
func sinkServer(t *testing.T) string {
	t.Helper()
	return serve(t, func(c net.Conn) { _, _ = io.Copy(io.Discard, c) })
}

// serve runs handler for every connection to a fresh loopback listener.
func serve(t *testing.T, handler func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				handler(c)
			}()
		}
	}()
	return ln.Addr().String()
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

// closedPort returns a loopback port with nothing listening.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}
