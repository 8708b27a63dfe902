// Package firewall is an app's IP firewall: allow and block rules by IP or
// CIDR, AS number and country, inline or from list files, decided once per
// TCP connection or UDP session before any origin work, with the outcome
// recorded the way Spectrum records it (IpFirewall, ClientMatchedIpFirewall)
// and the client's country and AS number filled in for every record.
//
// Precedence follows Spectrum: the most specific match wins, so an IP/CIDR
// rule (longest prefix first) beats an ASN rule, which beats a country rule.
// Between an allow and a block for the same key (an inline rule and a list,
// or two lists) allow wins, as an explicit exception should. Rules live in
// immutable tables swapped atomically when a list file changes, so a
// decision takes no lock and allocates nothing.
package firewall

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/gaissmai/bart"

	"github.com/prismproxy/prism/internal/event"
	"github.com/prismproxy/prism/internal/filewatch"
	"github.com/prismproxy/prism/internal/geo"
)

// verdict holds the actions of every rule on one key, as bits.
type verdict uint8

const (
	vAllow verdict = 1 << iota
	vBlock
)

func verdictOf(action string) verdict {
	if action == ActionAllow {
		return vAllow
	}
	return vBlock
}

// countrySlots indexes "AA".."ZZ" as 0..675.
const countrySlots = 26 * 26

func countryIdx(cc string) (int, bool) {
	if len(cc) != 2 || cc[0] < 'A' || cc[0] > 'Z' || cc[1] < 'A' || cc[1] > 'Z' {
		return 0, false
	}
	return int(cc[0]-'A')*26 + int(cc[1]-'A'), true
}

// tables is one immutable snapshot of every rule.
type tables struct {
	prefixes bart.Fast[verdict]
	asns     map[uint32]verdict
	country  [countrySlots]verdict
	nCountry int
	size     int
}

func (t *tables) add(k key, v verdict) {
	switch k.kind {
	case kindPrefix:
		t.prefixes.Modify(k.prefix, func(old verdict, _ bool) (verdict, bool) { return old | v, false })
	case kindASN:
		t.asns[k.asn] |= v
	case kindCountry:
		if i, ok := countryIdx(k.country); ok {
			if t.country[i] == 0 {
				t.nCountry++
			}
			t.country[i] |= v
		}
	}
	t.size++
}

// listFile is one configured list and the entries last read from it.
type listFile struct {
	path    string
	verdict verdict
	keys    []key
	seen    filewatch.Stamp // guarded by Firewall.mu
}

// Firewall decides for client addresses of one app. A nil *Firewall is a
// firewall that is off and has no GeoIP data.
type Firewall struct {
	enabled    bool
	failClosed bool
	defBlock   bool
	db         *geo.DB
	logger     *slog.Logger

	inline  []key
	inlineV []verdict
	lists   []*listFile
	cur     atomic.Pointer[tables]

	mu      sync.Mutex    // serialises reloads
	changed chan struct{} // closed when a reload changed the rules or the GeoIP data; guarded by mu

	poll      *filewatch.Poller // nil when no list file is watched
	geoStop   chan struct{}     // ends watchGeo; nil when there is no database
	closeOnce sync.Once
}

// New builds the firewall of one app from cfg, defaulted and validated (by
// package config, or cfgerr.Prepare); the zero value is a firewall that is
// off (Apply still fills Country and ASN from db). db may be nil. A list
// file that cannot be read or parsed is an error.
func New(cfg Config, db *geo.DB, logger *slog.Logger) (*Firewall, error) {
	if logger == nil {
		logger = slog.Default()
	}
	f := &Firewall{
		enabled:    cfg.Enabled != nil && *cfg.Enabled,
		failClosed: cfg.FailClosed,
		defBlock:   cfg.Default == ActionBlock,
		db:         db,
		logger:     logger.With("component", "firewall"),
		changed:    make(chan struct{}),
	}
	if !f.enabled {
		f.cur.Store(newTables())
		return f, nil
	}
	for _, r := range cfg.Rules {
		k, _, err := r.parse()
		if err != nil {
			return nil, fmt.Errorf("ip_firewall rule: %w", err)
		}
		f.inline = append(f.inline, k)
		f.inlineV = append(f.inlineV, verdictOf(r.Action))
	}
	for _, l := range cfg.Lists {
		lf := &listFile{path: l.Path, verdict: verdictOf(l.Action)}
		seen, err := filewatch.Stat(l.Path)
		if err != nil {
			return nil, fmt.Errorf("ip_firewall list: %w", err)
		}
		if lf.keys, err = readList(l.Path); err != nil {
			return nil, fmt.Errorf("ip_firewall list: %w", err)
		}
		lf.seen = seen
		f.lists = append(f.lists, lf)
	}
	t := f.build()
	f.cur.Store(t)
	f.logger.Info("IP firewall on", "prefixes", t.prefixes.Size(), "asns", len(t.asns), "countries", t.nCountry,
		"lists", len(f.lists), "default", cfg.Default, "fail_closed", f.failClosed)
	f.warnUndecidable(t)
	if len(f.lists) > 0 {
		f.poll = filewatch.Start(cfg.ReloadInterval, func() { _ = f.Reload(false) })
	}
	if db != nil {
		// Taken here, not in the goroutine: a database replaced before its
		// first run would be missed.
		f.geoStop = make(chan struct{})
		go f.watchGeo(db.Replaced(), f.geoStop)
	}
	return f, nil
}

// watchGeo passes a replaced GeoIP database on as a change (Changed) while
// the rules have ASN or country entries: their verdicts read what the
// database says of an address, so a UDP server's negative entries made
// from them may be wrong now. Rules of addresses only do not depend on it.
func (f *Firewall) watchGeo(replaced <-chan struct{}, stop <-chan struct{}) {
	for {
		select {
		case <-stop:
			return
		case <-replaced:
		}
		// The next signal is taken before this one is passed on, so a
		// database replaced meanwhile is passed on too.
		replaced = f.db.Replaced()
		if t := f.cur.Load(); len(t.asns) == 0 && t.nCountry == 0 {
			continue
		}
		f.mu.Lock()
		close(f.changed)
		f.changed = make(chan struct{})
		f.mu.Unlock()
		f.logger.Info("GeoIP database replaced: country and ASN rules decide afresh")
	}
}

func newTables() *tables { return &tables{asns: make(map[uint32]verdict)} }

func (f *Firewall) build() *tables {
	t := newTables()
	for i, k := range f.inline {
		t.add(k, f.inlineV[i])
	}
	for _, l := range f.lists {
		for _, k := range l.keys {
			t.add(k, l.verdict)
		}
	}
	return t
}

// warnUndecidable says once, at load, when rules need a database that is
// not configured: every connection that reaches them is then BLOCK_ERROR
// (fail_closed) or passes them by.
func (f *Firewall) warnUndecidable(t *tables) {
	outcome := "these rules are skipped"
	if f.failClosed {
		outcome = "connections that reach these rules are refused (BLOCK_ERROR)"
	}
	if len(t.asns) > 0 && !f.db.HasASN() {
		f.logger.Warn("ASN rules but no geoip.asn_db; "+outcome, "asn_rules", len(t.asns))
	}
	if t.nCountry > 0 && !f.db.HasCountry() {
		f.logger.Warn("country rules but no geoip.country_db; "+outcome, "country_rules", t.nCountry)
	}
}

// Enabled reports whether the firewall is on.
func (f *Firewall) Enabled() bool { return f != nil && f.enabled }

// Apply decides for the real client address and fills e.Firewall,
// e.FirewallMatch, e.Country and e.ASN (country and ASN whenever a database
// is configured, even with the firewall off). It reports whether the
// connection must be refused. It takes no lock and does not allocate.
//
// An address that is not valid (a unix-socket client) matches no rule and
// gets the default action.
func (f *Firewall) Apply(client netip.Addr, e *event.Event) (blocked bool) {
	e.FirewallMatch = event.FirewallUnknown
	if f == nil {
		e.Firewall = false
		return false
	}
	client = client.Unmap()
	ans := f.db.Resolve(client)
	e.Country, e.ASN = ans.Country, ans.ASN
	e.Firewall = f.enabled
	if !f.enabled {
		return false
	}
	match, blocked := f.decide(client, &ans)
	e.FirewallMatch = match
	return blocked
}

// decide walks the precedence levels: prefix, ASN, country, default.
func (f *Firewall) decide(client netip.Addr, ans *geo.Answer) (string, bool) {
	t := f.cur.Load()
	if v, ok := t.prefixes.Lookup(client); ok {
		return outcome(v, event.FirewallWhitelistIP, event.FirewallBlockIP)
	}
	if !client.IsValid() {
		return f.byDefault()
	}
	if len(t.asns) > 0 {
		if !f.db.HasASN() || ans.ASNErr != nil {
			if f.failClosed {
				return event.FirewallBlockError, true
			}
		} else if v, ok := t.asns[ans.ASN]; ok && ans.ASN != 0 {
			return outcome(v, event.FirewallWhitelistASN, event.FirewallBlockASN)
		}
	}
	if t.nCountry > 0 {
		if !f.db.HasCountry() || ans.CountryErr != nil {
			if f.failClosed {
				return event.FirewallBlockError, true
			}
		} else if i, ok := countryIdx(ans.Country); ok && t.country[i] != 0 {
			return outcome(t.country[i], event.FirewallWhitelistCountry, event.FirewallBlockCountry)
		}
	}
	return f.byDefault()
}

func (f *Firewall) byDefault() (string, bool) { return event.FirewallUnknown, f.defBlock }

// outcome turns the verdict bits of the winning key into the record value;
// allow wins over block on the same key.
func outcome(v verdict, allow, block string) (string, bool) {
	if v&vAllow != 0 {
		return allow, false
	}
	return block, true
}

// Changed returns a channel closed when a reload next changes the rules
// (a list file re-read with entries other than the ones it had) or, while
// there are ASN or country rules, the GeoIP database is replaced by one
// with other contents (geo.DB.Replaced). A check that finds nothing new
// does not close it: a UDP server ends every
// negative entry when it is closed, and a periodic check that did so
// would turn one blocked flow into a clientFiltered record per
// reload_interval. Take it before changing a file, then wait on it.
func (f *Firewall) Changed() <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.changed
}

// Reload re-reads the list files that changed on disk (all of them with
// force, e.g. on SIGHUP) and, when their entries differ from the ones in
// use, swaps in new tables and closes Changed. A file that cannot be read
// or has a bad line keeps its previous entries; the error says why.
func (f *Firewall) Reload(force bool) error {
	if f == nil || !f.enabled {
		return nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var errs []error
	changed := false
	for _, l := range f.lists {
		st, err := filewatch.Stat(l.path)
		if err != nil {
			f.logger.Warn("list file not readable; keeping its previous entries", "path", l.path, "err", err)
			errs = append(errs, err)
			continue
		}
		if !force && st == l.seen {
			continue
		}
		l.seen = st
		keys, err := readList(l.path)
		if err != nil {
			f.logger.Error("list file changed but cannot be used; keeping its previous entries", "path", l.path, "err", err)
			errs = append(errs, err)
			continue
		}
		// A file touched or rewritten with the same entries (and every
		// file on a forced reload) leaves the rules as they were: only
		// other entries are a change.
		if !slices.Equal(l.keys, keys) {
			l.keys = keys
			changed = true
		}
		f.logger.Info("list file reloaded", "path", l.path, "entries", len(keys))
	}
	if changed {
		f.cur.Store(f.build())
		close(f.changed)
		f.changed = make(chan struct{})
	}
	return errors.Join(errs...)
}

// Close stops watching list files. It does not close the GeoIP database,
// which is shared by every app.
func (f *Firewall) Close() error {
	if f == nil {
		return nil
	}
	f.closeOnce.Do(func() {
		f.poll.Close()
		if f.geoStop != nil {
			close(f.geoStop)
		}
	})
	return nil
}
