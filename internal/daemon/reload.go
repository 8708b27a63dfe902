package daemon

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"time"

	"github.com/prismproxy/prism/internal/config"
	"github.com/prismproxy/prism/internal/daemon/appbuild"
	"github.com/prismproxy/prism/internal/geo"
	"github.com/prismproxy/prism/internal/logjob"
	"github.com/prismproxy/prism/internal/proxy"
	"github.com/prismproxy/prism/internal/udpproxy"
)

// ReloadResult says what a config reload changed.
type ReloadResult struct {
	Added     []string `json:"added"` // app ids
	Changed   []string `json:"changed"`
	Removed   []string `json:"removed"`
	Unchanged []string `json:"unchanged"`
	LogJobs   bool     `json:"log_jobs_rebuilt"` // log_jobs or node changed: the changed jobs were rebuilt
	GeoIP     bool     `json:"geoip_reopened"`   // the GeoIP databases were reopened
}

func (r ReloadResult) String() string {
	return fmt.Sprintf("added %v, changed %v, removed %v, unchanged %d, log jobs rebuilt %v, geoip reopened %v",
		r.Added, r.Changed, r.Removed, len(r.Unchanged), r.LogJobs, r.GeoIP)
}

// ReloadStats counts config reloads since start.
type ReloadStats struct{ OK, Failed int64 }

// ReloadStats are the reload counters.
func (d *Daemon) ReloadStats() ReloadStats {
	return ReloadStats{OK: d.reloadsOK.Load(), Failed: d.reloadsFailed.Load()}
}

// ReloadConfig re-reads the config file and applies it (the first part
// of Hangup: SIGHUP, `prism reload`, POST /api/v1/reload). A file that does not load changes
// nothing: the error lists every problem as file:line: key: reason.
// Otherwise apps added start listening; apps removed stop accepting and
// drain for shutdown.drain_timeout; apps changed get a new server that
// takes over the listening sockets of addresses that stayed (no refused
// connection, no lost datagram) while the old one's connections and
// sessions carry on until they end; unchanged apps are left alone. Log jobs
// that changed (or all, when node changed) are rebuilt, the replaced ones
// writing what they held first; the others keep running untouched.
//
// Reloads run one at a time. The admin side's reads wait only for the
// swap, not for the replaced jobs' flush (up to FlushTimeout, when a
// destination is slow or down), which runs after it: ReloadConfig
// returns once that flush is done.
//
// Once Shutdown has begun, a reload is refused (errStopping).
func (d *Daemon) ReloadConfig() (ReloadResult, error) {
	if err := d.lockReload(); err != nil {
		return ReloadResult{}, err
	}
	defer d.reloadMu.Unlock()
	res, err := d.reloadConfig()
	d.reloads.Record(err)
	return res, err
}

// Hangup is what SIGHUP does: ReloadConfig, then Reload's reopening and
// re-reading, counted as one reload. The config error comes first. Once
// Shutdown has begun it only reopens the log files, as SIGHUP does while
// prism drains, and the config error is errStopping (not counted).
func (d *Daemon) Hangup() (ReloadResult, error, error) {
	if err := d.lockReload(); err != nil {
		return ReloadResult{}, err, d.Reopen()
	}
	defer d.reloadMu.Unlock()
	res, cerr := d.reloadConfig()
	rerr := d.reopenAll()
	d.reloads.Record(errors.Join(cerr, rerr))
	return res, cerr, rerr
}

func (d *Daemon) reloadConfig() (ReloadResult, error) {
	d.mu.Lock()
	path := d.cfg.File
	d.mu.Unlock()
	cfg, err := config.Load(path)
	if err != nil {
		d.reloadsFailed.Add(1)
		var ce *config.Error
		if errors.As(err, &ce) {
			for _, line := range strings.Split(ce.Error(), "\n") {
				d.log.Error("config reload refused: the running config stays", "problem", line)
			}
		} else {
			d.log.Error("config reload refused: the running config stays", "err", err)
		}
		return ReloadResult{}, err
	}
	res, err := d.apply(cfg)
	if err != nil {
		d.reloadsFailed.Add(1)
		d.log.Error("config reload failed", "err", err)
		return res, err
	}
	d.reloadsOK.Add(1)
	for _, id := range append(append([]string{}, res.Added...), res.Changed...) {
		var strs []string
		for _, ad := range d.Addrs(id) {
			strs = append(strs, ad.Network()+":"+ad.String())
		}
		d.log.Info("app listening", "app", id, "addrs", strs)
	}
	d.log.Info("config reloaded", "added", res.Added, "changed", res.Changed, "removed", res.Removed,
		"unchanged", len(res.Unchanged), "log_jobs_rebuilt", res.LogJobs, "geoip_reopened", res.GeoIP)
	return res, nil
}

// Apply makes cfg the running config (see ReloadConfig). Every new part
// is built before anything running changes: an error there changes nothing.
func (d *Daemon) Apply(cfg *config.Config) (ReloadResult, error) {
	if err := d.lockReload(); err != nil {
		return ReloadResult{}, err
	}
	defer d.reloadMu.Unlock()
	return d.apply(cfg)
}

// errStopping is a reload asked for once Shutdown has begun, or after
// HandedOver (the old process of a binary upgrade only drains).
var errStopping = errors.New("prism is stopping: no config is reloaded while it drains")

// lockReload takes reloadMu for a reload, unless Shutdown has begun: then
// it refuses at once, rather than wait for the drain and the flush (which
// Shutdown holds reloadMu through) and then change a stopped daemon. A
// reload that got reloadMu before Shutdown runs to its end; Shutdown
// waits for it.
func (d *Daemon) lockReload() error {
	if d.stopping.Load() {
		return errStopping
	}
	d.reloadMu.Lock()
	if d.stopping.Load() { // Shutdown began while this one waited
		d.reloadMu.Unlock()
		return errStopping
	}
	return nil
}

// apply is Apply with reloadMu held: swap under mu, then, with mu
// released, flush and close the log pipeline the swap replaced (if any).
// Its jobs' counters are read live meanwhile (d.carry), so the admin
// side's totals neither dip during the flush nor count them twice after.
func (d *Daemon) apply(cfg *config.Config) (ReloadResult, error) {
	res, replaced, err := d.swap(cfg)
	if replaced != nil {
		fctx, cancel := context.WithTimeout(context.Background(), FlushTimeout)
		if ferr := replaced.Close(fctx); ferr != nil {
			d.log.Error("reload: the replaced log jobs could not write everything they held", "err", ferr)
		}
		cancel()
		d.carry.pipelineFlushed(replaced) // the jobs it retired: their successors count from zero; the ones the new pipeline took over count on
	}
	return res, err
}

// swap builds cfg's parts and puts them in place of the running ones,
// under mu. It returns the log pipeline it replaced, still to be flushed
// and closed (nil when log_jobs and node did not change).
func (d *Daemon) swap(cfg *config.Config) (res ReloadResult, replaced *logjob.Pipeline, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.started.Load() {
		return res, nil, errors.New("reload before start")
	}
	if d.upgraded {
		// A reload that passed lockReload before HandedOver: the sockets
		// are the new process's, which reads the config itself.
		return res, nil, errStopping
	}
	old := d.cfg

	// 1. Build.
	g := d.geo
	if !reflect.DeepEqual(old.GeoIP, cfg.GeoIP) {
		if g, err = geo.Open(cfg.GeoIP, d.log); err != nil {
			return res, nil, fmt.Errorf("geoip: %w", err)
		}
		res.GeoIP = true
	}
	// A top-level setting every app reads (max_connections, limits…)
	// rebuilds them all; max_connections gets new shared slots, the
	// replaced servers keep the old ones until their connections end.
	globals := globalsChanged(old, cfg)
	oldSlots := d.slots
	if globals {
		d.slots = appbuild.GlobalSlots(cfg)
	}
	fresh := map[string]*appPart{}
	swapped := false // past the build: an error then is an app that could not start, the rest applied
	defer func() {
		if err != nil && !swapped {
			d.slots = oldSlots
			for _, p := range fresh {
				p.close()
			}
			if res.GeoIP && g != nil {
				_ = g.Close()
			}
		}
	}()
	for i := range cfg.Apps {
		a := &cfg.Apps[i]
		if p := d.apps[a.ID]; p != nil && !res.GeoIP && !globals && reflect.DeepEqual(p.cfg, *a) {
			res.Unchanged = append(res.Unchanged, a.ID)
			continue
		}
		p, err := d.buildApp(a, g)
		if err != nil {
			return res, nil, err
		}
		fresh[a.ID] = p
		if d.apps[a.ID] != nil {
			res.Changed = append(res.Changed, a.ID)
		} else {
			res.Added = append(res.Added, a.ID)
		}
	}
	var removed []*appPart
	for _, id := range d.order {
		if !hasApp(cfg, id) {
			removed = append(removed, d.apps[id])
			res.Removed = append(res.Removed, id)
		}
	}
	pipe := d.pipe
	res.LogJobs = !reflect.DeepEqual(old.LogJobs, cfg.LogJobs) || old.Node != cfg.Node
	if res.LogJobs {
		if pipe, err = d.newPipeline(cfg, d.pipe); err != nil {
			return res, nil, err
		}
	}

	// 2. Swap. From here on nothing fails as a whole: an app that cannot
	// start is logged and keeps running with its old settings.
	swapped = true
	if res.LogJobs {
		replaced = d.pipe
		d.em.swap(d.emitterFor(pipe))
		d.pipeMu.Lock()
		d.pipe = pipe
		d.pipeMu.Unlock()
		// Only now: its new jobs' walks begin once they get every event,
		// and it takes the unchanged jobs over, which the replaced one's
		// Close (apply, once mu is released) then leaves running.
		pipe.Start()
		d.carry.pipelineFlushing(replaced) // counted live, from now (Stats takes mu), until it is flushed
	}
	wanted := map[string]bool{}
	for _, p := range fresh {
		for _, k := range p.listenKeys() {
			wanted[k] = true
		}
	}
	// Every SO_REUSEPORT socket of a UDP port that stays, even beyond the
	// new udp.sockets: the kernel goes on hashing clients to each of them,
	// and the new server reads them all.
	keep := func(k string) bool { return wanted[k] || wanted[udpproxy.PortKey(k)] }
	socks := &sockets{tcp: proxy.Listeners{}, udp: udpproxy.NewHandoff()}
	for id := range fresh {
		if p := d.apps[id]; p != nil {
			p.handOff(keep, socks)
		}
	}
	for _, p := range removed {
		p.handOff(keep, socks) // an address moving to another app
	}
	if d.tally != nil {
		d.tally.Add(res.Added...) // before they start emitting
	}
	var startErrs []error
	notApplied := map[string]bool{} // apps whose new settings could not start
	for id, p := range fresh {
		p.inherit(socks)
		if serr := p.start(); serr != nil {
			startErrs = append(startErrs, fmt.Errorf("app %s: %w", id, serr))
			notApplied[id] = true
			p.close()
			delete(fresh, id)
			if prev := d.apps[id]; prev != nil {
				// Put the old settings back on the sockets it handed over.
				if back, berr := d.buildApp(&prev.cfg, prev.geo); berr == nil {
					back.inherit(socks)
					if berr = back.start(); berr == nil {
						fresh[id] = back
						continue
					}
					back.close()
				}
				d.log.Error("reload: app stopped: neither its new nor its old settings could take its sockets", "app", id)
			}
		}
	}
	if len(notApplied) > 0 {
		cfg = d.keepRunningSettings(cfg, notApplied, &res)
	}
	socks.tcp.Close()
	socks.udp.Close()

	// 3. Retire what was replaced or removed.
	drain := cfg.Shutdown.DrainTimeout
	for id, p := range fresh {
		if prev := d.apps[id]; prev != nil {
			d.retire(prev, 0) // its connections carry on until they end
		}
		d.apps[id] = p
	}
	for _, p := range removed {
		delete(d.apps, p.id)
		d.retire(p, drain)
	}
	d.order = d.order[:0]
	for i := range cfg.Apps {
		if d.apps[cfg.Apps[i].ID] != nil {
			d.order = append(d.order, cfg.Apps[i].ID)
		}
	}
	if res.GeoIP {
		// Firewalls of parts still draining may read the old databases:
		// they are closed with the daemon.
		d.oldGeo = append(d.oldGeo, d.geo)
		d.geo = g
	}
	if !reflect.DeepEqual(d.cfg.Admin, cfg.Admin) {
		// The admin listener is built once, at start; say so rather than
		// take the new settings in silence.
		d.log.Warn("admin settings changed: they take effect at a restart or a binary upgrade; the admin listener serves as before",
			"configured", cfg.Admin.Listen)
	}
	d.cfg = cfg
	return res, replaced, errors.Join(startErrs...)
}

// keepRunningSettings is cfg as it runs after a reload in which the apps
// of notApplied could not start with their new settings: each such app
// that was running has its old entry back (it serves with those), one that
// was new is left out, and the result lists neither as changed or added.
// The API and `prism status` then show what serves, not what was asked.
func (d *Daemon) keepRunningSettings(cfg *config.Config, notApplied map[string]bool, res *ReloadResult) *config.Config {
	out := *cfg
	out.Apps = make([]config.App, 0, len(cfg.Apps)) // a new array: running parts may point into the old one
	for i := range cfg.Apps {
		a := cfg.Apps[i]
		if notApplied[a.ID] {
			prev := d.apps[a.ID]
			if prev == nil {
				continue
			}
			a = prev.cfg
		}
		out.Apps = append(out.Apps, a)
	}
	drop := func(ids []string) []string {
		var kept []string
		for _, id := range ids {
			if !notApplied[id] {
				kept = append(kept, id)
			}
		}
		return kept
	}
	res.Changed, res.Added = drop(res.Changed), drop(res.Added)
	return &out
}

// retire drains p in the background: for up to timeout (0: until its
// connections end by themselves), and at the latest when Shutdown's drain
// deadline passes.
func (d *Daemon) retire(p *appPart, timeout time.Duration) {
	ctx, cancel := d.retireCtx, context.CancelFunc(func() {})
	if timeout > 0 {
		ctx, cancel = context.WithTimeout(d.retireCtx, timeout)
	}
	d.carry.retiring(p) // its counters are read live while it drains
	d.retired.Add(1)
	go func() {
		defer d.retired.Done()
		defer cancel()
		if err := p.drain(ctx); err != nil {
			d.log.Warn("draining a replaced app", "app", p.id, "err", err)
		}
		d.carry.retired(p)
		p.close()
	}()
}

// globalsChanged reports whether a top-level setting the app servers read
// differs: everything but the sections handled on their own.
func globalsChanged(a, b *config.Config) bool {
	strip := func(c *config.Config) config.Config {
		x := c.Unindexed() // the key-to-line index differs when a line moves
		x.Apps, x.LogJobs, x.File = nil, nil, ""
		x.Node, x.GeoIP, x.Shutdown, x.Log = config.Node{}, b.GeoIP, config.Shutdown{}, config.Diagnostic{}
		x.Admin = b.Admin
		return x
	}
	return !reflect.DeepEqual(strip(a), strip(b))
}

func hasApp(cfg *config.Config, id string) bool {
	for i := range cfg.Apps {
		if cfg.Apps[i].ID == id {
			return true
		}
	}
	return false
}
