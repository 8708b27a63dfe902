package daemon

import (
	"errors"
	"fmt"
	"net"

	"github.com/prismproxy/prism/internal/admin"
	"github.com/prismproxy/prism/internal/event"
	"github.com/prismproxy/prism/internal/tlsedge"
)

// Version is what the admin side reports as prism's version (cmd/prism
// sets it).
var Version = "dev"

// newAdmin builds the admin listener of d's config over d's parts.
func (d *Daemon) newAdmin() error {
	cfg := d.cfg
	p := &admin.Parts{
		Version:      Version,
		Registry:     d.reg,
		Tally:        d.tally,
		Reloads:      &d.reloads,
		Jobs:         d.pipe.Stats,
		Close:        d.closeSession,
		Ready:        d.ready,
		HealthChecks: func() int64 { return d.tcp.Stats().HealthChecks },
		AcceptErrors: d.tcp.AcceptErrors,
	}
	if d.geo != nil {
		p.Geo = d.geo.Builds
	}
	edges := d.tcp.Edges()
	for i := range cfg.Apps {
		a := &cfg.Apps[i]
		pa := admin.App{
			ID: a.ID, Protocol: a.Protocol, Listen: a.Listen, Balance: a.Origins.Balance,
			ProxyProtocol: a.ProxyProtocol, TLSMode: a.TLS.Mode,
			Addrs: func() []string {
				var out []string
				for _, ad := range d.Addrs(a.ID) {
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
		if s, ok := d.udp[a.ID]; ok {
			pa.UDP = s.Stats
			if a.Limits.Enabled() {
				pa.Refused = s.LimitRefusals
			}
		} else {
			pa.Dial = d.tcp.DialLatency(a.ID)
			if a.Limits.Enabled() || a.Limits.MaxTLSHandshakes > 0 {
				id := a.ID
				pa.Refused = func() map[string]uint64 { return d.tcp.LimitRefusals()[id] }
			}
		}
		if e := edges[a.ID]; e != nil && a.TLS.Terminates() {
			pa.Certs = e.Certificates
		}
		p.Apps = append(p.Apps, pa)
	}
	s, err := admin.New(cfg.Admin, p, d.log.With("component", "admin"))
	if err != nil {
		return err
	}
	d.admin = s
	return nil
}

// closeSession ends one open session of app as a close by the proxy.
func (d *Daemon) closeSession(app string, id event.ID, detail string) bool {
	if s, ok := d.udp[app]; ok {
		return s.CloseSession(id, detail)
	}
	return d.tcp.CloseSession(id, detail)
}

// ready is nil once every listener is bound and every certificate and CA
// file loaded.
func (d *Daemon) ready() error {
	if !d.started.Load() {
		return errors.New("listeners not bound yet")
	}
	var errs []error
	for id, e := range d.tcp.Edges() {
		if err := e.Ready(); err != nil {
			errs = append(errs, fmt.Errorf("app %s: %w", id, err))
		}
	}
	return errors.Join(errs...)
}

// AdminAddr is the bound admin address, nil when the admin listener is off.
func (d *Daemon) AdminAddr() net.Addr {
	if d.admin == nil {
		return nil
	}
	return d.admin.Addr()
}
