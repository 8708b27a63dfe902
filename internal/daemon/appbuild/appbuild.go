// Package appbuild turns one validated config.App into the parts its
// server runs on — listen specs, origin pool and passthrough-route pools,
// TLS edge, IP firewall, per-client limiter, timeouts and relay settings —
// and hands them to the TCP server (proxy.App) or the UDP server
// (udpproxy.App) as plain values. It is the one place where config meets
// the data path: proxy and udpproxy import no config.
//
// Each part is built by its own function and closed on its own, so a
// config reload can rebuild, swap or keep one part at a time.
package appbuild

import (
	"fmt"
	"log/slog"

	"github.com/prismproxy/prism/internal/config"
	"github.com/prismproxy/prism/internal/firewall"
	"github.com/prismproxy/prism/internal/geo"
	"github.com/prismproxy/prism/internal/limit"
	"github.com/prismproxy/prism/internal/origin"
	"github.com/prismproxy/prism/internal/proxy"
	"github.com/prismproxy/prism/internal/relay"
	"github.com/prismproxy/prism/internal/tlsedge"
	"github.com/prismproxy/prism/internal/udpproxy"
)

// Options are what the parts need besides the app's config.
type Options struct {
	Geo      *geo.DB         // the databases the firewall reads; nil: none
	Resolver origin.Resolver // DNS origins resolve through it; nil: the system resolver
	Log      *slog.Logger    // prism's diagnostics; the parts add the app id
}

// Parts are one app's built parts. The caller owns them: close them once
// the server they were handed to has shut down.
type Parts struct {
	App      config.App         // the validated config they were built from
	Firewall *firewall.Firewall // nil when the app has no ip_firewall
	Pool     *origin.Pool
	Routes   []*origin.Pool // tcp: the passthrough SNI routes' pools, by tlsedge route index
	Edge     *tlsedge.Edge  // tcp: nil when the app does no TLS handling
	Limiter  *limit.Limiter // tcp: nil when the app has no per-client limits
}

// Build builds every part of app a (validated by config.Load or
// config.Parse). On error, what was built is closed.
func Build(a *config.App, o Options) (p *Parts, err error) {
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("app", a.ID)
	p = &Parts{App: *a}
	defer func() {
		if err != nil {
			p.Close()
			p = nil
		}
	}()
	if p.Firewall, err = Firewall(a, o.Geo, log); err != nil {
		return nil, fmt.Errorf("app %s: ip_firewall: %w", a.ID, err)
	}
	if p.Pool, err = Pool(a, o.Resolver); err != nil {
		return nil, fmt.Errorf("app %s: %w", a.ID, err)
	}
	if a.Protocol != "tcp" {
		return p, nil
	}
	p.Limiter = Limiter(a)
	if p.Edge, err = Edge(a, log); err != nil {
		return nil, fmt.Errorf("app %s: %w", a.ID, err)
	}
	if p.Edge != nil {
		if p.Routes, err = Routes(a, o.Resolver); err != nil {
			return nil, fmt.Errorf("app %s: %w", a.ID, err)
		}
	}
	return p, nil
}

// Firewall builds the app's IP firewall, reading g (log carries the app id).
func Firewall(a *config.App, g *geo.DB, log *slog.Logger) (*firewall.Firewall, error) {
	return firewall.New(a.IPFirewall, g, log)
}

// Pool builds the app's origin pool.
func Pool(a *config.App, r origin.Resolver) (*origin.Pool, error) {
	return origin.NewPool(a.Origins, a.Block, r)
}

// Routes builds one pool per passthrough SNI route of a tcp app.
func Routes(a *config.App, r origin.Resolver) ([]*origin.Pool, error) {
	var out []*origin.Pool
	for i, rt := range a.TLS.PassthroughRoutes {
		p, err := origin.NewPool(rt.Origins, a.Block, r)
		if err != nil {
			closePools(out)
			return nil, fmt.Errorf("tls.passthrough_routes[%d]: %w", i, err)
		}
		out = append(out, p)
	}
	return out, nil
}

// Edge builds the TLS side of a tcp app, nil if it does no TLS handling
// (no termination, passthrough routes, SNI allow list or SNI peek). log
// carries the app id.
func Edge(a *config.App, log *slog.Logger) (*tlsedge.Edge, error) {
	tc := a.TLS
	tc.MaxHandshakes = a.Limits.MaxTLSHandshakes
	if !tc.Terminates() && len(tc.PassthroughRoutes) == 0 && len(tc.SNIAllow) == 0 && !tc.PeekSNI {
		return nil, nil
	}
	return tlsedge.NewEdge(tc, log)
}

// Limiter builds a tcp app's per-client limiter, nil if it has none.
func Limiter(a *config.App) *limit.Limiter { return limit.New(a.Limits) }

// GlobalSlots are the config's global max_connections, shared by the
// servers of every tcp app (proxy.WithGlobalSlots); nil: no limit.
func GlobalSlots(c *config.Config) chan struct{} {
	if c.MaxConnections <= 0 {
		return nil
	}
	return make(chan struct{}, c.MaxConnections)
}

// TCP is the proxy.App of a tcp app's parts.
func (p *Parts) TCP() proxy.App {
	a := &p.App
	mode, _ := relay.ParseMode(a.RelayMode) // validated by config
	app := proxy.App{
		ID: a.ID, Listen: a.ListenSpecs,
		Pool: p.Pool, Routes: p.Routes, Limiter: p.Limiter,
		MaxTLSHandshakes: a.Limits.MaxTLSHandshakes,
		MaxConnections:   a.MaxConnections,
		ProxyProtocol:    a.ProxyProtocol,
		Trusted:          a.Trusted, HeaderTimeout: a.InboundProxy.HeaderTimeout,
		ConnectTimeout: a.Timeouts.Connect, IdleTimeout: a.Timeouts.Idle,
		RelayMode: mode,
	}
	if p.Firewall != nil {
		app.Firewall = p.Firewall // not a typed nil in the interface
	}
	if p.Edge != nil {
		app.Edge = p.Edge
		app.Terminate, app.OriginTLS = a.TLS.Terminates(), a.TLS.OriginTLS()
	}
	return app
}

// UDP is the udpproxy.App of a udp app's parts.
func (p *Parts) UDP() udpproxy.App {
	a := &p.App
	app := udpproxy.App{
		ID: a.ID, Listen: a.ListenSpecs, Pool: p.Pool, ProxyProtocol: a.ProxyProtocol,
		Trusted: a.Trusted, UDP: a.UDP, Limits: a.Limits,
	}
	if p.Firewall != nil {
		app.Firewall = p.Firewall
	}
	return app
}

// Pools are the app's origin pools: its own, then its routes'.
func (p *Parts) Pools() []*origin.Pool {
	if p.Pool == nil {
		return p.Routes
	}
	return append([]*origin.Pool{p.Pool}, p.Routes...)
}

// CloseOrigins stops the pools' health checks and the edge's certificate
// watching: what a server's shutdown ends. Safe to call more than once.
func (p *Parts) CloseOrigins() {
	if p == nil {
		return
	}
	closePools(p.Pools())
	if p.Edge != nil {
		_ = p.Edge.Close()
	}
}

// Close closes every part. Safe to call more than once.
func (p *Parts) Close() {
	if p == nil {
		return
	}
	p.CloseOrigins()
	if p.Firewall != nil {
		_ = p.Firewall.Close()
	}
}

func closePools(ps []*origin.Pool) {
	for _, p := range ps {
		p.Close()
	}
}
