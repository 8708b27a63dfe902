// Package daemon wires a loaded configuration into running parts: the log
// pipeline, the GeoIP databases, one firewall per app, the TCP server,
// one UDP server per UDP app and the admin listener, all sharing one event.Registry so that log
// jobs see every open session. cmd/prism stays a thin shell around it, and
// tests can run the whole proxy in-process.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prismproxy/prism/internal/admin"
	"github.com/prismproxy/prism/internal/config"
	"github.com/prismproxy/prism/internal/event"
	"github.com/prismproxy/prism/internal/firewall"
	"github.com/prismproxy/prism/internal/geo"
	"github.com/prismproxy/prism/internal/logjob"
	"github.com/prismproxy/prism/internal/origin"
	"github.com/prismproxy/prism/internal/proxy"
	"github.com/prismproxy/prism/internal/render"
	"github.com/prismproxy/prism/internal/udpproxy"
)

// FlushTimeout bounds how long shutdown waits for log jobs to write what
// they hold after the last connection ended.
const FlushTimeout = 15 * time.Second

// Daemon is one running proxy.
type Daemon struct {
	cfg  *config.Config
	log  *slog.Logger
	reg  *event.Registry
	pipe *logjob.Pipeline
	geo  *geo.DB
	fws  []*firewall.Firewall
	tcp  *proxy.Server
	udp  map[string]*udpproxy.Server

	tally   *admin.Tally  // nil when the admin listener is off
	admin   *admin.Server // nil when off
	reloads admin.Reloads
	started atomic.Bool

	pipeClosed bool
}

// Option adjusts how the daemon builds its parts (tests).
type Option func(*options)

type options struct {
	emitter  event.Emitter // extra emitter fed alongside the pipeline
	resolver origin.Resolver
}

// WithEmitter also sends every event to em (tests observe events with it).
func WithEmitter(em event.Emitter) Option { return func(o *options) { o.emitter = em } }

// WithResolver resolves DNS origins through r.
func WithResolver(r origin.Resolver) Option { return func(o *options) { o.resolver = r } }

type tee []event.Emitter

func (t tee) Emit(e *event.Event) {
	for _, em := range t {
		em.Emit(e)
	}
}

// New builds every part of cfg. Nothing listens until Start.
func New(cfg *config.Config, logger *slog.Logger, opts ...Option) (d *Daemon, err error) {
	var o options
	for _, f := range opts {
		f(&o)
	}
	d = &Daemon{cfg: cfg, log: logger, reg: new(event.Registry), udp: map[string]*udpproxy.Server{}}
	// Every error return sets d to nil: clean up through a copy.
	built := d
	defer func() {
		if err != nil {
			built.abandon()
		}
	}()
	node := render.Node{Colo: cfg.Node.Colo, ID: cfg.Node.ID, RegionName: cfg.Node.RegionName}
	if d.pipe, err = logjob.New(node, cfg.LogJobs, d.reg, logger); err != nil {
		return nil, fmt.Errorf("log jobs: %w", err)
	}
	ems := tee{d.pipe}
	if cfg.Admin.Enabled() {
		ids := make([]string, len(cfg.Apps))
		for i := range cfg.Apps {
			ids[i] = cfg.Apps[i].ID
		}
		d.tally = admin.NewTally(ids)
		ems = append(ems, d.tally)
	}
	if o.emitter != nil {
		ems = append(ems, o.emitter)
	}
	var em event.Emitter = ems
	if len(ems) == 1 {
		em = d.pipe
	}
	if d.geo, err = geo.Open(cfg.GeoIP, logger); err != nil {
		return nil, fmt.Errorf("geoip: %w", err)
	}
	var popts []proxy.Option
	if o.resolver != nil {
		popts = append(popts, proxy.WithResolver(o.resolver))
	}
	fws := map[string]*firewall.Firewall{}
	for i := range cfg.Apps {
		a := &cfg.Apps[i]
		fw, err := firewall.New(a.IPFirewall, d.geo, logger.With("app", a.ID))
		if err != nil {
			return nil, fmt.Errorf("app %s: ip_firewall: %w", a.ID, err)
		}
		d.fws = append(d.fws, fw)
		fws[a.ID] = fw
		if a.Protocol == "tcp" {
			popts = append(popts, proxy.WithFirewall(a.ID, fw))
		}
	}
	if d.tcp, err = proxy.New(cfg, em, d.reg, logger, popts...); err != nil {
		return nil, err
	}
	for i := range cfg.Apps {
		a := &cfg.Apps[i]
		if a.Protocol != "udp" {
			continue
		}
		pool, err := origin.NewPool(a.Origins, a.Block, o.resolver)
		if err != nil {
			return nil, fmt.Errorf("app %s: %w", a.ID, err)
		}
		s, err := udpproxy.New(udpproxy.App{
			ID: a.ID, Listen: a.Listen, Pool: pool, ProxyProtocol: a.ProxyProtocol,
			Trusted: a.Trusted, Firewall: fws[a.ID], UDP: a.UDP, Limits: a.Limits,
		}, em, d.reg, logger) // udpproxy adds the app id to its log lines
		if err != nil {
			return nil, fmt.Errorf("app %s: %w", a.ID, err)
		}
		d.udp[a.ID] = s
	}
	if cfg.Admin.Enabled() {
		if err := d.newAdmin(); err != nil {
			return nil, err
		}
	}
	return d, nil
}

// Start binds every listener. On failure nothing is left listening.
func (d *Daemon) Start() error {
	if err := d.tcp.Start(); err != nil {
		return err
	}
	for id, s := range d.udp {
		if err := s.Start(); err != nil {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			_ = d.stopServers(ctx)
			return fmt.Errorf("app %s: %w", id, err)
		}
	}
	if d.admin != nil {
		if err := d.admin.Start(); err != nil {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			_ = d.stopServers(ctx)
			return err
		}
	}
	d.started.Store(true)
	return nil
}

// Addrs returns the bound addresses of app id (TCP or UDP).
func (d *Daemon) Addrs(id string) []net.Addr {
	if s, ok := d.udp[id]; ok {
		return s.Addrs()
	}
	return d.tcp.Addrs(id)
}

// Registry is the set of open sessions.
func (d *Daemon) Registry() *event.Registry { return d.reg }

// Stats are the log jobs' counters.
func (d *Daemon) Stats() []logjob.Stats { return d.pipe.Stats() }

// Reload is what SIGHUP does: reopen the log jobs' files (after an
// external rotation) and re-read GeoIP databases and firewall list files
// now rather than at their next poll. Certificates are re-read by their own
// watcher.
func (d *Daemon) Reload() error {
	errs := []error{d.pipe.Reopen()}
	if d.geo != nil {
		errs = append(errs, d.geo.Reload(true))
	}
	for _, fw := range d.fws {
		errs = append(errs, fw.Reload(true))
	}
	err := errors.Join(errs...)
	d.reloads.Record(err)
	return err
}

// Shutdown stops accepting, drains connections and sessions until ctx is
// done (then closes the rest, each with its terminal record), and flushes
// every log job.
func (d *Daemon) Shutdown(ctx context.Context) error {
	err := d.stopServers(ctx)
	if d.admin != nil {
		actx, acancel := context.WithTimeout(context.Background(), time.Second)
		if aerr := d.admin.Shutdown(actx); aerr != nil {
			err = errors.Join(err, fmt.Errorf("admin: %w", aerr))
		}
		acancel()
	}
	fctx, cancel := context.WithTimeout(context.Background(), FlushTimeout)
	defer cancel()
	if ferr := d.pipe.Close(fctx); ferr != nil {
		err = errors.Join(err, fmt.Errorf("flush log jobs: %w", ferr))
	}
	d.pipeClosed = true
	d.closeParts()
	return err
}

func (d *Daemon) stopServers(ctx context.Context) error {
	var wg sync.WaitGroup
	errs := make([]error, len(d.udp)+1)
	wg.Add(1)
	go func() { defer wg.Done(); errs[0] = d.tcp.Shutdown(ctx) }()
	i := 1
	for _, s := range d.udp {
		wg.Add(1)
		go func(i int) { defer wg.Done(); errs[i] = s.Shutdown(ctx) }(i)
		i++
	}
	wg.Wait()
	return errors.Join(errs...)
}

// abandon releases what a failed New built: servers that never listened
// (their TLS watchers and resolvers), then the rest.
func (d *Daemon) abandon() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if d.tcp != nil {
		_ = d.tcp.Shutdown(ctx)
	}
	for _, s := range d.udp {
		_ = s.Shutdown(ctx)
	}
	d.closeParts()
}

func (d *Daemon) closeParts() {
	if d.pipe != nil && !d.pipeClosed {
		d.pipeClosed = true
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = d.pipe.Close(ctx)
		cancel()
	}
	for _, fw := range d.fws {
		_ = fw.Close()
	}
	if d.geo != nil {
		_ = d.geo.Close()
	}
}
