// Package origin turns an app's origin configuration into an ordered list of
// addresses to try for one client: the balancer's choice first, then the
// rest in failover order. It resolves DNS origins (with a short cache),
// refuses addresses in the origin block list (Spectrum Status 532), and maps
// an edge port range onto an origin port range by offset.
package origin

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prismproxy/prism/internal/cfgerr"
	"github.com/prismproxy/prism/internal/event"
	"github.com/prismproxy/prism/internal/netspec"
)

// Balance policies.
const (
	RoundRobin = "round_robin"
	LeastConn  = "least_conn"
	IPHash     = "ip_hash"
)

// DefaultBlock is the origin block list used when an app sets none:
// addresses an origin must never resolve to, because reaching them from an
// edge proxy is a server-side request forgery risk — link-local ranges
// (including the 169.254.169.254 cloud metadata service), the AWS IPv6
// metadata address, Alibaba's metadata address, and "this network".
var DefaultBlock = []string{
	"0.0.0.0/8",
	"169.254.0.0/16",
	"100.100.100.200/32",
	"::/128",
	"fe80::/10",
	"fd00:ec2::254/128",
}

// Config is an app's `origins:` section.
type Config struct {
	// Addresses are "ip:port", "ip:lo-hi" (a port range mapped by offset
	// from the edge range) or "unix:/path".
	Addresses []string `yaml:"addresses"`
	// DNS names one origin host resolved at connect time (A and AAAA).
	DNS *DNSConfig `yaml:"dns"`
	// Balance is round_robin (default), least_conn or ip_hash. Each
	// honours the addresses' weights.
	Balance string `yaml:"balance"`
	// HealthCheck probes every origin address actively; nil: no checks.
	HealthCheck *HealthCheck `yaml:"health_check"`
	// Passive ejects an origin after consecutive failed dials; nil: off.
	Passive *PassiveEjection `yaml:"passive_ejection"`
}

// DNSConfig is an origin given by name.
type DNSConfig struct {
	Name string `yaml:"name"`
	// Port is "443" or a range "3000-3100".
	Port string `yaml:"port"`
	// TTL is how long a resolution is reused (default 10s; 0 keeps the default,
	// a negative value resolves on every connection).
	TTL time.Duration `yaml:"ttl"`
	// AllowLoopback lets the name resolve to loopback (127.0.0.0/8, ::1)
	// and unspecified (0.0.0.0, ::) addresses, which are refused by default
	// (Status 532) whatever origin_block says: whoever controls the name
	// could otherwise point it at the edge host's own services.
	AllowLoopback bool `yaml:"allow_loopback"`
}

// SetDefaults fills unset values.
func (c *Config) SetDefaults() {
	if c.Balance == "" {
		c.Balance = RoundRobin
	}
	if c.DNS != nil && c.DNS.TTL == 0 {
		c.DNS.TTL = 10 * time.Second
	}
	if c.HealthCheck != nil {
		c.HealthCheck.setDefaults()
	}
	if c.Passive != nil {
		c.Passive.setDefaults()
	}
}

// PortSpan is the number of ports in the widest origin port range, 1 when
// every origin is a single port, 0 for unix-only origins. The config package
// checks it against the edge listen range.
func (c *Config) PortSpan() int {
	span := 0
	for _, a := range c.Addresses {
		if t, err := parseAddress(a); err == nil && t.path == "" {
			span = max(span, int(t.hi-t.lo)+1)
		}
	}
	if c.DNS != nil {
		if lo, hi, err := netspec.ParsePortRange(c.DNS.Port); err == nil {
			span = max(span, int(hi-lo)+1)
		}
	}
	return span
}

// Validate checks the section.
func (c *Config) Validate() []*cfgerr.Error {
	var errs cfgerr.List
	if len(c.Addresses) == 0 && c.DNS == nil {
		errs.Add("", "give origin addresses or a dns name")
	}
	if len(c.Addresses) > 0 && c.DNS != nil {
		errs.Add("dns", "give either addresses or dns, not both")
	}
	for i, a := range c.Addresses {
		if _, err := parseAddress(a); err != nil {
			errs.Add(cfgerr.Index("addresses", i), "%v", err)
		}
	}
	if c.DNS != nil {
		if c.DNS.Name == "" {
			errs.Add("dns.name", "missing: the origin host name to resolve")
		} else if _, err := netip.ParseAddr(c.DNS.Name); err == nil {
			errs.Add("dns.name", "%q is an IP address; list it under addresses instead", c.DNS.Name)
		}
		if _, _, err := netspec.ParsePortRange(c.DNS.Port); err != nil {
			errs.Add("dns.port", "%v", err)
		}
	}
	switch c.Balance {
	case "", RoundRobin, LeastConn, IPHash:
	default:
		errs.Add("balance", "unknown policy %q (use round_robin, least_conn or ip_hash)", c.Balance)
	}
	if c.HealthCheck != nil {
		errs.Merge("health_check", c.HealthCheck.validate())
	}
	if c.Passive != nil {
		errs.Merge("passive_ejection", c.Passive.validate())
	}
	return errs
}

// target is one configured origin before port mapping.
type target struct {
	addr   netip.Addr
	lo, hi uint16
	path   string
	weight int
}

// MaxWeight bounds an address's weight.
const MaxWeight = 1000

// parseAddress parses one entry of addresses: the address, then optional
// options after spaces ("10.0.0.1:443 weight=3").
func parseAddress(s string) (target, error) {
	fields := strings.Fields(s)
	if len(fields) == 0 {
		return target{}, fmt.Errorf("empty origin address")
	}
	t, err := parseAddr(fields[0])
	if err != nil {
		return target{}, err
	}
	t.weight = 1
	for _, f := range fields[1:] {
		v, ok := strings.CutPrefix(f, "weight=")
		if !ok {
			return target{}, fmt.Errorf("unknown option %q after origin address %q (use weight=N)", f, fields[0])
		}
		w, err := strconv.Atoi(v)
		if err != nil || w < 1 || w > MaxWeight {
			return target{}, fmt.Errorf("bad weight %q in %q: want 1-%d", v, s, MaxWeight)
		}
		t.weight = w
	}
	return t, nil
}

func parseAddr(s string) (target, error) {
	if p, ok := strings.CutPrefix(s, "unix:"); ok {
		if p == "" {
			return target{}, fmt.Errorf("empty unix socket path in %q", s)
		}
		return target{path: p}, nil
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return target{}, fmt.Errorf("bad origin address %q: want ip:port, ip:low-high or unix:/path", s)
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return target{}, fmt.Errorf("bad origin IP %q in %q (use the dns section for names)", host, s)
	}
	lo, hi, err := netspec.ParsePortRange(port)
	if err != nil {
		return target{}, err
	}
	return target{addr: a.Unmap(), lo: lo, hi: hi}, nil
}

// Target is one origin to dial.
type Target struct {
	Addr netip.AddrPort // IP origin
	Path string         // unix socket origin
	Name string         // the DNS name Addr was resolved from, if any

	weight int            // balancer weight (0 means 1)
	base   netip.AddrPort // the origin's first port, when Addr is in a port range (health key)
}

// Weight is the target's balancer weight (at least 1).
func (t Target) Weight() int { return max(t.weight, 1) }

// Network is "tcp", "udp" or "unix" for proto "tcp"/"udp".
func (t Target) Network(proto string) string {
	if t.Path != "" {
		return "unix"
	}
	return proto
}

// String is the dial address.
func (t Target) String() string {
	if t.Path != "" {
		return t.Path
	}
	return t.Addr.String()
}

// Failure is why no origin could be produced: a resolveOrigin event.
type Failure struct {
	Status int    // 530, 531, 532 or 533
	Detail string // for the event's Detail and the proxy's log
	Addr   netip.AddrPort
}

// Resolver looks host names up; *net.Resolver satisfies it.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// Pool is the origin set of one app (or of one passthrough SNI route).
type Pool struct {
	cfg      Config
	static   []target
	block    []netip.Prefix
	resolver Resolver
	seed     maphash.Seed
	rr       atomic.Uint64

	mu       sync.Mutex
	cached   []netip.Addr
	cachedAt time.Time

	active sync.Map // string (Target.String()) → *atomic.Int64, for least_conn

	health *healthState // nil without health_check and passive_ejection
}

// NewPool builds a pool of cfg, defaulted and validated (by package config,
// or cfgerr.Prepare). block is the parsed origin block list. resolver may
// be nil for net.DefaultResolver. The error is nil today: validation
// refuses what cannot work.
func NewPool(cfg Config, block []netip.Prefix, resolver Resolver) (*Pool, error) {
	if resolver == nil {
		resolver = net.DefaultResolver
	}
	p := &Pool{cfg: cfg, block: block, resolver: resolver, seed: maphash.MakeSeed(), health: newHealthState(&cfg)}
	for _, a := range cfg.Addresses {
		t, _ := parseAddress(a)
		p.static = append(p.static, t)
	}
	return p, nil
}

// ParseBlock parses an origin block list; nil means DefaultBlock.
func ParseBlock(cidrs []string) ([]netip.Prefix, error) {
	if cidrs == nil {
		cidrs = DefaultBlock
	}
	out := make([]netip.Prefix, 0, len(cidrs))
	for _, s := range cidrs {
		p, err := parsePrefix(s)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

func parsePrefix(s string) (netip.Prefix, error) {
	p, err := netspec.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("bad CIDR or IP %q", s)
	}
	return p, nil
}

// ValidateBlock checks a block list for the config package.
func ValidateBlock(cidrs []string) []*cfgerr.Error {
	var errs cfgerr.List
	for i, s := range cidrs {
		if _, err := parsePrefix(s); err != nil {
			errs.Add(cfgerr.Index("", i), "%v", err)
		}
	}
	return errs
}

func (p *Pool) blocked(a netip.Addr) bool { return inPrefixes(p.block, a) }

// refusesLocal reports whether a, an address the DNS origin resolved to,
// is refused as loopback or unspecified (Status 532 for a connection; not
// probed by a health check) because origins.dns.allow_loopback is off.
func (p *Pool) refusesLocal(a netip.Addr) bool {
	return p.cfg.DNS != nil && !p.cfg.DNS.AllowLoopback && isLocal(a)
}

func mapPort(lo, hi uint16, offset int) uint16 {
	if lo == hi || offset < 0 || offset > int(hi-lo) {
		return lo
	}
	return lo + uint16(offset)
}

// Candidates returns the origins to try for client, the balancer's pick
// first, then the others in failover order. portOffset is the accepting
// port's offset inside its edge port range (0 for a single port).
func (p *Pool) Candidates(ctx context.Context, client netip.Addr, portOffset int) ([]Target, *Failure) {
	var out []Target
	var firstBlocked netip.AddrPort
	if p.cfg.DNS != nil {
		addrs, f := p.resolve(ctx)
		if f != nil {
			return nil, f
		}
		lo, hi, _ := netspec.ParsePortRange(p.cfg.DNS.Port)
		port := mapPort(lo, hi, portOffset)
		out = make([]Target, 0, len(addrs))
		var local netip.AddrPort
		for _, a := range addrs {
			ap := netip.AddrPortFrom(a, port)
			if p.refusesLocal(a) {
				if !local.IsValid() {
					local = ap
				}
				continue
			}
			if p.blocked(a) {
				if !firstBlocked.IsValid() {
					firstBlocked = ap
				}
				continue
			}
			out = append(out, Target{Addr: ap, Name: p.cfg.DNS.Name, base: netip.AddrPortFrom(a, lo)})
		}
		if len(out) == 0 && local.IsValid() && !firstBlocked.IsValid() {
			return nil, &Failure{Status: event.StatusResolveBlocked, Addr: local,
				Detail: fmt.Sprintf("origin %s resolves to %s, a loopback or unspecified address (set origins.dns.allow_loopback to allow it)", p.cfg.DNS.Name, local.Addr())}
		}
		if !firstBlocked.IsValid() {
			firstBlocked = local
		}
	} else {
		out = make([]Target, 0, len(p.static))
		for _, t := range p.static {
			if t.path != "" {
				out = append(out, Target{Path: t.path, weight: t.weight})
				continue
			}
			ap := netip.AddrPortFrom(t.addr, mapPort(t.lo, t.hi, portOffset))
			if p.blocked(t.addr) {
				if !firstBlocked.IsValid() {
					firstBlocked = ap
				}
				continue
			}
			out = append(out, Target{Addr: ap, weight: t.weight, base: netip.AddrPortFrom(t.addr, t.lo)})
		}
	}
	if len(out) == 0 {
		return nil, &Failure{Status: event.StatusResolveBlocked, Addr: firstBlocked,
			Detail: fmt.Sprintf("origin %s is in the origin block list", firstBlocked)}
	}
	if p.health != nil {
		out = p.health.filter(out)
	}
	first := p.pick(out, client)
	if first > 0 {
		// Rotate so the pick comes first and failover continues in order.
		rot := make([]Target, 0, len(out))
		rot = append(rot, out[first:]...)
		out = append(rot, out[:first]...)
	}
	return out, nil
}

func (p *Pool) pick(ts []Target, client netip.Addr) int {
	n := len(ts)
	if n == 1 {
		return 0
	}
	total := 0
	for _, t := range ts {
		total += t.Weight()
	}
	switch p.cfg.Balance {
	case IPHash:
		b := client.Unmap().As16()
		return bySlot(ts, int(maphash.Bytes(p.seed, b[:])%uint64(total)))
	case LeastConn:
		// The fewest active connections per unit of weight; ties go
		// round robin.
		start := int(p.rr.Add(1) % uint64(n))
		best, bestN, bestW := start, int64(-1), int64(1)
		for i := range n {
			j := (start + i) % n
			c, w := p.counter(ts[j]).Load(), int64(ts[j].Weight())
			if bestN < 0 || c*bestW < bestN*w {
				best, bestN, bestW = j, c, w
			}
		}
		return best
	default:
		return bySlot(ts, int((p.rr.Add(1)-1)%uint64(total)))
	}
}

// bySlot maps slot (0 ≤ slot < the sum of weights) to the target owning
// it: each target owns as many consecutive slots as its weight.
func bySlot(ts []Target, slot int) int {
	for i, t := range ts {
		if slot < t.Weight() {
			return i
		}
		slot -= t.Weight()
	}
	return len(ts) - 1
}

func (p *Pool) counter(t Target) *atomic.Int64 {
	k := t.String()
	if v, ok := p.active.Load(k); ok {
		return v.(*atomic.Int64)
	}
	v, _ := p.active.LoadOrStore(k, new(atomic.Int64))
	return v.(*atomic.Int64)
}

// Acquire counts a connection to t as active (for least_conn) until the
// returned release is called.
func (p *Pool) Acquire(t Target) (release func()) {
	if p.cfg.Balance != LeastConn {
		return func() {}
	}
	c := p.counter(t)
	c.Add(1)
	return func() { c.Add(-1) }
}

func (p *Pool) resolve(ctx context.Context) ([]netip.Addr, *Failure) {
	ttl := p.cfg.DNS.TTL
	p.mu.Lock()
	if ttl > 0 && p.cached != nil && time.Since(p.cachedAt) < ttl {
		addrs := p.cached
		p.mu.Unlock()
		return addrs, nil
	}
	p.mu.Unlock()
	addrs, err := p.resolver.LookupNetIP(ctx, "ip", p.cfg.DNS.Name)
	if err != nil {
		var de *net.DNSError
		if errors.As(err, &de) && de.IsNotFound {
			return nil, &Failure{Status: event.StatusResolveFailed, Detail: fmt.Sprintf("resolve origin %s: %v", p.cfg.DNS.Name, err)}
		}
		return nil, &Failure{Status: event.StatusResolveInternal, Detail: fmt.Sprintf("resolve origin %s: %v", p.cfg.DNS.Name, err)}
	}
	if len(addrs) == 0 {
		return nil, &Failure{Status: event.StatusResolveFailed, Detail: fmt.Sprintf("resolve origin %s: no addresses", p.cfg.DNS.Name)}
	}
	for i := range addrs {
		addrs[i] = addrs[i].Unmap()
	}
	p.mu.Lock()
	prev := p.cached
	p.cached, p.cachedAt = addrs, time.Now()
	if prev != nil && !sameAddrs(prev, addrs) {
		p.forget(addrs) // under p.mu: two changes never prune for each other
	}
	p.mu.Unlock()
	return addrs, nil
}

// sameAddrs reports whether a and b hold the same addresses, in any order
// (a name's answers often rotate). Answers are short; a lookup costs far
// more than the comparison.
func sameAddrs(a, b []netip.Addr) bool {
	if len(a) != len(b) {
		return false
	}
	for _, x := range a {
		if !slices.Contains(b, x) {
			return false
		}
	}
	return true
}

// forget drops the least_conn counters and health entries of addresses
// that left the DNS origin's set (addrs, just resolved): kept, every
// address a name with rotating IPs ever resolved to stayed in memory for
// good, and in Health() and the prism_origin_* metrics. A counter with
// active connections stays (its releases still count it down, and the
// address may come back) until a later change finds it idle; an idle one
// goes (a new one starts at the same 0). A health entry goes once its
// address has been out of the set for three TTLs (at once with a
// negative TTL): a name that answers with a changing subset of its
// addresses keeps an ejected one's state while it comes and goes. It runs
// only when the set changed, so Candidates stays cheap.
func (p *Pool) forget(addrs []netip.Addr) {
	p.active.Range(func(k, v any) bool {
		ap, err := netip.ParseAddrPort(k.(string))
		if err == nil && !slices.Contains(addrs, ap.Addr()) && v.(*atomic.Int64).Load() == 0 {
			p.active.CompareAndDelete(k, v)
		}
		return true
	})
	if h := p.health; h != nil {
		grace := 3 * max(p.cfg.DNS.TTL, 0)
		now := h.now()
		h.mu.Lock()
		for k, o := range h.origins {
			switch {
			case k.path != "":
			case slices.Contains(addrs, k.ap.Addr()):
				o.goneAt = time.Time{}
			case o.goneAt.IsZero() && grace > 0:
				o.goneAt = now
			case o.goneAt.IsZero() || now.Sub(o.goneAt) >= grace:
				delete(h.origins, k)
			}
		}
		h.mu.Unlock()
	}
}

// currentAddrs returns the DNS origin's addresses as last resolved (never
// modified once stored), nil for static origins or before a resolution:
// then every entry is current.
func (p *Pool) currentAddrs() []netip.Addr {
	if p.cfg.DNS == nil {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cached
}
