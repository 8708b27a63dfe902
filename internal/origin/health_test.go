package origin

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"strconv"
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

// TestDefaultTimeoutFollowsShortInterval: an interval under 5s alone is
// valid, the timeout then defaulting to the interval; an explicit timeout
// longer than the interval is still an error.
func TestDefaultTimeoutFollowsShortInterval(t *testing.T) {
	for _, tc := range []struct {
		interval, timeout, want time.Duration
	}{
		{2 * time.Second, 0, 2 * time.Second},
		{500 * time.Millisecond, 0, 500 * time.Millisecond},
		{10 * time.Second, 0, 5 * time.Second},
		{0, 0, 5 * time.Second},
		{2 * time.Second, time.Second, time.Second},
	} {
		c := Config{Addresses: []string{"127.0.0.1:1"}, HealthCheck: &HealthCheck{Interval: tc.interval, Timeout: tc.timeout}}
		c.SetDefaults()
		if errs := c.Validate(); len(errs) != 0 {
			t.Errorf("interval %v timeout %v: %v, want valid", tc.interval, tc.timeout, errs)
		}
		if c.HealthCheck.Timeout != tc.want {
			t.Errorf("interval %v timeout %v: timeout defaulted to %v, want %v", tc.interval, tc.timeout, c.HealthCheck.Timeout, tc.want)
		}
	}
	c := Config{Addresses: []string{"127.0.0.1:1"}, HealthCheck: &HealthCheck{Interval: 2 * time.Second, Timeout: 3 * time.Second}}
	c.SetDefaults()
	if errs := c.Validate(); len(errs) != 1 || errs[0].Key != "health_check.timeout" {
		t.Errorf("explicit timeout 3s over interval 2s: %v, want one health_check.timeout error", errs)
	}
	c = Config{Addresses: []string{"127.0.0.1:1"}, HealthCheck: &HealthCheck{Interval: time.Millisecond}}
	c.SetDefaults()
	if errs := c.Validate(); len(errs) != 1 || errs[0].Key != "health_check.interval" {
		t.Errorf("interval 1ms: %v, want only the interval error (at least %v)", errs, MinCheckInterval)
	}
	c = Config{Addresses: []string{"127.0.0.1:1"}, HealthCheck: &HealthCheck{Interval: -time.Second}}
	c.SetDefaults()
	if errs := c.Validate(); len(errs) != 1 || errs[0].Key != "health_check.interval" {
		t.Errorf("negative interval: %v, want only the interval error", errs)
	}
}

// TestUDPCheckWithoutType: a udp app whose health_check sets no type is
// told to set type send_expect (the type defaults to tcp before the
// transport is known); an explicit send_expect check is valid.
func TestUDPCheckWithoutType(t *testing.T) {
	for _, hc := range []HealthCheck{{}, {Send: "ping", Expect: "pong"}} {
		c := Config{Addresses: []string{"127.0.0.1:1"}, HealthCheck: &hc}
		c.SetDefaults()
		errs := append(c.Validate(), c.ValidateFor("udp")...)
		if len(errs) == 0 {
			t.Fatalf("%+v: valid for a udp app, want an error", hc)
		}
		for _, e := range errs {
			if !strings.Contains(e.Msg, "type: send_expect") {
				t.Errorf("%+v: %s: %q does not say to set type: send_expect", hc, e.Key, e.Msg)
			}
		}
	}
	c := Config{Addresses: []string{"127.0.0.1:1"}, HealthCheck: &HealthCheck{Type: CheckSendExpect, Send: "ping", Expect: "pong"}}
	c.SetDefaults()
	if errs := append(c.Validate(), c.ValidateFor("udp")...); len(errs) != 0 {
		t.Errorf("udp send_expect check: %v, want valid", errs)
	}
	// For a tcp app the unset type is tcp, as before.
	c = Config{Addresses: []string{"127.0.0.1:1"}, HealthCheck: &HealthCheck{}}
	c.SetDefaults()
	if errs := append(c.Validate(), c.ValidateFor("tcp")...); len(errs) != 0 || c.HealthCheck.Type != CheckTCP {
		t.Errorf("tcp app, no type: %v, type %q", errs, c.HealthCheck.Type)
	}
}

// dnsPool is a pool of a DNS origin name resolving to addrs, with an empty
// block list: only the loopback rule can refuse an address.
func dnsPool(t *testing.T, allowLoopback bool, addrs ...netip.Addr) *Pool {
	t.Helper()
	cfg := prepared(t, Config{DNS: &DNSConfig{Name: "origin.test", Port: "80", AllowLoopback: allowLoopback},
		HealthCheck: &HealthCheck{Type: CheckTCP}})
	p, err := NewPool(cfg, []netip.Prefix{}, fakeResolver{"origin.test": addrs})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestCheckSkipsWhatConnectionsRefuse: a health check probes exactly the
// addresses of a DNS origin that a real connection may use; loopback and
// unspecified ones (in any IPv4-carrying form) only with allow_loopback.
func TestCheckSkipsWhatConnectionsRefuse(t *testing.T) {
	for _, s := range []string{"127.0.0.1", "127.9.9.9", "::1", "0.0.0.0", "::", "::ffff:127.0.0.1",
		"::127.0.0.1", "64:ff9b::7f00:1", "2002:7f00:1::", "192.0.2.10", "2001:db8::1"} {
		for _, allow := range []bool{false, true} {
			p := dnsPool(t, allow, netip.MustParseAddr(s))
			_, f := p.Candidates(context.Background(), netip.Addr{}, 0)
			checked := len(p.checkTargets()) == 1
			if checked != (f == nil) {
				t.Errorf("%s (allow_loopback %v): checked %v, but a connection may use it: %v", s, allow, checked, f == nil)
			}
			if local := isLocal(netip.MustParseAddr(s)); checked == (local && !allow) {
				t.Errorf("%s (allow_loopback %v): checked %v", s, allow, checked)
			}
		}
	}
}

// TestCheckDoesNotReachLoopbackByName: a DNS origin name pointed at
// 127.0.0.1 does not make the checker connect to (and send to) a service
// of the edge host, unless allow_loopback is set.
func TestCheckDoesNotReachLoopbackByName(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	accepted := make(chan string, 8)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
			b := make([]byte, len("SECRET"))
			n, _ := io.ReadFull(c, b)
			b = b[:n]
			_, _ = c.Write([]byte("OK"))
			c.Close()
			accepted <- string(b)
		}
	}()
	for _, allow := range []bool{false, true} {
		cfg := prepared(t, Config{DNS: &DNSConfig{Name: "self.test", Port: port, AllowLoopback: allow},
			HealthCheck: &HealthCheck{Type: CheckSendExpect, Send: "SECRET", Expect: "OK", Timeout: 2 * time.Second}})
		p, err := NewPool(cfg, nil, fakeResolver{"self.test": {netip.MustParseAddr("127.0.0.1")}})
		if err != nil {
			t.Fatal(err)
		}
		p.checkAll("tcp") // synchronous: any connection is made before it returns
		select {
		case got := <-accepted:
			if !allow {
				t.Errorf("a check of a name resolving to 127.0.0.1 connected and sent %q", got)
			}
		case <-time.After(200 * time.Millisecond):
			if allow {
				t.Error("with allow_loopback the check did not connect")
			}
		}
		if h := p.Health(); allow && (len(h) != 1 || h[0].ChecksOK != 1) || !allow && len(h) != 0 {
			t.Errorf("allow_loopback %v: Health() = %+v", allow, h)
		}
	}
}
