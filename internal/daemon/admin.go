package daemon

import (
	"errors"
	"fmt"
	"net"

	"github.com/prismproxy/prism/internal/admin"
	"github.com/prismproxy/prism/internal/event"
	"github.com/prismproxy/prism/internal/geo"
	"github.com/prismproxy/prism/internal/tlsedge"
	"github.com/prismproxy/prism/internal/udpproxy"
)

// Version is what the admin side reports as prism's version (cmd/prism
// sets it).
var Version = "dev"

// part is the running part of app id (nil if none); the admin side reads
// through it so that a reload's replacements are what it sees.
func (d *Daemon) part(id string) *appPart {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.apps[id]
}

// newAdmin builds the admin listener of d's config over d's parts.
func (d *Daemon) newAdmin() error {
	cfg := d.cfg
	p := &admin.Parts{
		Version:      Version,
		Registry:     d.reg,
		Tally:        d.tally,
		Reloads:      &d.reloads,
		Jobs:         d.Stats,
		Close:        d.closeSession,
		Ready:        d.ready,
		HealthChecks: d.healthChecks,
		AcceptErrors: d.acceptErrors,
		Reload:       d.adminReload,
		OriginHealth: d.OriginHealth,
	}
	p.Geo = func() []geo.Build { // the databases of the last applied config
		d.mu.Lock()
		g := d.geo
		d.mu.Unlock()
		return g.Builds()
	}
	p.AppList = d.adminApps
	s, err := admin.New(cfg.Admin, p, d.log.With("component", "admin"))
	if err != nil {
		return err
	}
	d.admin = s
	return nil
}

// hangupAnswer is POST /api/v1/reload's answer: what the config reload
// changed and, when reopening or re-reading a file failed after it, why.
type hangupAnswer struct {
	ReloadResult
	ReopenError string `json:"reopen_error,omitempty"`
}

// adminReload is POST /api/v1/reload: what SIGHUP does (Hangup), so that a
// certificate renewal hook or a rotation script may call either. A config
// that does not load is the error (422, the running config stays); a file
// that could not be reopened or re-read after a good config is reported
// in the answer and logged, as SIGHUP logs it.
func (d *Daemon) adminReload() (any, error) {
	res, cerr, rerr := d.Hangup()
	if cerr != nil {
		return res, cerr
	}
	a := hangupAnswer{ReloadResult: res}
	if rerr != nil {
		a.ReopenError = rerr.Error()
		d.log.Error("reload through the admin API: reopening and re-reading files", "err", rerr)
	}
	return a, nil
}

// adminApps is what the admin side shows of the apps running now: the
// ones of the last applied config, read anew on every request so that a
// reload's added apps appear and its removed ones disappear.
func (d *Daemon) adminApps() []admin.App {
	d.mu.Lock()
	defer d.mu.Unlock()
	cfg := d.cfg
	out := make([]admin.App, 0, len(cfg.Apps))
	for i := range cfg.Apps {
		a := &cfg.Apps[i]
		id := a.ID
		pa := admin.App{
			ID: a.ID, Protocol: a.Protocol, Listen: a.Listen, Balance: a.Origins.Balance,
			ProxyProtocol: a.ProxyProtocol, TLSMode: a.TLS.Mode,
			Addrs: func() []string {
				var out []string
				for _, ad := range d.Addrs(id) {
					out = append(out, ad.String())
				}
				return out
			},
		}
		if pa.TLSMode == "" {
			pa.TLSMode = tlsedge.ModeOff
		}
		pa.Origins = append(pa.Origins, a.Origins.Addresses...)
		if dns := a.Origins.DNS; dns != nil {
			pa.Origins = append(pa.Origins, net.JoinHostPort(dns.Name, dns.Port))
		}
		ap := d.apps[id]
		if ap == nil {
			continue
		}
		if ap.udp != nil {
			pa.UDP = func() udpproxy.Stats { return d.udpStats(id) }
			if a.Limits.Enabled() {
				pa.Refused = func() map[string]uint64 { return d.refusals(id) }
			}
		} else {
			pa.Dial = ap.tcp.DialLatency() // the current server's: a changed app starts afresh
			if a.Limits.Enabled() || a.Limits.MaxTLSHandshakes > 0 {
				pa.Refused = func() map[string]uint64 { return d.refusals(id) }
			}
		}
		if a.Limits.RatePerClient > 0 {
			pa.Evicted = func() uint64 { return d.appCounts(id).evicted }
		}
		if a.TLS.Terminates() {
			pa.Certs = func() []tlsedge.Certificate {
				if p := d.part(id); p != nil && p.tcp != nil {
					if e := p.tcp.Edge(); e != nil {
						return e.Certificates()
					}
				}
				return nil
			}
		}
		out = append(out, pa)
	}
	return out
}

// appCounts is what app id counted since start (every app when id is
// ""): its running part's counters plus those a reload replaced or removed
// (d.carry), so that a changed or removed app does not take its share
// away. d.mu is held across both reads: a reload in between would
// otherwise count a replaced part twice, or not at all.
func (d *Daemon) appCounts(id string) partCounts {
	d.mu.Lock()
	defer d.mu.Unlock()
	c := d.carry.app(id)
	for aid, p := range d.apps {
		if id == "" || aid == id {
			c.add(p.counts())
		}
	}
	return c
}

// udpStats are the UDP counters of app id since start (Blocked: its
// running server's).
func (d *Daemon) udpStats(id string) udpproxy.Stats {
	d.mu.Lock()
	p := d.apps[id]
	d.mu.Unlock()
	st := d.appCounts(id).udp
	if p != nil && p.udp != nil {
		st.Blocked = p.udp.Stats().Blocked
	}
	return st
}

// refusals are the limit refusals of app id since start, by config key.
func (d *Daemon) refusals(id string) map[string]uint64 { return d.appCounts(id).refused }

// healthChecks is how many trusted fronts' health checks the apps saw:
// TCP connections and UDP datagrams (PROXY v2 LOCAL), one counter for
// both, as both write no record.
func (d *Daemon) healthChecks() int64 { return d.appCounts("").health }

// acceptErrors is how many TCP accepts failed, every tcp app.
func (d *Daemon) acceptErrors() uint64 { return d.appCounts("").accept }

// closeSession ends one open session of app as a close by the proxy: one
// of its running part's, or of a part a reload replaced or removed that
// still drains (the session list shows those too).
func (d *Daemon) closeSession(app string, id event.ID, detail string) bool {
	if p := d.part(app); p != nil && p.closeSession(id, detail) {
		return true
	}
	for _, p := range d.carry.drainingOf(app) {
		if p.closeSession(id, detail) {
			return true
		}
	}
	return false
}

func (p *appPart) closeSession(id event.ID, detail string) bool {
	if p.udp != nil {
		return p.udp.CloseSession(id, detail)
	}
	return p.tcp.CloseSession(id, detail)
}

// ready is nil once every listener is bound and every certificate and CA
// file loaded, until a stop begins: the admin listener answers during the
// drain, when prism no longer accepts connections.
func (d *Daemon) ready() error {
	if !d.started.Load() {
		return errors.New("listeners not bound yet")
	}
	if d.stopping.Load() {
		return errors.New("stopping: no longer accepting connections, draining")
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	var errs []error
	for _, p := range d.apps {
		if p.tcp == nil {
			continue
		}
		if e := p.tcp.Edge(); e != nil {
			if err := e.Ready(); err != nil {
				errs = append(errs, fmt.Errorf("app %s: %w", p.id, err))
			}
		}
	}
	return errors.Join(errs...)
}

// AdminAddr is the bound admin address, nil when the admin listener is
// off (or, after HandedOver, the new process's).
func (d *Daemon) AdminAddr() net.Addr {
	d.mu.Lock()
	adm := d.admin
	d.mu.Unlock()
	if adm == nil {
		return nil
	}
	return adm.Addr()
}
