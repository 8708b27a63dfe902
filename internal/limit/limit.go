// Package limit bounds what one client may take of an app: concurrent
// connections (TCP) or sessions (UDP) per client address and per client
// prefix, and new ones per second per client prefix (a token bucket). The
// proxy asks Admit before it spends anything on a new connection and calls
// the returned release when the connection has ended. A refusal says which
// limit it hit, and is counted by limit.
//
// Addresses are compared unmapped (an IPv4-mapped IPv6 client counts as
// its IPv4 address). The state is a few maps under one mutex: one lock per
// new connection, nothing per byte. Rate buckets of prefixes that have been
// quiet long enough to be full again are forgotten, so the maps hold only
// clients that are connected or were recently active; the rate buckets are
// also capped (MaxRateBuckets, least recently used evicted first).
package limit

import (
	"container/list"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prismproxy/prism/internal/cfgerr"
)

// Config is an app's `limits:` section. Zero values mean no limit.
type Config struct {
	// MaxPerClient bounds concurrent connections (sessions) of one client
	// address.
	MaxPerClient int `yaml:"max_connections_per_client"`
	// MaxPerPrefix bounds concurrent connections of all clients in one
	// prefix of PrefixV4 / PrefixV6 bits.
	MaxPerPrefix int `yaml:"max_connections_per_prefix"`
	PrefixV4     int `yaml:"prefix_v4"` // default 24
	PrefixV6     int `yaml:"prefix_v6"` // default 64
	// RatePerClient bounds new connections per second of one IPv4
	// address, or of one IPv6 prefix of PrefixV6 bits (128: one
	// address), with bursts of up to Burst (default: RatePerClient). An
	// IPv6 host holds a whole /64: per address, a client rotating through
	// its addresses would get a fresh bucket for each. An IPv4 address is
	// one client, often many users behind one NAT: a bucket per /24 would
	// make them share one rate.
	RatePerClient int `yaml:"new_connections_per_second"`
	Burst         int `yaml:"new_connections_burst"`
	// MaxTLSHandshakes bounds concurrent edge TLS handshakes of the app
	// (tcp apps that terminate TLS); see tlsedge.Config.MaxHandshakes.
	MaxTLSHandshakes int `yaml:"max_tls_handshakes"`
	// RateBuckets caps the rate buckets (0: MaxRateBuckets). It is not a
	// config key: tests of the packages that build limiters lower it to
	// see evictions without 65,536 clients.
	RateBuckets int `yaml:"-"`
}

// Defaults.
const (
	DefaultPrefixV4 = 24
	DefaultPrefixV6 = 64
)

// SetDefaults fills the prefix lengths and the burst.
func (c *Config) SetDefaults() {
	if c.PrefixV4 == 0 {
		c.PrefixV4 = DefaultPrefixV4
	}
	if c.PrefixV6 == 0 {
		c.PrefixV6 = DefaultPrefixV6
	}
	if c.Burst == 0 {
		c.Burst = c.RatePerClient
	}
}

// Validate checks the section; keys are relative to it.
func (c *Config) Validate() []*cfgerr.Error {
	var errs cfgerr.List
	for _, f := range []struct {
		key string
		v   int
	}{
		{"max_connections_per_client", c.MaxPerClient}, {"max_connections_per_prefix", c.MaxPerPrefix},
		{"new_connections_per_second", c.RatePerClient}, {"new_connections_burst", c.Burst},
		{"max_tls_handshakes", c.MaxTLSHandshakes},
	} {
		if f.v < 0 {
			errs.Add(f.key, "must not be negative (0 means no limit)")
		}
	}
	if c.PrefixV4 < 1 || c.PrefixV4 > 32 {
		errs.Add("prefix_v4", "must be between 1 and 32, got %d", c.PrefixV4)
	}
	if c.PrefixV6 < 1 || c.PrefixV6 > 128 {
		errs.Add("prefix_v6", "must be between 1 and 128, got %d", c.PrefixV6)
	}
	if c.Burst > 0 && c.RatePerClient == 0 {
		errs.Add("new_connections_burst", "is only used with new_connections_per_second")
	}
	if c.MaxPerClient > 0 && c.MaxPerPrefix > 0 && c.MaxPerPrefix < c.MaxPerClient {
		errs.Add("max_connections_per_prefix", "%d is less than max_connections_per_client (%d)", c.MaxPerPrefix, c.MaxPerClient)
	}
	return errs
}

// Enabled reports whether any per-client limit is set.
func (c *Config) Enabled() bool {
	return c.MaxPerClient > 0 || c.MaxPerPrefix > 0 || c.RatePerClient > 0
}

// Which limit refused a connection.
type Which int

const (
	None      Which = iota
	PerClient       // max_connections_per_client
	PerPrefix       // max_connections_per_prefix
	Rate            // new_connections_per_second
	nWhich
)

// Key is the config key of the limit.
func (w Which) Key() string {
	switch w {
	case PerClient:
		return "max_connections_per_client"
	case PerPrefix:
		return "max_connections_per_prefix"
	case Rate:
		return "new_connections_per_second"
	}
	return ""
}

// sweepEvery is how often Admit forgets rate buckets that are full again.
const sweepEvery = 10 * time.Second

// MaxRateBuckets caps the rate buckets one Limiter holds (a few MB): a new
// prefix past it evicts the least recently used bucket (counted by
// Evicted), whose prefix starts again with a full burst when it returns.
const MaxRateBuckets = 65536

type bucket struct {
	key    netip.Prefix
	tokens float64
	last   time.Time
	el     *list.Element
}

// Limiter applies one Config. A nil *Limiter admits everything.
type Limiter struct {
	cfg Config

	mu        sync.Mutex
	perClient map[netip.Addr]int
	perPrefix map[netip.Prefix]int
	buckets   map[netip.Prefix]*bucket
	lru       list.List // of *bucket, most recently used first
	maxBkts   int       // Config.RateBuckets, else MaxRateBuckets
	lastSweep time.Time

	refused [nWhich]atomic.Uint64
	evicted atomic.Uint64
}

// New returns a Limiter for c (defaulted and validated, by package config
// or cfgerr.Prepare), or nil when c sets no per-client limit.
func New(c Config) *Limiter {
	if !c.Enabled() {
		return nil
	}
	l := &Limiter{cfg: c, perClient: map[netip.Addr]int{}, perPrefix: map[netip.Prefix]int{}, buckets: map[netip.Prefix]*bucket{}, maxBkts: MaxRateBuckets}
	if c.RateBuckets > 0 {
		l.maxBkts = c.RateBuckets
	}
	return l
}

func (l *Limiter) prefix(a netip.Addr) netip.Prefix {
	bits := l.cfg.PrefixV6
	if a.Is4() {
		bits = l.cfg.PrefixV4
	}
	p, _ := a.Prefix(bits)
	return p
}

// Admit takes a slot for a new connection of client a at now. When a limit
// refuses it, ok is false and which names the limit; otherwise release
// must be called exactly once when the connection ends.
func (l *Limiter) Admit(a netip.Addr, now time.Time) (release func(), which Which) {
	if l == nil {
		return func() {}, None
	}
	if w := l.AdmitAddr(a, now); w != None {
		return nil, w
	}
	var once sync.Once
	return func() { once.Do(func() { l.ReleaseAddr(a) }) }, None
}

// AdmitAddr is Admit without a release func: the caller must call
// ReleaseAddr(a) exactly once for every AdmitAddr that returned None.
func (l *Limiter) AdmitAddr(a netip.Addr, now time.Time) Which {
	if l == nil {
		return None
	}
	a = a.Unmap()
	p := l.prefix(a)
	l.mu.Lock()
	defer l.mu.Unlock()
	if c := l.cfg; c.MaxPerClient > 0 && l.perClient[a] >= c.MaxPerClient {
		return l.refuse(PerClient)
	}
	if c := l.cfg; c.MaxPerPrefix > 0 && l.perPrefix[p] >= c.MaxPerPrefix {
		return l.refuse(PerPrefix)
	}
	if l.cfg.RatePerClient > 0 {
		if now.Sub(l.lastSweep) >= sweepEvery {
			l.sweep(now)
		}
		rk := p
		if a.Is4() {
			rk = netip.PrefixFrom(a, 32) // IPv4: per address (see RatePerClient)
		}
		b := l.buckets[rk]
		if b == nil {
			if len(l.buckets) >= l.maxBkts {
				l.sweep(now)
			}
			if len(l.buckets) >= l.maxBkts {
				l.drop(l.lru.Back().Value.(*bucket))
				l.evicted.Add(1)
			}
			b = &bucket{key: rk, tokens: float64(l.cfg.Burst), last: now}
			b.el = l.lru.PushFront(b)
			l.buckets[rk] = b
		} else {
			if d := now.Sub(b.last); d > 0 {
				b.tokens = min(float64(l.cfg.Burst), b.tokens+d.Seconds()*float64(l.cfg.RatePerClient))
				b.last = now
			}
			l.lru.MoveToFront(b.el)
		}
		if b.tokens < 1 {
			return l.refuse(Rate)
		}
		b.tokens--
	}
	l.perClient[a]++
	l.perPrefix[p]++
	return None
}

func (l *Limiter) refuse(w Which) Which {
	l.refused[w].Add(1)
	return w
}

// ReleaseAddr gives back the slot an admitted connection of a held.
func (l *Limiter) ReleaseAddr(a netip.Addr) {
	if l == nil {
		return
	}
	a = a.Unmap()
	p := l.prefix(a)
	l.mu.Lock()
	defer l.mu.Unlock()
	if n := l.perClient[a]; n <= 1 {
		delete(l.perClient, a)
	} else {
		l.perClient[a] = n - 1
	}
	if n := l.perPrefix[p]; n <= 1 {
		delete(l.perPrefix, p)
	} else {
		l.perPrefix[p] = n - 1
	}
}

// sweep forgets the buckets that have refilled (l.mu held): from the
// least recently used on, so it stops at the first one still refilling
// and costs what it removes, not the size of the table.
func (l *Limiter) sweep(now time.Time) {
	l.lastSweep = now
	full := time.Duration(float64(l.cfg.Burst) / float64(l.cfg.RatePerClient) * float64(time.Second))
	for e := l.lru.Back(); e != nil; {
		b := e.Value.(*bucket)
		if now.Sub(b.last) < full {
			break
		}
		e = e.Prev()
		l.drop(b)
	}
}

func (l *Limiter) drop(b *bucket) {
	l.lru.Remove(b.el)
	delete(l.buckets, b.key)
}

// Evicted returns how many rate buckets were evicted, still refilling,
// because MaxRateBuckets prefixes were tracked.
func (l *Limiter) Evicted() uint64 {
	if l == nil {
		return 0
	}
	return l.evicted.Load()
}

// Refused returns how many connections each limit refused.
func (l *Limiter) Refused() map[Which]uint64 {
	out := map[Which]uint64{}
	if l == nil {
		return out
	}
	for w := PerClient; w < nWhich; w++ {
		out[w] = l.refused[w].Load()
	}
	return out
}

// Tracked returns how many client addresses, prefixes and rate buckets the
// limiter holds (tests check that they drain).
func (l *Limiter) Tracked() (clients, prefixes, buckets int) {
	if l == nil {
		return 0, 0, 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.perClient), len(l.perPrefix), len(l.buckets)
}

// Held returns how many admitted connections client a holds now.
func (l *Limiter) Held(a netip.Addr) int {
	if l == nil {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.perClient[a.Unmap()]
}
