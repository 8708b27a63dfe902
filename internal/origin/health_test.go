package origin

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func candidates(t *testing.T, p *Pool) []string {
	t.Helper()
	ts, f := p.Candidates(context.Background(), netip.MustParseAddr("192.0.2.1"), 0)
	if f != nil {
		t.Fatal(f.Detail)
	}
	out := make([]string, len(ts))
	for i, x := range ts {
		out[i] = x.String()
	}
	return out
}

func TestWeightedRoundRobin(t *testing.T) {
	p := mustPool(t, Config{Addresses: []string{"127.0.0.1:1 weight=3", "127.0.0.2:1", "127.0.0.3:1 weight=2"}}, nil)
	got := map[string]int{}
	for range 600 {
		got[candidates(t, p)[0]]++
	}
	if got["127.0.0.1:1"] != 300 || got["127.0.0.2:1"] != 100 || got["127.0.0.3:1"] != 200 {
		t.Fatalf("first picks %v, want 300/100/200 for weights 3/1/2", got)
	}
}

func TestWeightedIPHashAndLeastConn(t *testing.T) {
	p := mustPool(t, Config{Addresses: []string{"127.0.0.1:1 weight=9", "127.0.0.2:1"}, Balance: IPHash}, nil)
	got := map[string]int{}
	for i := range 2000 {
		c := netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)})
		ts, _ := p.Candidates(context.Background(), c, 0)
		got[ts[0].String()]++
	}
	if n := got["127.0.0.1:1"]; n < 1600 || n > 1950 {
		t.Errorf("ip_hash with weights 9/1 sent %d of 2000 clients to the heavy origin, want about 1800", n)
	}

	lc := mustPool(t, Config{Addresses: []string{"127.0.0.1:1 weight=3", "127.0.0.2:1"}, Balance: LeastConn}, nil)
	count := map[string]int{}
	for range 8 { // held open: least_conn fills by active connections per weight
		ts, _ := lc.Candidates(context.Background(), netip.Addr{}, 0)
		lc.Acquire(ts[0])
		count[ts[0].String()]++
	}
	if count["127.0.0.1:1"] != 6 || count["127.0.0.2:1"] != 2 {
		t.Errorf("least_conn with weights 3/1 holds %v, want 6 and 2", count)
	}
}

func TestBadWeights(t *testing.T) {
	for _, a := range []string{"127.0.0.1:1 weight=0", "127.0.0.1:1 weight=x", "127.0.0.1:1 weight=1001", "127.0.0.1:1 heavy"} {
		errs := (&Config{Addresses: []string{a}}).Validate()
		if len(errs) != 1 || errs[0].Key != "addresses[0]" {
			t.Errorf("%q: %v, want one addresses[0] error", a, errs)
		}
	}
}

func TestHealthCheckConfig(t *testing.T) {
	c := Config{Addresses: []string{"127.0.0.1:1"}, HealthCheck: &HealthCheck{}}
	c.SetDefaults()
	hc := c.HealthCheck
	if hc.Interval != 30*time.Second || hc.Timeout != 5*time.Second || hc.UnhealthyThreshold != 3 || hc.HealthyThreshold != 1 || hc.Type != CheckTCP {
		t.Errorf("defaults %+v, want Spectrum's monitor: 30s, 5s, 3 (2 retries), 1, tcp", *hc)
	}
	for _, tc := range []struct {
		hc   HealthCheck
		key  string
		udp  bool
		want string
	}{
		{HealthCheck{Type: "http"}, "health_check.type", false, "unknown type"},
		{HealthCheck{Type: CheckSendExpect}, "health_check.expect", false, "missing"},
		{HealthCheck{Type: CheckTCP, Send: "x"}, "health_check.send", false, "send_expect"},
		{HealthCheck{Interval: time.Second, Timeout: 2 * time.Second}, "health_check.timeout", false, "longer"},
		{HealthCheck{Type: CheckTCP}, "health_check.type", true, "udp"},
		{HealthCheck{Type: CheckSendExpect, Expect: "x"}, "health_check.send", true, "datagram"},
	} {
		c := Config{Addresses: []string{"127.0.0.1:1"}, HealthCheck: &tc.hc}
		c.SetDefaults()
		errs := c.Validate()
		if tc.udp {
			errs = c.ValidateFor("udp")
		}
		if len(errs) != 1 || errs[0].Key != tc.key || !strings.Contains(errs[0].Msg, tc.want) {
			t.Errorf("%+v (udp %v): %v, want one %s error about %q", tc.hc, tc.udp, errs, tc.key, tc.want)
		}
	}
	if errs := (&Config{Addresses: []string{"127.0.0.1:1"}, Passive: &PassiveEjection{}}).Validate(); len(errs) != 1 || errs[0].Key != "passive_ejection.consecutive_failures" {
		t.Errorf("passive_ejection without consecutive_failures: %v", errs)
	}
}

// TestActiveThresholds drives the health state as checks would: the origin
// goes down on the unhealthy_threshold-th failure in a row, not before, and
// comes back on the healthy_threshold-th success; while down no balancer
// offers it.
func TestActiveThresholds(t *testing.T) {
	for _, balance := range []string{RoundRobin, LeastConn, IPHash} {
		p := mustPool(t, Config{Addresses: []string{"127.0.0.1:1", "127.0.0.2:1"}, Balance: balance,
			HealthCheck: &HealthCheck{UnhealthyThreshold: 2, HealthyThreshold: 3}}, nil)
		bad := Target{Addr: netip.MustParseAddrPort("127.0.0.2:1")}
		fail := errors.New("connection refused")
		p.health.checked(bad, fail)
		if got := candidates(t, p); len(got) != 2 {
			t.Fatalf("%s: after 1 failure of 2: %v, want both", balance, got)
		}
		p.health.checked(bad, nil) // a success resets the run
		p.health.checked(bad, fail)
		if got := candidates(t, p); len(got) != 2 {
			t.Fatalf("%s: failures not in a row took it down: %v", balance, got)
		}
		p.health.checked(bad, fail)
		for range 20 {
			if got := candidates(t, p); len(got) != 1 || got[0] != "127.0.0.1:1" {
				t.Fatalf("%s: after 2 failures in a row: %v, want only 127.0.0.1:1", balance, got)
			}
		}
		p.health.checked(bad, nil)
		p.health.checked(bad, nil)
		if got := candidates(t, p); len(got) != 1 {
			t.Fatalf("%s: back after 2 of 3 successes: %v", balance, got)
		}
		p.health.checked(bad, nil)
		if got := candidates(t, p); len(got) != 2 {
			t.Fatalf("%s: not back after 3 successes: %v", balance, got)
		}
		h := p.Health()
		if len(h) != 1 || !h[0].Healthy || h[0].Transitions != 2 || h[0].ChecksFailed != 3 || h[0].ChecksOK != 4 {
			t.Errorf("%s: Health() = %+v", balance, h)
		}
	}
}

// TestAllDownOffersAll: when every origin is down, Candidates offers them
// all (the dial then decides the record's Status) and counts it.
func TestAllDownOffersAll(t *testing.T) {
	p := mustPool(t, Config{Addresses: []string{"127.0.0.1:1", "127.0.0.2:1"}, HealthCheck: &HealthCheck{UnhealthyThreshold: 1}}, nil)
	for _, a := range []string{"127.0.0.1:1", "127.0.0.2:1"} {
		p.health.checked(Target{Addr: netip.MustParseAddrPort(a)}, errors.New("refused"))
	}
	if got := candidates(t, p); len(got) != 2 {
		t.Fatalf("every origin down: %v, want both offered", got)
	}
	if p.AllDown() != 1 {
		t.Errorf("AllDown = %d, want 1", p.AllDown())
	}
}

// TestPassiveEjection: consecutive failed dials eject an origin for
// eject_for; a success in between resets the count; after eject_for it is
// offered again.
func TestPassiveEjection(t *testing.T) {
	p := mustPool(t, Config{Addresses: []string{"127.0.0.1:1", "127.0.0.2:1"},
		Passive: &PassiveEjection{ConsecutiveFailures: 2, EjectFor: time.Minute}}, nil)
	now := time.Unix(1000, 0)
	p.health.now = func() time.Time { return now }
	bad := Target{Addr: netip.MustParseAddrPort("127.0.0.2:1")}
	p.Report(bad, errors.New("refused"))
	p.Report(bad, nil)
	p.Report(bad, errors.New("refused"))
	if got := candidates(t, p); len(got) != 2 {
		t.Fatalf("failures not in a row ejected it: %v", got)
	}
	p.Report(bad, errors.New("refused"))
	if got := candidates(t, p); len(got) != 1 || got[0] != "127.0.0.1:1" {
		t.Fatalf("after 2 failed dials in a row: %v", got)
	}
	now = now.Add(59 * time.Second)
	if got := candidates(t, p); len(got) != 1 {
		t.Fatalf("back before eject_for: %v", got)
	}
	now = now.Add(time.Second)
	if got := candidates(t, p); len(got) != 2 {
		t.Fatalf("not back after eject_for: %v", got)
	}
}

// TestPortRangeIsOneOrigin: an origin port range is checked at its first
// port, and its health applies to every port of the range.
func TestPortRangeIsOneOrigin(t *testing.T) {
	p := mustPool(t, Config{Addresses: []string{"127.0.0.1:3000-3009", "127.0.0.2:4000-4009"}, HealthCheck: &HealthCheck{UnhealthyThreshold: 1}}, nil)
	ct := p.checkTargets()
	if len(ct) != 2 || ct[0].String() != "127.0.0.1:3000" {
		t.Fatalf("check targets %v", ct)
	}
	p.health.checked(ct[0], errors.New("refused"))
	ts, _ := p.Candidates(context.Background(), netip.Addr{}, 7)
	if len(ts) != 1 || ts[0].String() != "127.0.0.2:4007" {
		t.Fatalf("offset 7 with the first range down: %v", ts)
	}
}
