package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"net"

	"github.com/prismproxy/prism/internal/config"
	"github.com/prismproxy/prism/internal/firewall"
	"github.com/prismproxy/prism/internal/geo"
	"github.com/prismproxy/prism/internal/origin"
	"github.com/prismproxy/prism/internal/proxy"
	"github.com/prismproxy/prism/internal/udpproxy"
)

// appPart is one app's running pieces, built, started, handed over and
// closed on its own.
type appPart struct {
	cfg  config.App // as built, to tell whether a reload changed it
	geo  *geo.DB    // the databases its firewall reads
	fw   *firewall.Firewall
	tcp  *proxy.Server    // a tcp app
	udp  *udpproxy.Server // a udp app
	pool *origin.Pool     // a udp app's origins (a tcp app's are inside its server)
	id   string
	log  *slog.Logger
}

func (d *Daemon) buildApp(cfg *config.Config, a *config.App, g *geo.DB) (p *appPart, err error) {
	p = &appPart{cfg: *a, geo: g, id: a.ID, log: d.log.With("app", a.ID)}
	defer func() {
		if err != nil {
			p.close()
		}
	}()
	if p.fw, err = firewall.New(a.IPFirewall, g, d.log.With("app", a.ID)); err != nil {
		return nil, fmt.Errorf("app %s: ip_firewall: %w", a.ID, err)
	}
	if a.Protocol == "udp" {
		if p.pool, err = origin.NewPool(a.Origins, a.Block, d.opts.resolver); err != nil {
			return nil, fmt.Errorf("app %s: %w", a.ID, err)
		}
		p.udp, err = udpproxy.New(udpproxy.App{
			ID: a.ID, Listen: a.Listen, Pool: p.pool, ProxyProtocol: a.ProxyProtocol,
			Trusted: a.Trusted, Firewall: p.fw, UDP: a.UDP, Limits: a.Limits,
		}, d.em, d.reg, d.log) // udpproxy adds the app id to its log lines
		if err != nil {
			return nil, fmt.Errorf("app %s: %w", a.ID, err)
		}
		return p, nil
	}
	one := *cfg
	one.Apps = []config.App{*a}
	popts := []proxy.Option{proxy.WithFirewall(a.ID, p.fw), proxy.WithGlobalSlots(d.slots)}
	if d.opts.resolver != nil {
		popts = append(popts, proxy.WithResolver(d.opts.resolver))
	}
	if p.tcp, err = proxy.New(&one, d.em, d.reg, d.log, popts...); err != nil {
		return nil, err
	}
	return p, nil
}

func (p *appPart) start() error {
	if p.udp != nil {
		if err := p.udp.Start(); err != nil {
			return err
		}
		p.pool.StartChecks(p.log, "udp")
		return nil
	}
	return p.tcp.Start()
}

func (p *appPart) addrs() []net.Addr {
	if p.udp != nil {
		return p.udp.Addrs()
	}
	return p.tcp.Addrs(p.id)
}

// listenKeys are the sockets the part binds (netspec.ListenKey form).
func (p *appPart) listenKeys() []string {
	if p.udp != nil {
		return p.udp.ListenKeys()
	}
	return p.tcp.ListenKeys()
}

// sockets is what the parts of a reload hand each other.
type sockets struct {
	tcp proxy.Listeners
	udp *udpproxy.Handoff
}

// handOff stops the part accepting on the sockets keep wants and adds them
// to s.
func (p *appPart) handOff(keep func(string) bool, s *sockets) {
	if p.udp != nil {
		s.udp.Merge(p.udp.HandOff(keep))
		return
	}
	for k, ln := range p.tcp.HandOff(keep) {
		s.tcp[k] = ln
	}
}

func (p *appPart) inherit(s *sockets) {
	if p.udp != nil {
		p.udp.Inherit(s.udp)
		return
	}
	p.tcp.Inherit(s.tcp)
}

// shutdown stops accepting and drains until ctx is done.
func (p *appPart) shutdown(ctx context.Context) error {
	if p.udp != nil {
		err := p.udp.Shutdown(ctx)
		p.pool.Close()
		return err
	}
	return p.tcp.Shutdown(ctx)
}

// drain lets the part's connections and sessions end on their own until
// ctx is done, then ends the rest with their terminal records.
func (p *appPart) drain(ctx context.Context) error {
	if p.udp != nil {
		err := p.udp.Drain(ctx)
		p.pool.Close()
		return err
	}
	return p.tcp.Shutdown(ctx)
}

// close releases what the part holds besides its sockets.
func (p *appPart) close() {
	if p.fw != nil {
		_ = p.fw.Close()
	}
}
