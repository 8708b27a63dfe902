package pphdr

import (
	"net/netip"
	"testing"
)

func TestTrusted(t *testing.T) {
	fronts := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("2001:db8::1/128")}
	for _, tc := range []struct {
		peer string
		want bool
	}{
		{"10.1.2.3", true},
		{"11.0.0.1", false},
		{"2001:db8::1", true},
		{"2001:db8::2", false},
	} {
		if got := Trusted(fronts, netip.MustParseAddr(tc.peer)); got != tc.want {
			t.Errorf("Trusted(%s) = %v", tc.peer, got)
		}
	}
	if Trusted(nil, netip.MustParseAddr("10.1.2.3")) {
		t.Error("trusted with no fronts")
	}
}
