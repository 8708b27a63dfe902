package limit

import (
	"net/netip"
	"testing"
	"time"

	"github.com/prismproxy/prism/internal/cfgerr"
)

var t0 = time.Unix(1_800_000_000, 0)

func addr(s string) netip.Addr { return netip.MustParseAddr(s) }

// newLimiter is New of c defaulted and validated, as New expects it.
func newLimiter(t *testing.T, c Config) *Limiter {
	t.Helper()
	if err := cfgerr.Prepare(&c); err != nil {
		t.Fatal(err)
	}
	return New(c)
}

func TestPerClientAndPrefix(t *testing.T) {
	l := newLimiter(t, Config{MaxPerClient: 2, MaxPerPrefix: 3})
	var rel []func()
	admit := func(a string, want Which) {
		t.Helper()
		r, w := l.Admit(addr(a), t0)
		if w != want {
			t.Fatalf("%s: %v, want %v", a, w, want)
		}
		if r != nil {
			rel = append(rel, r)
		}
	}
	admit("10.0.0.1", None)
	admit("::ffff:10.0.0.1", None) // the same client, mapped
	admit("10.0.0.1", PerClient)
	admit("10.0.0.2", None)
	admit("10.0.0.3", PerPrefix) // 10.0.0.0/24 holds 3
	admit("10.0.1.1", None)      // another /24
	admit("2001:db8::1", None)
	admit("2001:db8::2", None)
	admit("2001:db8::3", None)
	admit("2001:db8::4", PerPrefix) // 2001:db8::/64 holds 3
	for _, r := range rel {
		r()
		r() // a second call is a no-op
	}
	if c, p, _ := l.Tracked(); c != 0 || p != 0 {
		t.Fatalf("after every release: %d clients, %d prefixes tracked", c, p)
	}
	if got := l.Refused(); got[PerClient] != 1 || got[PerPrefix] != 2 {
		t.Fatalf("refused %v", got)
	}
}

func TestRate(t *testing.T) {
	l := newLimiter(t, Config{RatePerClient: 10, Burst: 3})
	n := 0
	for i := range 10 {
		if r, w := l.Admit(addr("10.0.0.1"), t0.Add(time.Duration(i)*time.Millisecond)); w == None {
			n++
			r()
		}
	}
	if n != 3 {
		t.Fatalf("%d admitted in 10 ms, want the burst of 3", n)
	}
	if _, w := l.Admit(addr("10.0.1.2"), t0); w != None {
		t.Fatal("a client of another /24 is limited too")
	}
	if _, w := l.Admit(addr("10.0.0.1"), t0.Add(110*time.Millisecond)); w != None {
		t.Fatal("no token after 100 ms at 10/s")
	}
	// Quiet clients are forgotten once their bucket is full again.
	l.Admit(addr("10.0.0.3"), t0.Add(sweepEvery+time.Second))
	if _, _, b := l.Tracked(); b != 1 {
		t.Fatalf("%d buckets after the sweep, want 1", b)
	}
}

func TestDisabledAndValidate(t *testing.T) {
	if newLimiter(t, Config{MaxTLSHandshakes: 5}) != nil {
		t.Fatal("a limiter without per-client limits")
	}
	var l *Limiter
	if r, w := l.Admit(addr("10.0.0.1"), t0); w != None || r == nil {
		t.Fatal("nil limiter refuses")
	}
	for _, c := range []Config{{MaxPerClient: -1}, {PrefixV4: 33}, {PrefixV6: 129}, {Burst: 2}, {MaxPerClient: 5, MaxPerPrefix: 2}} {
		c.SetDefaults()
		if len(c.Validate()) == 0 {
			t.Errorf("%+v validates", c)
		}
	}
}

// TestRatePerPrefix: the rate buckets were per address, so a client
// rotating through the addresses of its IPv6 /64 (2^64 of them) was never
// limited, and every address it used held a bucket. They are per prefix
// of prefix_v6 / prefix_v4 bits now, as max_connections_per_prefix.
func TestRatePerPrefix(t *testing.T) {
	l := newLimiter(t, Config{RatePerClient: 10, Burst: 3})
	n := 0
	for i := range 100 {
		a := netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 15: byte(i), 14: byte(i >> 8)})
		if r, w := l.Admit(a, t0); w == None {
			n++
			r()
		}
	}
	if n != 3 {
		t.Errorf("%d of 100 addresses of one /64 admitted at once, want the burst of 3", n)
	}
	if _, _, b := l.Tracked(); b != 1 {
		t.Errorf("%d rate buckets for one /64, want 1", b)
	}
	if _, w := l.Admit(addr("2001:db8:0:1::1"), t0); w != None {
		t.Error("a client of another /64 is limited too")
	}
	one := newLimiter(t, Config{RatePerClient: 10, Burst: 1, PrefixV6: 128})
	for _, a := range []string{"2001:db8::1", "2001:db8::2"} {
		if _, w := one.Admit(addr(a), t0); w != None {
			t.Errorf("prefix_v6 128: %s shares a bucket", a)
		}
	}
	// IPv4: one bucket per address, whatever prefix_v4 (the users of one
	// NAT address are already one client; a /24 would be many of them).
	v4 := newLimiter(t, Config{RatePerClient: 10, Burst: 1})
	for _, a := range []string{"10.0.0.1", "10.0.0.2", "::ffff:10.0.0.3"} {
		if _, w := v4.Admit(addr(a), t0); w != None {
			t.Errorf("IPv4 %s shares a bucket with another address of its /24", a)
		}
	}
}

// TestRateBucketsCapped: the bucket table grew with every new prefix
// until the sweep (a flood of distinct sources held all of them, and the
// sweep walked them all under the lock). Past the cap the least recently
// used bucket goes, counted.
func TestRateBucketsCapped(t *testing.T) {
	l := newLimiter(t, Config{RatePerClient: 1, Burst: 5})
	l.maxBkts = 4
	keep := addr("10.0.0.1")
	for i := range 20 {
		if _, w := l.Admit(keep, t0); w != None && i < 5 {
			t.Fatalf("admission %d of the kept client refused", i)
		}
		l.Admit(netip.AddrFrom4([4]byte{10, 1, byte(i), 1}), t0)
	}
	if _, _, b := l.Tracked(); b != 4 {
		t.Errorf("%d rate buckets, want the cap of 4", b)
	}
	if got := l.Evicted(); got != 20-3 {
		t.Errorf("Evicted %d, want 17", got)
	}
	// The client in use all along kept its bucket: still empty.
	if _, w := l.Admit(keep, t0); w != Rate {
		t.Errorf("the most recently used bucket was evicted (%v)", w)
	}
}
