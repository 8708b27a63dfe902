// Package geo answers "which country and which autonomous system is this
// client address in?" from MaxMind DB (.mmdb) files, for the IP firewall and
// for the Country/ASN of every connection record.
//
// It reads both layouts found in the wild with one record type: the GeoIP2 /
// GeoLite2 layout (country.iso_code, autonomous_system_number) and the flat
// layout of the ip-location-db (DB-IP, RouteViews) databases (country_code).
// The files are read into memory rather than memory-mapped, so a file that is
// rewritten in place can never change what a running lookup sees, and a
// replaced database can be dropped without waiting for lookups in flight.
// Files are re-read when they change on disk (polled); a new file that does
// not open or verify is refused and the old data stays in use.
package geo

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/oschwald/maxminddb-golang/v2"
	"github.com/oschwald/maxminddb-golang/v2/mmdbdata"

	"github.com/prismproxy/prism/internal/cfgerr"
	"github.com/prismproxy/prism/internal/filewatch"
)

// DefaultReloadInterval is how often the database files are checked for
// changes when Config.ReloadInterval is zero. MaxMind publishes updates twice
// a week, so a few seconds is plenty and costs two stat calls.
const DefaultReloadInterval = 5 * time.Second

// Config is the top-level `geoip:` section.
type Config struct {
	// CountryDB is a country database: GeoLite2/GeoIP2 Country or City, or
	// a DB-IP / ip-location-db country mmdb. Empty: no country data.
	CountryDB string `yaml:"country_db"`
	// ASNDB is an ASN database: GeoLite2 ASN, or an mmdb built from the
	// ip-location-db ASN CSV. Empty: no ASN data.
	ASNDB string `yaml:"asn_db"`
	// ReloadInterval is how often the files are checked for changes
	// (modification time, size, inode). 0 means DefaultReloadInterval; a
	// negative value turns checking off (Reload can still be called).
	ReloadInterval time.Duration `yaml:"reload_interval"`
}

// SetDefaults fills the reload interval.
func (c *Config) SetDefaults() {
	if c.ReloadInterval == 0 {
		c.ReloadInterval = DefaultReloadInterval
	}
}

// Validate checks that the configured files exist and are regular files.
// Whether they are valid databases is checked by Open.
func (c Config) Validate() []*cfgerr.Error {
	var errs cfgerr.List
	check := func(key, path string) {
		if path == "" {
			return
		}
		st, err := os.Stat(path)
		switch {
		case err != nil:
			errs.Add(key, "cannot read GeoIP database: %v", err)
		case st.IsDir():
			errs.Add(key, "%s is a directory, not an .mmdb file", path)
		}
	}
	check("country_db", c.CountryDB)
	check("asn_db", c.ASNDB)
	if c.ReloadInterval > 0 && c.ReloadInterval < 100*time.Millisecond {
		errs.Add("reload_interval", "must be at least 100ms (or negative to turn polling off), got %v", c.ReloadInterval)
	}
	return errs
}

// Errors a lookup can return. They are preallocated so that a failing
// lookup on the connection path does not allocate either.
var (
	// ErrUnavailable: the database is configured but holds no data (the
	// DB was closed).
	ErrUnavailable = errors.New("geo: database unavailable")
	// ErrIPv4Only: an IPv6 client was looked up in an IPv4-only database.
	ErrIPv4Only = errors.New("geo: IPv6 address looked up in an IPv4-only database")
)

// Answer is the outcome of one lookup, per database. A configured database
// that has no entry for the address answers "" / 0 with a nil error: that
// is a definite "not in any country/AS we know", not a failure.
type Answer struct {
	Country    string // ISO-3166 alpha-2, "" unknown
	ASN        uint32 // 0 unknown
	CountryErr error  // the country database is configured but could not answer
	ASNErr     error  // the ASN database is configured but could not answer
}

// record holds the keys of both layouts, so one decode reads either.
type record struct {
	Country     countryField `maxminddb:"country"`
	CountryCode string       `maxminddb:"country_code"`
	ASN         uint32       `maxminddb:"autonomous_system_number"`
}

// countryField is GeoIP2's {"country": {"iso_code": ...}}. Some databases
// (ipinfo's) use "country" for the country's name as a string instead, with
// the code in "country_code"; that value is skipped rather than failing the
// decode.
type countryField struct{ ISOCode string }

// UnmarshalMaxMindDBCursor reads iso_code from a map and skips anything else.
func (c *countryField) UnmarshalMaxMindDBCursor(cur mmdbdata.Cursor) (mmdbdata.Cursor, error) {
	k, err := cur.Kind()
	if err != nil {
		return mmdbdata.Cursor{}, err
	}
	if k != mmdbdata.KindMap {
		return cur.Skip()
	}
	m, err := cur.Map()
	if err != nil {
		return mmdbdata.Cursor{}, err
	}
	var next mmdbdata.Cursor
	for {
		key, val, ok := m.Next(next)
		if !ok {
			break
		}
		if string(key) == "iso_code" {
			c.ISOCode, next, err = val.ReadString()
		} else {
			next, err = val.Skip()
		}
		if err != nil {
			return mmdbdata.Cursor{}, err
		}
	}
	return m.End()
}

// kind says which of the two databases a source is.
type kind uint8

const (
	kindCountry kind = iota
	kindASN
)

func (k kind) String() string {
	if k == kindCountry {
		return "country"
	}
	return "asn"
}

// loaded is one opened version of a database file. Apart from its decode
// cache it is immutable.
type loaded struct {
	r      *maxminddb.Reader
	raw    []byte // the file's contents (the reader's memory)
	ipv4   bool   // IPv4-only tree
	dbType string
	// cache maps a record's data offset to the one value this source
	// provides (a country index or an AS number). Many networks share one
	// record, so after warm-up a lookup is a tree walk and one atomic load
	// instead of a reflective decode. Each slot is one word, (offset+1)<<32 |
	// value, so readers and writers need no lock and nothing allocates.
	cache [cacheSlots]atomic.Uint64
}

const (
	cacheBits  = 12
	cacheSlots = 1 << cacheBits
)

func cacheSlot(off uint32) uint32 { return (off * 0x9E3779B1) >> (32 - cacheBits) }

func (l *loaded) cached(off uintptr) (uint32, bool) {
	if off >= 1<<32-1 {
		return 0, false
	}
	w := l.cache[cacheSlot(uint32(off))].Load()
	if uint32(w>>32) != uint32(off)+1 {
		return 0, false
	}
	return uint32(w), true
}

func (l *loaded) store(off uintptr, v uint32) {
	if off >= 1<<32-1 {
		return
	}
	l.cache[cacheSlot(uint32(off))].Store(uint64(uint32(off)+1)<<32 | uint64(v))
}

// source is one configured database file and the version in use.
type source struct {
	kind kind
	path string
	cur  atomic.Pointer[loaded]
	seen filewatch.Stamp // the file version last looked at (loaded or refused); guarded by DB.mu
}

// DB answers country and ASN lookups. A nil *DB answers "unknown" with no
// error: nothing was configured. Lookups are safe for concurrent use and
// never block on a reload.
type DB struct {
	logger *slog.Logger
	srcs   []*source // the configured sources, for reloads
	cc     *source   // country source or nil
	as     *source   // ASN source or nil

	mu       sync.Mutex    // serialises reloads
	changed  chan struct{} // closed after each reload check; guarded by mu
	replaced chan struct{} // closed when a reload put other contents in use; guarded by mu

	poll      *filewatch.Poller
	closeOnce sync.Once
}

// Open loads the databases cfg (defaulted and validated, by package config
// or cfgerr.Prepare) names. With neither file configured it
// returns a nil *DB (which answers "unknown") and no error. A file that
// cannot be read or is not a valid MaxMind DB is an error: a proxy that was
// told to filter by country must not start without the data.
func Open(cfg Config, logger *slog.Logger) (*DB, error) {
	if cfg.CountryDB == "" && cfg.ASNDB == "" {
		return nil, nil
	}
	if logger == nil {
		logger = slog.Default()
	}
	d := &DB{
		logger:   logger.With("component", "geo"),
		changed:  make(chan struct{}),
		replaced: make(chan struct{}),
	}
	if cfg.CountryDB != "" {
		d.cc = &source{kind: kindCountry, path: cfg.CountryDB}
		d.srcs = append(d.srcs, d.cc)
	}
	if cfg.ASNDB != "" {
		d.as = &source{kind: kindASN, path: cfg.ASNDB}
		d.srcs = append(d.srcs, d.as)
	}
	for _, s := range d.srcs {
		l, st, err := load(s.path, s.kind)
		if err != nil {
			return nil, fmt.Errorf("open %s database: %w", s.kind, err)
		}
		s.cur.Store(l)
		s.seen = st
		d.logger.Info("GeoIP database loaded", "db", s.kind.String(), "path", s.path, "type", l.dbType)
	}
	d.poll = filewatch.Start(cfg.ReloadInterval, func() { _ = d.Reload(false) })
	return d, nil
}

// load reads, opens and verifies one database file of kind k.
func load(path string, k kind) (*loaded, filewatch.Stamp, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, filewatch.Stamp{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, filewatch.Stamp{}, fmt.Errorf("stat %s: %w", path, err)
	}
	st := filewatch.StampOf(fi)
	buf := make([]byte, fi.Size())
	if _, err := io.ReadFull(f, buf); err != nil {
		return nil, st, fmt.Errorf("read %s: %w", path, err)
	}
	r, err := maxminddb.OpenBytes(buf)
	if err != nil {
		return nil, st, fmt.Errorf("%s: %w", path, err)
	}
	if err := smokeTest(r, k); err != nil {
		return nil, st, fmt.Errorf("%s: %w", path, err)
	}
	return &loaded{
		r:      r,
		raw:    buf,
		ipv4:   r.Metadata.IPVersion == 4,
		dbType: r.Metadata.DatabaseType,
	}, st, nil
}

// smokeTest decodes the first networks of a freshly opened database, so a
// file that opens but is corrupt (or of an unrelated layout) is refused
// before it replaces a working one. Reader.Verify is not used: it also
// rejects metadata quirks (an empty description) of databases that work.
func smokeTest(r *maxminddb.Reader, k kind) error {
	if r.Metadata.NodeCount == 0 {
		return errors.New("database has no networks")
	}
	n, useful := 0, 0
	for res := range r.Networks() {
		if err := res.Err(); err != nil {
			return fmt.Errorf("walk networks: %w", err)
		}
		var rec record
		if err := res.Decode(&rec); err != nil {
			return fmt.Errorf("decode %s: %w", res.Prefix(), err)
		}
		if k == kindCountry && (rec.Country.ISOCode != "" || rec.CountryCode != "") || k == kindASN && rec.ASN != 0 {
			useful++
		}
		if n++; n == 1000 {
			break
		}
	}
	if n == 0 {
		return errors.New("database has no networks")
	}
	// The two paths swapped (an ASN database as country_db) open and
	// decode fine, and every client would then be unknown: refuse a
	// database none of whose first networks holds what it is for.
	if useful == 0 {
		if k == kindCountry {
			return fmt.Errorf("none of its first %d networks has a country code: not a country database (%s)", n, r.Metadata.DatabaseType)
		}
		return fmt.Errorf("none of its first %d networks has an AS number: not an ASN database (%s)", n, r.Metadata.DatabaseType)
	}
	return nil
}

// HasCountry reports whether a country database is configured.
func (d *DB) HasCountry() bool { return d != nil && d.cc != nil }

// HasASN reports whether an ASN database is configured.
func (d *DB) HasASN() bool { return d != nil && d.as != nil }

// Lookup returns the country and AS number of a. IPv4, IPv6 and
// IPv4-mapped IPv6 addresses are all looked up as what they are (a mapped
// address as its IPv4 form). err is non-nil when a configured database
// could not answer; the other value may still be valid. It does not
// allocate.
func (d *DB) Lookup(a netip.Addr) (country string, asn uint32, err error) {
	ans := d.Resolve(a)
	err = ans.CountryErr
	if err == nil {
		err = ans.ASNErr
	}
	return ans.Country, ans.ASN, err
}

// Resolve is Lookup with a separate error per database, for callers (the
// firewall) whose decision needs only one of them.
func (d *DB) Resolve(a netip.Addr) Answer {
	var ans Answer
	if d == nil || !a.IsValid() {
		return ans
	}
	a = a.Unmap().WithZone("")
	if d.cc != nil {
		var v uint32
		v, ans.CountryErr = d.cc.lookup(a)
		ans.Country = countryCodes[v]
	}
	if d.as != nil {
		ans.ASN, ans.ASNErr = d.as.lookup(a)
	}
	return ans
}

// recordPool holds decode targets: Decode takes an interface, so a record
// on the stack would escape and cost an allocation per lookup.
var recordPool = sync.Pool{New: func() any { return new(record) }}

// lookup returns the source's value for a: a country index (see
// countryCodes) or an AS number; 0 when a is in no network of the file.
func (s *source) lookup(a netip.Addr) (uint32, error) {
	l := s.cur.Load()
	if l == nil {
		return 0, ErrUnavailable
	}
	if l.ipv4 && a.Is6() {
		return 0, ErrIPv4Only
	}
	res := l.r.Lookup(a)
	if !res.Found() {
		return 0, res.Err()
	}
	off := res.Offset()
	if v, ok := l.cached(off); ok {
		return v, nil
	}
	rec := recordPool.Get().(*record)
	*rec = record{}
	err := res.Decode(rec)
	var v uint32
	cacheable := true
	if s.kind == kindCountry {
		cc := rec.Country.ISOCode
		if cc == "" {
			cc = rec.CountryCode
		}
		v, cacheable = countryIndex(cc)
	} else {
		v = rec.ASN
	}
	recordPool.Put(rec)
	if err != nil {
		return 0, err
	}
	if cacheable {
		l.store(off, v)
	}
	return v, nil
}

// countryCodes holds "" at 0 and every two-letter code "AA".."ZZ" after it,
// so a country is one small integer in the cache and its string is never
// built on the lookup path.
var countryCodes = func() []string {
	cc := make([]string, 1, 1+26*26)
	for a := byte('A'); a <= 'Z'; a++ {
		for b := byte('A'); b <= 'Z'; b++ {
			cc = append(cc, string([]byte{a, b}))
		}
	}
	return cc
}()

// countryIndex is the index of cc in countryCodes; false for a value that
// is not "" or two upper-case letters (it is then not cached and reported
// as unknown).
func countryIndex(cc string) (uint32, bool) {
	switch {
	case cc == "":
		return 0, true
	case len(cc) == 2 && cc[0] >= 'A' && cc[0] <= 'Z' && cc[1] >= 'A' && cc[1] <= 'Z':
		return 1 + uint32(cc[0]-'A')*26 + uint32(cc[1]-'A'), true
	}
	return 0, false
}

// Changed returns a channel that is closed when the next reload check ends
// (whether or not a file changed or loaded). Take the channel before
// changing a file, then wait on it.
func (d *DB) Changed() <-chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.changed
}

// Replaced returns a channel closed when a reload next puts in use a
// database whose contents differ from the one it replaces: the country or
// AS number of an address may have changed, and with them the verdicts of
// country and ASN firewall rules. A check that finds no file changed, a
// forced re-read of the same file and a refused file leave it open (a UDP
// server ends its firewall negative entries when the firewall passes this
// on). A nil DB's never closes. Take it before replacing a file, then
// wait on it.
func (d *DB) Replaced() <-chan struct{} {
	if d == nil {
		return nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.replaced
}

// Reload re-reads every configured file whose modification time, size or
// inode changed since it was loaded; force re-reads them all (SIGHUP). A file
// that fails to load keeps the version in use; the error says why.
func (d *DB) Reload(force bool) error {
	if d == nil {
		return nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	var errs []error
	replaced := false
	for _, s := range d.srcs {
		r, err := d.reloadSource(s, force)
		if err != nil {
			errs = append(errs, err)
		}
		replaced = replaced || r
	}
	if replaced {
		close(d.replaced)
		d.replaced = make(chan struct{})
	}
	close(d.changed)
	d.changed = make(chan struct{})
	return errors.Join(errs...)
}

// reloadSource re-reads s if it changed on disk (always with force) and
// reports whether the version now in use has other contents than the one
// it replaced.
func (d *DB) reloadSource(s *source, force bool) (replaced bool, err error) {
	now, err := filewatch.Stat(s.path)
	if err != nil {
		// A file being replaced may be briefly absent; keep what we have.
		d.logger.Warn("GeoIP database not readable; keeping the loaded version", "db", s.kind.String(), "path", s.path, "err", err)
		return false, fmt.Errorf("reload %s database: %w", s.kind, err)
	}
	if !force && now == s.seen {
		return false, nil
	}
	l, st, err := load(s.path, s.kind)
	// Remember the version looked at even when it is refused, so a broken
	// file is not re-read (and re-logged) every interval; the next change
	// is tried again.
	s.seen = st
	if err != nil {
		d.logger.Error("GeoIP database changed but cannot be used; keeping the loaded version", "db", s.kind.String(), "path", s.path, "err", err)
		return false, fmt.Errorf("reload %s database: %w", s.kind, err)
	}
	// The old reader is not closed: lookups in flight may still use it, and
	// as it reads from memory the garbage collector frees it.
	old := s.cur.Swap(l)
	d.logger.Info("GeoIP database reloaded", "db", s.kind.String(), "path", s.path, "type", l.dbType)
	return old == nil || !bytes.Equal(old.raw, l.raw), nil
}

// Close stops watching the files. Lookups after Close answer
// ErrUnavailable for each configured database.
func (d *DB) Close() error {
	if d == nil {
		return nil
	}
	d.closeOnce.Do(func() {
		d.poll.Close()
		for _, s := range d.srcs {
			s.cur.Store(nil)
		}
	})
	return nil
}

// Build is the database file in use for one kind of lookup and when its
// publisher built it (the MaxMind metadata's build epoch).
type Build struct {
	Kind  string // country | asn
	Path  string
	Built time.Time
}

// Builds returns the databases in use. A nil DB has none.
func (d *DB) Builds() []Build {
	if d == nil {
		return nil
	}
	var out []Build
	for _, s := range d.srcs {
		if l := s.cur.Load(); l != nil {
			out = append(out, Build{Kind: s.kind.String(), Path: s.path, Built: time.Unix(int64(l.r.Metadata.BuildEpoch), 0)})
		}
	}
	return out
}
