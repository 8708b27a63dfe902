package origin

import (
	"context"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// rotatingResolver answers each lookup with the next address of a
// sequence: a DNS origin behind a load balancer whose IPs keep changing.
type rotatingResolver struct{ n atomic.Int64 }

func (r *rotatingResolver) LookupNetIP(context.Context, string, string) ([]netip.Addr, error) {
	i := r.n.Add(1)
	return []netip.Addr{netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)})}, nil
}

// TestRotatingDNSForgetsOldAddresses: the health entries and least_conn
// counters of a DNS origin used to keep every address the name ever
// resolved to, for good (unbounded memory, and Health() and the
// prism_origin_* metrics reporting origins long gone). A re-resolution
// now drops those whose address left the set and that carry no active
// connection; Health() reports current addresses only.
func TestRotatingDNSForgetsOldAddresses(t *testing.T) {
	cfg := prepared(t, Config{DNS: &DNSConfig{Name: "elb.test", Port: "80", TTL: -1}, Balance: LeastConn,
		Passive: &PassiveEjection{ConsecutiveFailures: 3}})
	p, err := NewPool(cfg, nil, &rotatingResolver{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, client := context.Background(), netip.MustParseAddr("192.0.2.1")
	// One connection stays open to the first address throughout.
	ts, f := p.Candidates(ctx, client, 0)
	if f != nil {
		t.Fatal(f.Detail)
	}
	held := ts[0]
	p.Report(held, errString("refused")) // a failed dial: a health entry
	release := p.Acquire(held)
	for range 1000 {
		ts, f := p.Candidates(ctx, client, 0)
		if f != nil {
			t.Fatal(f.Detail)
		}
		p.Report(ts[0], errString("refused"))
		p.Acquire(ts[0])()
	}
	counters := func() int {
		n := 0
		p.active.Range(func(any, any) bool { n++; return true })
		return n
	}
	if n := counters(); n > 3 {
		t.Fatalf("%d least_conn counters after 1001 addresses, one at a time; want the current ones and the one in use", n)
	}
	if _, ok := p.active.Load(held.String()); !ok {
		t.Fatal("the counter of an address with an open connection was dropped")
	}
	hs := p.Health()
	if len(hs) != 1 || hs[0].Origin != "10.1.3.233:80" {
		t.Fatalf("Health() = %+v, want the current address (10.1.3.233:80) only", hs)
	}
	p.health.mu.RLock()
	entries := len(p.health.origins)
	p.health.mu.RUnlock()
	if entries > 2 {
		t.Fatalf("%d health entries kept", entries)
	}
	release()
	if _, f := p.Candidates(ctx, client, 0); f != nil { // the next change forgets the released one too
		t.Fatal(f.Detail)
	}
	if _, ok := p.active.Load(held.String()); ok {
		t.Fatal("the counter of a released address that left the set was kept")
	}
}

// TestRotatingDNSConcurrent runs Candidates, Report, Acquire and Health
// of a rotating DNS origin from several goroutines (for the race
// detector).
func TestRotatingDNSConcurrent(t *testing.T) {
	cfg := prepared(t, Config{DNS: &DNSConfig{Name: "elb.test", Port: "80", TTL: -1}, Balance: LeastConn,
		Passive: &PassiveEjection{ConsecutiveFailures: 1}})
	p, _ := NewPool(cfg, nil, &rotatingResolver{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 300 {
				ts, f := p.Candidates(context.Background(), netip.MustParseAddr("192.0.2.1"), 0)
				if f != nil {
					t.Error(f.Detail)
					return
				}
				p.Report(ts[0], errString("x"))
				p.Acquire(ts[0])()
				_ = p.Health()
			}
		}()
	}
	wg.Wait()
}

type errString string

func (e errString) Error() string { return string(e) }

// scriptedResolver answers the i-th lookup with answers[i] (the last one
// from then on).
type scriptedResolver struct {
	n       atomic.Int64
	answers [][]netip.Addr
}

func (r *scriptedResolver) LookupNetIP(context.Context, string, string) ([]netip.Addr, error) {
	i := min(int(r.n.Add(1))-1, len(r.answers)-1)
	return append([]netip.Addr(nil), r.answers[i]...), nil
}

// TestDNSSubsetKeepsEjection: a name that answers with a changing subset
// of its addresses must not forget an ejected address the moment it is
// left out of one answer; only one out of the set for three TTLs goes.
func TestDNSSubsetKeepsEjection(t *testing.T) {
	a, b, c := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("10.0.0.3")
	res := &scriptedResolver{answers: [][]netip.Addr{{a}, {b}, {a}, {b}, {c}}}
	cfg := prepared(t, Config{DNS: &DNSConfig{Name: "multi.test", Port: "80", TTL: time.Nanosecond},
		Passive: &PassiveEjection{ConsecutiveFailures: 1}})
	p, _ := NewPool(cfg, nil, res)
	now := time.Unix(1000, 0)
	p.health.now = func() time.Time { return now }
	resolve := func() []Target {
		t.Helper()
		time.Sleep(time.Microsecond) // past the 1 ns TTL on any clock
		ts, f := p.Candidates(context.Background(), netip.MustParseAddr("192.0.2.1"), 0)
		if f != nil {
			t.Fatal(f.Detail)
		}
		return ts
	}
	ka := hkey{ap: netip.AddrPortFrom(a, 80)}
	entry := func() *health {
		p.health.mu.RLock()
		defer p.health.mu.RUnlock()
		return p.health.origins[ka]
	}
	p.Report(resolve()[0], errString("refused")) // [a]: a ejected
	resolve()                                    // [b]: a left out
	resolve()                                    // [a]: back
	if o := entry(); o == nil || !o.down.Load() {
		t.Fatal("the ejection of an address left out of one answer was forgotten")
	}
	resolve() // [b]: left out again
	now = now.Add(time.Minute)
	resolve() // [c]: out for far more than three TTLs
	if entry() != nil {
		t.Fatal("the health entry of an address out of the set for three TTLs was kept")
	}
}
