package origin

import (
	"context"
	"net/netip"
	"testing"

	"github.com/prismproxy/prism/internal/event"
)

// TestBlockListNormalises: IPv4 addresses written in other IPv6 forms are
// checked as the IPv4 address they carry.
func TestBlockListNormalises(t *testing.T) {
	block, _ := ParseBlock(nil)
	for _, tc := range []struct {
		addr    string
		blocked bool
	}{
		{"169.254.169.254", true},
		{"::ffff:169.254.169.254", true},
		{"::169.254.169.254", true},
		{"64:ff9b::169.254.169.254", true},
		{"64:ff9b:1::a9fe:a9fe", true},
		{"2002:a9fe:a9fe::1", true},
		{"::ffff:100.100.100.200", true},
		{"64:ff9b::808:808", false}, // 8.8.8.8 via NAT64
		{"::1", false},              // IPv6 loopback, not 0.0.0.1
		{"2001:db8::1", false},
		{"127.0.0.1", false},
	} {
		if got := inPrefixes(block, netip.MustParseAddr(tc.addr)); got != tc.blocked {
			t.Errorf("%s: blocked %v, want %v", tc.addr, got, tc.blocked)
		}
	}
	for _, a := range []string{"127.0.0.1", "127.9.9.9", "::1", "::ffff:127.0.0.1", "64:ff9b::7f00:1", "0.0.0.0", "::"} {
		if !isLocal(netip.MustParseAddr(a)) {
			t.Errorf("%s is not taken as local", a)
		}
	}
}

// TestDNSLoopbackRefused: a DNS origin that resolves to loopback is not
// dialed unless allow_loopback is set, even with an empty block list.
func TestDNSLoopbackRefused(t *testing.T) {
	p := mustPool(t, Config{DNS: &DNSConfig{Name: "two.test", Port: "80"}}, []string{})
	if _, f := p.Candidates(context.Background(), netip.Addr{}, 0); f == nil || f.Status != event.StatusResolveBlocked {
		t.Fatalf("loopback DNS origin: %+v, want 532", f)
	}
	p = mustPool(t, Config{DNS: &DNSConfig{Name: "two.test", Port: "80", AllowLoopback: true}}, []string{})
	if ts, f := p.Candidates(context.Background(), netip.Addr{}, 0); f != nil || len(ts) != 2 {
		t.Fatalf("with allow_loopback: %v %+v", ts, f)
	}
}
