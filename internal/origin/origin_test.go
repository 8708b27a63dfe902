package origin

import (
	"context"
	"net"
	"net/netip"
	"testing"

	"github.com/prismproxy/prism/internal/cfgerr"
	"github.com/prismproxy/prism/internal/event"
)

type fakeResolver map[string][]netip.Addr

func (f fakeResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	if a, ok := f[host]; ok {
		return a, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

// prepared is cfg defaulted and validated, as NewPool expects it.
func prepared(t testing.TB, cfg Config) Config {
	t.Helper()
	if err := cfgerr.Prepare(&cfg); err != nil {
		t.Fatal(err)
	}
	return cfg
}

func mustPool(t *testing.T, cfg Config, block []string) *Pool {
	t.Helper()
	cfg = prepared(t, cfg)
	b, err := ParseBlock(block)
	if err != nil {
		t.Fatal(err)
	}
	p, err := NewPool(cfg, b, fakeResolver{
		"two.test":      {netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("127.0.0.2")},
		"metadata.test": {netip.MustParseAddr("169.254.169.254")},
	})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCandidatesRoundRobinAndFailoverOrder(t *testing.T) {
	p := mustPool(t, Config{Addresses: []string{"127.0.0.1:1", "127.0.0.2:2", "127.0.0.3:3"}}, nil)
	var firsts []string
	for range 3 {
		ts, f := p.Candidates(context.Background(), netip.Addr{}, 0)
		if f != nil || len(ts) != 3 {
			t.Fatalf("got %v %v", ts, f)
		}
		firsts = append(firsts, ts[0].String())
		// The rest follow in configured order after the pick.
		if ts[1].String() == ts[0].String() {
			t.Fatal("duplicate candidate")
		}
	}
	want := []string{"127.0.0.1:1", "127.0.0.2:2", "127.0.0.3:3"}
	for i := range want {
		if firsts[i] != want[i] {
			t.Fatalf("round robin picks %v, want %v", firsts, want)
		}
	}
}

func TestPortRangeOffset(t *testing.T) {
	p := mustPool(t, Config{Addresses: []string{"127.0.0.1:3000-3100", "127.0.0.2:22"}}, nil)
	ts, _ := p.Candidates(context.Background(), netip.Addr{}, 5)
	got := map[string]bool{}
	for _, t := range ts {
		got[t.String()] = true
	}
	if !got["127.0.0.1:3005"] || !got["127.0.0.2:22"] {
		t.Fatalf("offset mapping: %v", ts)
	}
}

func TestIPHashSticky(t *testing.T) {
	p := mustPool(t, Config{Addresses: []string{"127.0.0.1:1", "127.0.0.2:1", "127.0.0.3:1"}, Balance: IPHash}, nil)
	c := netip.MustParseAddr("203.0.113.9")
	first, _ := p.Candidates(context.Background(), c, 0)
	for range 10 {
		ts, _ := p.Candidates(context.Background(), c, 0)
		if ts[0] != first[0] {
			t.Fatalf("ip_hash moved: %v then %v", first[0], ts[0])
		}
	}
	// The v4-mapped form of the same client hashes the same.
	ts, _ := p.Candidates(context.Background(), netip.AddrFrom16(c.As16()), 0)
	if ts[0] != first[0] {
		t.Fatal("v4-mapped client hashed differently")
	}
}

func TestLeastConn(t *testing.T) {
	p := mustPool(t, Config{Addresses: []string{"127.0.0.1:1", "127.0.0.2:1"}, Balance: LeastConn}, nil)
	ts, _ := p.Candidates(context.Background(), netip.Addr{}, 0)
	rel := p.Acquire(ts[0])
	for range 5 {
		next, _ := p.Candidates(context.Background(), netip.Addr{}, 0)
		if next[0] == ts[0] {
			t.Fatalf("least_conn picked the busy origin %v", ts[0])
		}
	}
	rel()
}

func TestResolveFailures(t *testing.T) {
	for _, tc := range []struct {
		name   string
		cfg    Config
		block  []string
		status int
	}{
		{"nxdomain", Config{DNS: &DNSConfig{Name: "missing.test", Port: "80"}}, nil, event.StatusResolveFailed},
		{"metadata blocked by default", Config{DNS: &DNSConfig{Name: "metadata.test", Port: "80"}}, nil, event.StatusResolveBlocked},
		{"custom block", Config{DNS: &DNSConfig{Name: "two.test", Port: "80"}}, []string{"127.0.0.0/8"}, event.StatusResolveBlocked},
		{"literal blocked", Config{Addresses: []string{"169.254.169.254:80"}}, nil, event.StatusResolveBlocked},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := mustPool(t, tc.cfg, tc.block)
			_, f := p.Candidates(context.Background(), netip.Addr{}, 0)
			if f == nil || f.Status != tc.status {
				t.Fatalf("failure %+v, want status %d", f, tc.status)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		cfg Config
		key string
	}{
		{Config{}, ""},
		{Config{Addresses: []string{"nohost"}}, "addresses[0]"},
		{Config{Addresses: []string{"example.com:80"}}, "addresses[0]"},
		{Config{Addresses: []string{"127.0.0.1:9-3"}}, "addresses[0]"},
		{Config{Addresses: []string{"127.0.0.1:80"}, Balance: "random"}, "balance"},
		{Config{DNS: &DNSConfig{Name: "a.test", Port: "x"}}, "dns.port"},
	} {
		errs := tc.cfg.Validate()
		if len(errs) == 0 || errs[0].Key != tc.key {
			t.Errorf("%+v: errors %v, want one for key %q", tc.cfg, errs, tc.key)
		}
	}
}
