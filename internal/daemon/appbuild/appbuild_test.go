package appbuild_test

import (
	"net/netip"
	"testing"
	"time"

	"github.com/prismproxy/prism/internal/config"
	"github.com/prismproxy/prism/internal/daemon/appbuild"
	"github.com/prismproxy/prism/internal/relay"
)

func parse(t *testing.T, yaml string) *config.Config {
	t.Helper()
	cfg, err := config.Parse("test.yaml", []byte("node: {colo: TST, id: t1}\n"+yaml))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// A tcp app's parts carry every value its server reads, as config
// validated and defaulted it.
func TestTCPParts(t *testing.T) {
	cfg := parse(t, `max_connections: 7
apps:
  - id: web
    protocol: tcp
    listen: ["127.0.0.1:8000-8001", "unix:/tmp/web.sock"]
    origins: {addresses: ["127.0.0.1:9000-9001"]}
    proxy_protocol: v2
    inbound_proxy_protocol: {trusted_cidrs: ["10.0.0.0/8", "192.0.2.1"], header_timeout: 2s}
    timeouts: {connect: 3s, idle: 1m}
    max_connections: 5
    relay_mode: copy
    limits: {max_connections_per_client: 2}
    tls:
      sni_allow: ["a.example"]
      passthrough_routes: [{sni: "b.example", origins: {addresses: ["127.0.0.1:9443"]}}]
`)
	p, err := appbuild.Build(&cfg.Apps[0], appbuild.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	a := p.TCP()
	if a.ID != "web" || len(a.Listen) != 2 || a.Listen[0].Lo != 8000 || a.Listen[0].Hi != 8001 || a.Listen[1].Path != "/tmp/web.sock" {
		t.Errorf("id %q, listen %+v", a.ID, a.Listen)
	}
	if a.Pool == nil || a.Pool != p.Pool || len(a.Routes) != 1 || a.Edge == nil || a.Terminate || a.OriginTLS {
		t.Errorf("pool %v, routes %d, edge %v, terminate %v, origin TLS %v", a.Pool, len(a.Routes), a.Edge, a.Terminate, a.OriginTLS)
	}
	if a.Firewall == nil || a.Limiter == nil || a.MaxConnections != 5 {
		t.Errorf("firewall %v, limiter %v, max_connections %d", a.Firewall, a.Limiter, a.MaxConnections)
	}
	want := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.0.2.1/32")}
	if len(a.Trusted) != 2 || a.Trusted[0] != want[0] || a.Trusted[1] != want[1] || a.HeaderTimeout != 2*time.Second {
		t.Errorf("trusted %v, header timeout %v", a.Trusted, a.HeaderTimeout)
	}
	if a.ProxyProtocol != "v2" || a.ConnectTimeout != 3*time.Second || a.IdleTimeout != time.Minute || a.RelayMode != relay.ModeCopy {
		t.Errorf("proxy protocol %q, timeouts %v %v, relay mode %v", a.ProxyProtocol, a.ConnectTimeout, a.IdleTimeout, a.RelayMode)
	}
	if s := appbuild.GlobalSlots(cfg); cap(s) != 7 {
		t.Errorf("global slots %d, want 7", cap(s))
	}
	p.Close() // twice: the deferred one must be harmless
}

// An app without TLS handling gets no edge and no route pools; without
// a global max_connections there are no global slots.
func TestPlainTCPHasNoEdge(t *testing.T) {
	cfg := parse(t, `apps:
  - {id: plain, listen: ["127.0.0.1:0"], origins: {addresses: ["127.0.0.1:9000"]}}
`)
	p, err := appbuild.Build(&cfg.Apps[0], appbuild.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	a := p.TCP()
	if a.Edge != nil || a.Routes != nil || a.Limiter != nil || a.RelayMode != relay.ModeAuto || a.ProxyProtocol != "off" {
		t.Errorf("edge %v, routes %v, limiter %v, relay mode %v, proxy protocol %q", a.Edge, a.Routes, a.Limiter, a.RelayMode, a.ProxyProtocol)
	}
	if s := appbuild.GlobalSlots(cfg); s != nil {
		t.Errorf("global slots %d without max_connections", cap(s))
	}
}

// A udp app's parts: parsed listen specs, the pool, the firewall; no tcp parts.
func TestUDPParts(t *testing.T) {
	cfg := parse(t, `apps:
  - id: dns
    protocol: udp
    listen: ["localhost:5300"]
    origins: {addresses: ["127.0.0.1:53"]}
    proxy_protocol: simple
`)
	p, err := appbuild.Build(&cfg.Apps[0], appbuild.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if p.Edge != nil || p.Limiter != nil || p.Routes != nil {
		t.Errorf("udp app has tcp parts: edge %v, limiter %v, routes %v", p.Edge, p.Limiter, p.Routes)
	}
	u := p.UDP()
	if u.ID != "dns" || len(u.Listen) != 1 || u.Listen[0].Host != "localhost" || u.Listen[0].Lo != 5300 || u.Pool == nil || u.Firewall == nil || u.ProxyProtocol != "simple" {
		t.Errorf("udp app %+v", u)
	}
}
