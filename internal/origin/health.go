package origin

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prismproxy/prism/internal/cfgerr"
	"github.com/prismproxy/prism/internal/netspec"
)

// Health check types.
const (
	CheckTCP        = "tcp"         // the origin accepts a connection
	CheckTLS        = "tls"         // … and completes a TLS handshake
	CheckSendExpect = "send_expect" // … and answers send with bytes containing expect
)

// Defaults of an active health check: Spectrum's TCP monitor (interval
// 30 s, timeout 5 s, 2 retries: a third failure in a row marks the origin
// down); one good check brings it back, as Spectrum's monitor does. An
// unset timeout is DefaultCheckTimeout or the interval, whichever is
// shorter.
const (
	// MinCheckInterval is the shortest interval a config may set.
	MinCheckInterval          = 100 * time.Millisecond
	DefaultCheckInterval      = 30 * time.Second
	DefaultCheckTimeout       = 5 * time.Second
	DefaultUnhealthyThreshold = 3
	DefaultHealthyThreshold   = 1
	DefaultEjectFor           = 30 * time.Second
)

// HealthCheck is an app's `origins.health_check:` section: an active probe
// of every origin address, every interval.
type HealthCheck struct {
	Interval time.Duration `yaml:"interval"`
	Timeout  time.Duration `yaml:"timeout"`
	// UnhealthyThreshold failed checks in a row mark an origin down;
	// HealthyThreshold good ones in a row bring it back.
	UnhealthyThreshold int `yaml:"unhealthy_threshold"`
	HealthyThreshold   int `yaml:"healthy_threshold"`
	// Type is tcp (default), tls or send_expect. A udp app's origins are
	// checked with send_expect only (a datagram out, a reply back).
	Type string `yaml:"type"`
	// Send and Expect are the probe of send_expect: Send is written (it may
	// be empty: the origin speaks first), and the check passes when the
	// reply read before Timeout contains Expect.
	Send   string `yaml:"send"`
	Expect string `yaml:"expect"`
	// ServerName is the SNI of a tls check. The certificate is not
	// verified: the check asks whether the origin handshakes, not whom
	// it proves to be (the app's origin TLS mode decides that for real
	// connections).
	ServerName string `yaml:"server_name"`

	// typeDefaulted records that Type was unset and setDefaults made it
	// tcp, so that a udp app is told to set it rather than told that tcp
	// is wrong.
	typeDefaulted bool
}

// PassiveEjection is `origins.passive_ejection:`: an origin whose dials
// fail ConsecutiveFailures times in a row (real client connections, TCP
// apps) is taken out of the balancer — until its active check passes again
// when there is one, for EjectFor otherwise.
type PassiveEjection struct {
	ConsecutiveFailures int           `yaml:"consecutive_failures"`
	EjectFor            time.Duration `yaml:"eject_for"`
}

func (h *HealthCheck) setDefaults() {
	if h.Interval == 0 {
		h.Interval = DefaultCheckInterval
	}
	if h.Timeout == 0 {
		h.Timeout = DefaultCheckTimeout
		if h.Interval > 0 {
			// A short interval alone is valid: the timeout follows it.
			h.Timeout = min(h.Timeout, h.Interval)
		}
	}
	if h.UnhealthyThreshold == 0 {
		h.UnhealthyThreshold = DefaultUnhealthyThreshold
	}
	if h.HealthyThreshold == 0 {
		h.HealthyThreshold = DefaultHealthyThreshold
	}
	if h.Type == "" {
		h.Type = CheckTCP
		h.typeDefaulted = true
	}
}

func (h *HealthCheck) validate() []*cfgerr.Error {
	var errs cfgerr.List
	switch {
	case h.Interval < 0:
		errs.Add("interval", "must not be negative")
	case h.Interval > 0 && h.Interval < MinCheckInterval:
		// A check is a connection (and maybe a handshake) to every origin
		// address: below this the checker all but loops.
		errs.Add("interval", "must be at least %v, got %v", MinCheckInterval, h.Interval)
	}
	if h.Timeout < 0 {
		errs.Add("timeout", "must not be negative")
	}
	if h.Interval > 0 && h.Timeout > h.Interval {
		errs.Add("timeout", "%v is longer than the interval %v", h.Timeout, h.Interval)
	}
	if h.UnhealthyThreshold < 0 {
		errs.Add("unhealthy_threshold", "must not be negative")
	}
	if h.HealthyThreshold < 0 {
		errs.Add("healthy_threshold", "must not be negative")
	}
	switch h.Type {
	case "", CheckTCP, CheckTLS:
		if h.Send != "" || h.Expect != "" {
			if h.typeDefaulted {
				errs.Add("send", "send and expect are for type send_expect, and type defaults to tcp: set `type: send_expect`")
			} else {
				errs.Add("send", "send and expect are for type send_expect")
			}
		}
	case CheckSendExpect:
		if h.Expect == "" {
			errs.Add("expect", "missing: the bytes a healthy origin's reply contains")
		}
	default:
		errs.Add("type", "unknown type %q (use tcp, tls or send_expect)", h.Type)
	}
	if h.ServerName != "" && h.Type != CheckTLS {
		errs.Add("server_name", "server_name is for type tls")
	}
	return errs
}

func (p *PassiveEjection) setDefaults() {
	if p.EjectFor == 0 {
		p.EjectFor = DefaultEjectFor
	}
}

func (p *PassiveEjection) validate() []*cfgerr.Error {
	var errs cfgerr.List
	if p.ConsecutiveFailures < 1 {
		errs.Add("consecutive_failures", "must be at least 1 (leave passive_ejection out to turn it off)")
	}
	if p.EjectFor < 0 {
		errs.Add("eject_for", "must not be negative")
	}
	return errs
}

// ValidateFor checks what depends on the app's transport ("tcp" or "udp").
func (c *Config) ValidateFor(transport string) []*cfgerr.Error {
	var errs cfgerr.List
	if transport == "udp" {
		if c.HealthCheck != nil && c.HealthCheck.typeDefaulted {
			// The type defaults to tcp before the transport is known
			// (SetDefaults has no transport): ask for it by name.
			errs.Add("health_check.type", "missing: a udp app's origins are checked with send_expect only (a datagram out, a reply back): set `type: send_expect` with `send` and `expect`")
		} else if c.HealthCheck != nil && c.HealthCheck.Type != CheckSendExpect {
			errs.Add("health_check.type", "a udp app's origins are checked with send_expect (a datagram out, a reply back); tcp and tls are for tcp apps")
		} else if c.HealthCheck != nil && c.HealthCheck.Send == "" {
			errs.Add("health_check.send", "missing: a udp check sends this datagram and expects a reply")
		}
		if c.Passive != nil {
			errs.Add("passive_ejection", "passive ejection counts failed TCP dials; a udp app's origins use health_check")
		}
	}
	return errs
}

// hkey identifies one origin address for health: an IP origin after port
// mapping, or a unix socket path.
type hkey struct {
	ap   netip.AddrPort
	path string
}

// keyOf is t's health key: a port range is one origin, known by its first
// port, whichever port of the range a connection uses.
func keyOf(t Target) hkey {
	if t.base.IsValid() {
		return hkey{ap: t.base}
	}
	return hkey{ap: t.Addr, path: t.Path}
}

// health is what the pool knows of one origin address.
type health struct {
	down atomic.Bool

	mu           sync.Mutex
	target       Target
	okRun        int // active checks passed in a row
	failRun      int // active checks failed in a row
	dialFails    int // client dials failed in a row (passive)
	ejectedUntil time.Time
	lastErr      string
	changed      time.Time
	checksOK     int64
	checksFailed int64
	transitions  int64

	goneAt time.Time // when its address left the DNS set, zero if in it (healthState.mu; Pool.forget)
}

// OriginHealth is one origin address's health, for logs and metrics.
type OriginHealth struct {
	Origin       string // dial address
	Healthy      bool
	LastError    string // the last failed check or dial, "" if none
	Since        time.Time
	ChecksOK     int64 // active checks passed
	ChecksFailed int64 // active checks failed
	Transitions  int64 // times it went down or came back
}

// healthState is the health side of a Pool: nil when the app has neither
// active checks nor passive ejection, and then every origin is healthy.
type healthState struct {
	check   *HealthCheck
	passive *PassiveEjection

	mu      sync.RWMutex
	origins map[hkey]*health

	allDown atomic.Int64 // Candidates calls that found every origin down

	log    *slog.Logger
	stop   chan struct{}
	done   sync.WaitGroup
	closed atomic.Bool
	now    func() time.Time
}

func newHealthState(cfg *Config) *healthState {
	if cfg.HealthCheck == nil && cfg.Passive == nil {
		return nil
	}
	h := &healthState{check: cfg.HealthCheck, passive: cfg.Passive, origins: map[hkey]*health{},
		log: slog.New(slog.DiscardHandler), stop: make(chan struct{}), now: time.Now}
	return h
}

func (h *healthState) get(t Target) *health {
	k := keyOf(t)
	h.mu.RLock()
	o := h.origins[k]
	h.mu.RUnlock()
	if o != nil {
		return o
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if o = h.origins[k]; o == nil {
		o = &health{target: t, changed: h.now()}
		h.origins[k] = o
	}
	return o
}

// up reports whether t may be chosen. A passive ejection without an active
// check ends by itself after eject_for.
func (h *healthState) up(t Target) bool {
	h.mu.RLock()
	o := h.origins[keyOf(t)]
	h.mu.RUnlock()
	if o == nil || !o.down.Load() {
		return true
	}
	if h.check != nil {
		return false
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if !o.down.Load() {
		return true
	}
	if h.now().Before(o.ejectedUntil) {
		return false
	}
	h.setLocked(o, true, "ejection time over")
	return true
}

// setLocked changes o's state (o.mu held) and logs the change.
func (h *healthState) setLocked(o *health, healthy bool, why string) {
	if o.down.Load() == !healthy {
		return
	}
	o.down.Store(!healthy)
	o.changed = h.now()
	o.transitions++
	if healthy {
		o.dialFails, o.failRun = 0, 0
		h.log.Info("origin healthy", "origin", o.target.String(), "reason", why)
	} else {
		o.okRun = 0
		h.log.Warn("origin unhealthy", "origin", o.target.String(), "reason", why)
	}
}

// report records the outcome of one client dial to t (passive ejection).
func (h *healthState) report(t Target, err error) {
	if h.passive == nil {
		return
	}
	if err == nil {
		// Nothing to reset without an entry: a dial that went well
		// creates none (one to an address that just left a DNS set
		// would otherwise stay behind, see Pool.forget).
		h.mu.RLock()
		o := h.origins[keyOf(t)]
		h.mu.RUnlock()
		if o != nil {
			o.mu.Lock()
			o.dialFails = 0
			o.mu.Unlock()
		}
		return
	}
	o := h.get(t)
	o.mu.Lock()
	defer o.mu.Unlock()
	o.dialFails++
	o.lastErr = err.Error()
	if o.dialFails >= h.passive.ConsecutiveFailures && !o.down.Load() {
		o.ejectedUntil = h.now().Add(h.passive.EjectFor)
		h.setLocked(o, false, fmt.Sprintf("%d client dials failed in a row, last: %v", o.dialFails, err))
	}
}

// checked records the outcome of one active check of t.
func (h *healthState) checked(t Target, err error) {
	o := h.get(t)
	o.mu.Lock()
	defer o.mu.Unlock()
	if err == nil {
		o.checksOK++
		o.okRun++
		o.failRun = 0
		if o.down.Load() && o.okRun >= h.check.HealthyThreshold {
			h.setLocked(o, true, fmt.Sprintf("%d checks passed in a row", o.okRun))
		}
		return
	}
	o.checksFailed++
	o.failRun++
	o.okRun = 0
	o.lastErr = err.Error()
	if !o.down.Load() && o.failRun >= h.check.UnhealthyThreshold {
		h.setLocked(o, false, fmt.Sprintf("%d checks failed in a row, last: %v", o.failRun, err))
	}
}

// Report tells the pool how a client's dial to t went: consecutive
// failures eject t when passive_ejection is configured.
func (p *Pool) Report(t Target, err error) {
	if p.health != nil {
		p.health.report(t, err)
	}
}

// Health is the state of every origin address the pool has checked or
// dialled, sorted by address; nil when the app has no health checks. A
// DNS origin's are its current addresses only: an entry a check or dial
// in flight made for an address that left the set is not reported (the
// next change of the set drops it, see Pool.forget).
func (p *Pool) Health() []OriginHealth {
	h := p.health
	if h == nil {
		return nil
	}
	cur := p.currentAddrs() // before h.mu: forget takes p.mu, then h.mu
	h.mu.RLock()
	out := make([]OriginHealth, 0, len(h.origins))
	for k, o := range h.origins {
		if cur != nil && k.path == "" && !slices.Contains(cur, k.ap.Addr()) {
			continue
		}
		o.mu.Lock()
		out = append(out, OriginHealth{Origin: o.target.String(), Healthy: !o.down.Load(), LastError: o.lastErr,
			Since: o.changed, ChecksOK: o.checksOK, ChecksFailed: o.checksFailed, Transitions: o.transitions})
		o.mu.Unlock()
	}
	h.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Origin < out[j].Origin })
	return out
}

// AllDown is how many times Candidates found every origin down and offered
// them all anyway.
func (p *Pool) AllDown() int64 {
	if p.health == nil {
		return 0
	}
	return p.health.allDown.Load()
}

// filter returns ts without its unhealthy targets (a new slice when any
// is dropped). When every target is down it returns them all: prism then
// tries each as if none were checked, and the record's Status is that of
// the real dial (521, 522, 523…).
func (h *healthState) filter(ts []Target) []Target {
	var out []Target
	for i, t := range ts {
		if h.up(t) {
			if out != nil {
				out = append(out, t)
			}
			continue
		}
		if out == nil {
			out = make([]Target, i, len(ts))
			copy(out, ts[:i])
		}
	}
	switch {
	case out == nil:
		return ts
	case len(out) == 0:
		h.allDown.Add(1)
		return ts
	}
	return out
}

// StartChecks starts the active health checks of the pool (if configured),
// probing every origin address each interval, over transport ("tcp" or
// "udp"). Health changes are logged to logger. Close stops them.
func (p *Pool) StartChecks(logger *slog.Logger, transport string) {
	h := p.health
	if h == nil {
		return
	}
	if logger != nil {
		h.log = logger
	}
	if h.check == nil {
		return
	}
	h.done.Add(1)
	go func() {
		defer h.done.Done()
		tick := time.NewTicker(h.check.Interval)
		defer tick.Stop()
		for {
			p.checkAll(transport)
			select {
			case <-h.stop:
				return
			case <-tick.C:
			}
		}
	}()
}

// Close stops the health checks and waits for them to end.
func (p *Pool) Close() {
	h := p.health
	if h == nil || h.closed.Swap(true) {
		return
	}
	close(h.stop)
	h.done.Wait()
}

// checkTargets are the addresses an active check probes: the static ones
// (a port range is checked at its first port), or the DNS name's current
// addresses. An address a real connection would refuse (the block list, or
// a DNS name's loopback and unspecified addresses, see refusesLocal) is
// never probed: the check would otherwise reach it, sending `send` to the
// edge host's own services.
func (p *Pool) checkTargets() []Target {
	if p.cfg.DNS != nil {
		ctx, cancel := context.WithTimeout(context.Background(), p.health.check.Timeout)
		defer cancel()
		addrs, f := p.resolve(ctx)
		if f != nil {
			p.health.log.Warn("health check: cannot resolve the origin", "err", f.Detail)
			return nil
		}
		lo, _, _ := netspec.ParsePortRange(p.cfg.DNS.Port)
		out := make([]Target, 0, len(addrs))
		for _, a := range addrs {
			if p.refusesLocal(a) {
				p.health.log.Warn("health check: origin resolves to a loopback or unspecified address, not checked (set origins.dns.allow_loopback to allow it)",
					"name", p.cfg.DNS.Name, "addr", a)
				continue
			}
			if !p.blocked(a) {
				ap := netip.AddrPortFrom(a, lo)
				out = append(out, Target{Addr: ap, Name: p.cfg.DNS.Name, base: ap})
			}
		}
		return out
	}
	out := make([]Target, 0, len(p.static))
	for _, t := range p.static {
		if t.path != "" {
			out = append(out, Target{Path: t.path})
		} else if !p.blocked(t.addr) {
			ap := netip.AddrPortFrom(t.addr, t.lo)
			out = append(out, Target{Addr: ap, base: ap})
		}
	}
	return out
}

func (p *Pool) checkAll(transport string) {
	h := p.health
	ts := p.checkTargets()
	var wg sync.WaitGroup
	for _, t := range ts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), h.check.Timeout)
			defer cancel()
			go func() {
				select {
				case <-h.stop:
					cancel()
				case <-ctx.Done():
				}
			}()
			err := probe(ctx, h.check, t, transport)
			if h.closed.Load() {
				return // stopped mid-check: not the origin's fault
			}
			h.checked(t, err)
		}()
	}
	wg.Wait()
}

// probe runs one check of t.
func probe(ctx context.Context, hc *HealthCheck, t Target, transport string) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, t.Network(transport), t.String())
	if err != nil {
		return err
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	switch hc.Type {
	case CheckTLS:
		tc := tls.Client(c, &tls.Config{ServerName: hc.ServerName, InsecureSkipVerify: true}) //nolint:gosec // liveness only, see HealthCheck.ServerName
		if err := tc.HandshakeContext(ctx); err != nil {
			return fmt.Errorf("tls handshake: %w", err)
		}
		_ = tc.Close()
	case CheckSendExpect:
		if hc.Send != "" {
			if _, err := c.Write([]byte(hc.Send)); err != nil {
				return fmt.Errorf("send: %w", err)
			}
		}
		want := []byte(hc.Expect)
		buf := make([]byte, 0, 512)
		tmp := make([]byte, 512)
		for !bytes.Contains(buf, want) {
			n, err := c.Read(tmp)
			buf = append(buf, tmp[:n]...)
			if len(buf) > 64<<10 {
				return fmt.Errorf("reply of %d bytes without %q", len(buf), hc.Expect)
			}
			if err != nil && !bytes.Contains(buf, want) {
				return fmt.Errorf("expect %q: got %q: %w", hc.Expect, buf, err)
			}
		}
	}
	return nil
}
