// Package daemon wires a loaded configuration into running parts: the log
// pipeline, the GeoIP databases, one part per app (the parts appbuild
// builds from its config — origin pools, TLS edge, firewall, limiter — and
// the TCP or UDP server they are handed to) and the admin listener, all sharing one
// event.Registry so that log jobs see every open session. Parts are built, started, replaced and
// closed on their own, which is what a config reload does (reload.go):
// build the new parts, keep the ones that did not change, hand the
// listening sockets of the changed ones to their replacements, drain the
// removed ones. cmd/prism stays a thin shell around it, and tests can run
// the whole proxy in-process.
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
	"github.com/prismproxy/prism/internal/daemon/appbuild"
	"github.com/prismproxy/prism/internal/event"
	"github.com/prismproxy/prism/internal/geo"
	"github.com/prismproxy/prism/internal/logjob"
	"github.com/prismproxy/prism/internal/origin"
	"github.com/prismproxy/prism/internal/render"
	"github.com/prismproxy/prism/internal/upgrade"
)

// FlushTimeout bounds how long shutdown waits for log jobs to write what
// they hold after the last connection ended.
const FlushTimeout = 15 * time.Second

// Daemon is one running proxy.
type Daemon struct {
	log  *slog.Logger
	reg  *event.Registry
	opts options
	em   *swapEmitter // what every server emits to: the current pipeline (and the test emitter)

	// reloadMu serialises reloads, each from its build to the end of the
	// replaced log jobs' flush, and Shutdown, which waits for that flush
	// and holds it to the end. Taken before mu, never while holding it.
	reloadMu sync.Mutex
	// mu guards the running parts: Start, a reload's swap, Shutdown, and
	// the admin side's reads (metrics, summary, status), which must not
	// wait for a flush or a drain: a reload holds it only while it swaps,
	// Shutdown only to read the parts and, at the end, to close them.
	mu     sync.Mutex
	cfg    *config.Config
	pipe   *logjob.Pipeline // written under both mu and pipeMu
	pipeMu sync.Mutex       // pipe for Reopen (SIGUSR1), which must not wait for mu
	geo    *geo.DB
	apps   map[string]*appPart
	order  []string  // app ids in config order
	oldGeo []*geo.DB // replaced by a reload, closed at Shutdown

	// Parts replaced or removed by a reload, still draining.
	retired       sync.WaitGroup
	retireCtx     context.Context // cancelled when Shutdown's drain deadline passes
	retireCancel  context.CancelFunc
	reloadsOK     atomic.Int64
	reloadsFailed atomic.Int64

	slots chan struct{} // the config's global max_connections, shared by every tcp app; nil: none

	tally   *admin.Tally  // nil when the admin listener is off
	carry   carried       // counters of parts and log jobs a reload replaced
	admin   *admin.Server // nil when off; built once, a reload does not rebuild it
	reloads admin.Reloads

	started    atomic.Bool
	stopping   atomic.Bool // Shutdown (or HandedOver) has begun: reloads are refused, /readyz is not ready
	upgraded   bool        // HandedOver: Shutdown drains only
	pipeClosed bool
}

// Option adjusts how the daemon builds its parts (tests).
type Option func(*options)

type options struct {
	emitter   event.Emitter // extra emitter fed alongside the pipeline
	resolver  origin.Resolver
	inherited []upgrade.File
}

// WithEmitter also sends every event to em (tests observe events with it).
func WithEmitter(em event.Emitter) Option { return func(o *options) { o.emitter = em } }

// WithResolver resolves DNS origins through r.
func WithResolver(r origin.Resolver) Option { return func(o *options) { o.resolver = r } }

// New builds every part of cfg. Nothing listens until Start.
func New(cfg *config.Config, logger *slog.Logger, opts ...Option) (d *Daemon, err error) {
	d = &Daemon{cfg: cfg, log: logger, reg: new(event.Registry), apps: map[string]*appPart{}}
	for _, f := range opts {
		f(&d.opts)
	}
	d.retireCtx, d.retireCancel = context.WithCancel(context.Background())
	// Every error return sets d to nil: clean up through a copy.
	built := d
	defer func() {
		if err != nil {
			built.abandon()
		}
	}()
	if d.pipe, err = d.newPipeline(cfg, nil); err != nil {
		return nil, err
	}
	if cfg.Admin.Enabled() {
		ids := make([]string, len(cfg.Apps))
		for i := range cfg.Apps {
			ids[i] = cfg.Apps[i].ID
		}
		d.tally = admin.NewTally(ids)
	}
	d.slots = appbuild.GlobalSlots(cfg)
	d.em = newSwapEmitter(d.emitterFor(d.pipe))
	if d.geo, err = geo.Open(cfg.GeoIP, logger); err != nil {
		return nil, fmt.Errorf("geoip: %w", err)
	}
	for i := range cfg.Apps {
		a := &cfg.Apps[i]
		p, err := d.buildApp(a, d.geo)
		if err != nil {
			return nil, err
		}
		d.apps[a.ID] = p
		d.order = append(d.order, a.ID)
	}
	if cfg.Admin.Enabled() {
		if err := d.newAdmin(); err != nil {
			return nil, err
		}
	}
	return d, nil
}

// newPipeline builds the log pipeline of cfg. With prev (a reload), it
// takes over prev's jobs that did not change (logjob.Pipeline.Next): they
// keep their queues, counters and per-session byte totals, so the deltas
// of sessions open across the reload stay exact. Start it once the servers
// emit to it.
func (d *Daemon) newPipeline(cfg *config.Config, prev *logjob.Pipeline) (*logjob.Pipeline, error) {
	node := render.Node{Colo: cfg.Node.Colo, ID: cfg.Node.ID, RegionName: cfg.Node.RegionName}
	var p *logjob.Pipeline
	var err error
	if prev != nil {
		p, err = prev.Next(node, cfg.LogJobs, d.reg)
	} else {
		p, err = logjob.New(node, cfg.LogJobs, d.reg, d.log)
	}
	if err != nil {
		return nil, fmt.Errorf("log jobs: %w", err)
	}
	return p, nil
}

// emitterFor is what the servers emit to with pipeline p: p, the admin
// tally and the test emitter.
func (d *Daemon) emitterFor(p *logjob.Pipeline) event.Emitter {
	ems := tee{p}
	if d.tally != nil {
		ems = append(ems, d.tally)
	}
	if d.opts.emitter != nil {
		ems = append(ems, d.opts.emitter)
	}
	if len(ems) == 1 {
		return p
	}
	return ems
}

type tee []event.Emitter

func (t tee) Emit(e *event.Event) {
	for _, em := range t {
		em.Emit(e)
	}
}

// Start binds every listener (or takes the inherited ones), then starts
// serving on all of them. On failure nothing is left listening, and no app
// accepted a connection or read a datagram: the new process of a binary
// upgrade that cannot bind one app gives up before it takes anything from
// the sockets it shares with the old one, which goes on serving it all.
func (d *Daemon) Start() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	var inh *sockets
	if len(d.opts.inherited) > 0 {
		var err error
		if inh, err = inheritedSockets(d.opts.inherited); err != nil {
			return err
		}
		d.opts.inherited = nil
		defer func() { inh.tcp.Close(); inh.udp.Close() }() // the ones no app took
	}
	release := func(ids []string) {
		for _, id := range ids {
			d.apps[id].release()
		}
	}
	for i, id := range d.order {
		if inh != nil {
			d.apps[id].inherit(inh)
		}
		if err := d.apps[id].bind(); err != nil {
			release(d.order[:i])
			return fmt.Errorf("app %s: %w", id, err)
		}
	}
	if d.admin != nil {
		var ln net.Listener
		if inh != nil {
			ln = inh.tcp[adminKey(d.cfg.Admin.Listen)]
			delete(inh.tcp, adminKey(d.cfg.Admin.Listen))
		}
		if err := d.admin.StartOn(ln); err != nil {
			release(d.order)
			return err
		}
	}
	for _, id := range d.order {
		d.apps[id].serve()
	}
	d.started.Store(true)
	return nil
}

// Addrs returns the bound addresses of app id (TCP or UDP).
func (d *Daemon) Addrs(id string) []net.Addr {
	d.mu.Lock()
	defer d.mu.Unlock()
	if p := d.apps[id]; p != nil {
		return p.addrs()
	}
	return nil
}

// Config is the configuration running now (the last one loaded).
func (d *Daemon) Config() *config.Config {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cfg
}

// Registry is the set of open sessions.
func (d *Daemon) Registry() *event.Registry { return d.reg }

// Stats are the log jobs' counters since start: a job's counters go on
// across the reloads that rebuild the pipeline (by job name).
func (d *Daemon) Stats() []logjob.Stats {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.carry.jobStats(d.pipe.Stats())
}

// Reload reopens the log jobs' files (after an external rotation) and
// re-reads GeoIP databases, firewall list files and the apps'
// certificate, key and CA files now rather than at their next poll; it
// counts as a reload. SIGHUP does this after re-reading the config
// (Hangup).
func (d *Daemon) Reload() error {
	err := d.reopenAll()
	d.reloads.Record(err)
	return err
}

func (d *Daemon) reopenAll() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	errs := []error{d.pipe.Reopen()}
	if d.geo != nil {
		errs = append(errs, d.geo.Reload(true))
	}
	for _, id := range d.order {
		if fw := d.apps[id].parts.Firewall; fw != nil {
			errs = append(errs, fw.Reload(true))
		}
		if e := d.apps[id].parts.Edge; e != nil {
			errs = append(errs, e.Reload(true))
		}
	}
	return errors.Join(errs...)
}

// Reopen is what SIGUSR1 does: reopen the log jobs' files only.
// It does not wait for a drain (Shutdown) in progress.
func (d *Daemon) Reopen() error {
	d.pipeMu.Lock()
	p := d.pipe
	d.pipeMu.Unlock()
	return p.Reopen()
}

// Shutdown stops accepting, drains connections and sessions until ctx is
// done (then closes the rest, each with its terminal record), and flushes
// every log job. Parts still draining after a reload end by the same
// deadline. A reload in progress ends first, its replaced log jobs
// flushed; a later one is refused (lockReload).
//
// The drain (shutdown.drain_timeout) and the flush (up to FlushTimeout)
// run without mu: the admin listener goes on answering meanwhile — the
// sessions still open, the counters as they move, /readyz not ready — and
// is closed once the log jobs are flushed. Nothing else changes the
// running parts then: reloads are refused, and HandedOver (an upgrade)
// came before.
func (d *Daemon) Shutdown(ctx context.Context) error {
	d.stopping.Store(true)
	d.reloadMu.Lock() // a reload's replaced jobs write what they hold first
	defer d.reloadMu.Unlock()
	d.mu.Lock()
	upgraded, adm, pipe := d.upgraded, d.admin, d.pipe
	parts := make([]*appPart, len(d.order))
	for i, id := range d.order {
		parts[i] = d.apps[id]
	}
	d.mu.Unlock()

	stop := context.AfterFunc(ctx, d.retireCancel)
	defer stop()
	var wg sync.WaitGroup
	errs := make([]error, len(parts))
	for i, p := range parts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if upgraded {
				errs[i] = p.drain(ctx) // the sockets are the new process's
			} else {
				errs[i] = p.shutdown(ctx)
			}
		}()
	}
	wg.Wait()
	d.retired.Wait()
	err := errors.Join(errs...)
	fctx, cancel := context.WithTimeout(context.Background(), FlushTimeout)
	defer cancel()
	if ferr := pipe.Close(fctx); ferr != nil {
		err = errors.Join(err, fmt.Errorf("flush log jobs: %w", ferr))
	}
	if adm != nil {
		actx, acancel := context.WithTimeout(context.Background(), time.Second)
		if aerr := adm.Shutdown(actx); aerr != nil {
			err = errors.Join(err, fmt.Errorf("admin: %w", aerr))
		}
		acancel()
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.pipeClosed = true
	for _, p := range d.apps {
		p.close()
	}
	d.closeParts()
	return err
}

// abandon releases what a failed New built: servers that never listened
// (their TLS watchers and resolvers), then the rest.
func (d *Daemon) abandon() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	for _, p := range d.apps {
		if p.tcp != nil || p.udp != nil {
			_ = p.shutdown(ctx)
		}
		p.close()
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
	if d.geo != nil {
		_ = d.geo.Close()
	}
	for _, g := range d.oldGeo {
		if g != nil {
			_ = g.Close()
		}
	}
}
