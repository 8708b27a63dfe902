package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"net"

	"github.com/prismproxy/prism/internal/config"
	"github.com/prismproxy/prism/internal/daemon/appbuild"
	"github.com/prismproxy/prism/internal/geo"
	"github.com/prismproxy/prism/internal/proxy"
	"github.com/prismproxy/prism/internal/udpproxy"
)

// appPart is one app's running pieces, built, started, handed over and
// closed on its own.
type appPart struct {
	cfg   config.App // as built, to tell whether a reload changed it
	geo   *geo.DB    // the databases its firewall reads
	parts *appbuild.Parts
	tcp   *proxy.Server    // a tcp app
	udp   *udpproxy.Server // a udp app
	id    string
	log   *slog.Logger
}

// buildApp builds app a's parts (appbuild) and the server of its
// protocol, which gets them as plain values.
func (d *Daemon) buildApp(a *config.App, g *geo.DB) (_ *appPart, err error) {
	// p is not the named result: an error return sets that to nil before
	// the cleanup runs, which must close the parts built so far.
	p := &appPart{cfg: *a, geo: g, id: a.ID, log: d.log.With("app", a.ID)}
	defer func() {
		if err != nil {
			p.close()
		}
	}()
	if p.parts, err = appbuild.Build(a, appbuild.Options{Geo: g, Resolver: d.opts.resolver, Log: d.log}); err != nil {
		return nil, err
	}
	if a.Protocol == "udp" {
		// udpproxy adds the app id to its log lines
		if p.udp, err = udpproxy.New(p.parts.UDP(), d.em, d.reg, d.log); err != nil {
			return nil, fmt.Errorf("app %s: %w", a.ID, err)
		}
		return p, nil
	}
	if p.tcp, err = proxy.New(p.parts.TCP(), d.em, d.reg, d.log, proxy.WithGlobalSlots(d.slots)); err != nil {
		return nil, err
	}
	return p, nil
}

func (p *appPart) start() error {
	if err := p.bind(); err != nil {
		return err
	}
	p.serve()
	return nil
}

// bind binds the part's sockets (or takes the inherited ones) without
// accepting or reading on any.
func (p *appPart) bind() error {
	if p.udp != nil {
		return p.udp.Listen()
	}
	return p.tcp.Listen()
}

// serve starts accepting (reading) on what bind bound, and the origins'
// health checks.
func (p *appPart) serve() {
	if p.udp != nil {
		p.udp.Serve()
		p.parts.Pool.StartChecks(p.log, "udp")
		return
	}
	p.tcp.Serve()
}

// release undoes bind before serve: inherited sockets go back to the
// hand-over, bound ones are closed; the edge's watching stops.
func (p *appPart) release() {
	if p.udp != nil {
		p.udp.Release()
	} else {
		p.tcp.Release()
	}
	p.parts.CloseOrigins()
}

func (p *appPart) addrs() []net.Addr {
	if p.udp != nil {
		return p.udp.Addrs()
	}
	return p.tcp.Addrs()
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

// shutdown stops accepting and drains until ctx is done, then stops the
// origins' health checks and the edge's watching.
func (p *appPart) shutdown(ctx context.Context) error {
	defer p.parts.CloseOrigins()
	if p.udp != nil {
		return p.udp.Shutdown(ctx)
	}
	return p.tcp.Shutdown(ctx)
}

// drain lets the part's connections and sessions end on their own until
// ctx is done, then ends the rest with their terminal records.
func (p *appPart) drain(ctx context.Context) error {
	defer p.parts.CloseOrigins()
	if p.udp != nil {
		return p.udp.Drain(ctx)
	}
	return p.tcp.Shutdown(ctx)
}

// close releases what the part holds besides its sockets.
func (p *appPart) close() { p.parts.Close() }
