package origin

import "net/netip"

// IPv6 prefixes that carry an IPv4 address, and where: a block list entry
// for 169.254.0.0/16 must also stop ::169.254.169.254, ::ffff:169.254.169.254,
// 64:ff9b::a9fe:a9fe (NAT64) and 2002:a9fe:a9fe:: (6to4), each of which
// reaches, or is read by some stack as, the IPv4 address.
var (
	nat64WKP      = netip.MustParsePrefix("64:ff9b::/96")   // RFC 6052 well-known prefix
	nat64Local    = netip.MustParsePrefix("64:ff9b:1::/96") // RFC 8215 local-use, as /96
	v4Compatible  = netip.MustParsePrefix("::/96")          // deprecated IPv4-compatible
	sixToFour     = netip.MustParsePrefix("2002::/16")      // RFC 3056, the IPv4 in bytes 2-5
	thisNetworkV4 = netip.MustParsePrefix("0.0.0.0/8")
)

// embeddedV4 returns the IPv4 address an IPv6 address carries, if it is of
// one of the forms above (IPv4-mapped included).
func embeddedV4(a netip.Addr) (netip.Addr, bool) {
	if a.Is4() || !a.IsValid() {
		return netip.Addr{}, false
	}
	if a.Is4In6() {
		return a.Unmap(), true
	}
	b := a.As16()
	switch {
	case nat64WKP.Contains(a), nat64Local.Contains(a):
		return netip.AddrFrom4([4]byte(b[12:16])), true
	case v4Compatible.Contains(a):
		v4 := netip.AddrFrom4([4]byte(b[12:16]))
		if thisNetworkV4.Contains(v4) {
			return netip.Addr{}, false // :: and ::1 are IPv6's own unspecified and loopback
		}
		return v4, true
	case sixToFour.Contains(a):
		return netip.AddrFrom4([4]byte(b[2:6])), true
	}
	return netip.Addr{}, false
}

// inPrefixes reports whether a, or the IPv4 address it carries, is in one
// of ps.
func inPrefixes(ps []netip.Prefix, a netip.Addr) bool {
	v4, ok := embeddedV4(a)
	for _, p := range ps {
		if p.Contains(a) || ok && p.Contains(v4) {
			return true
		}
	}
	return false
}

// isLocal reports whether a, or the IPv4 address it carries, is a loopback
// or unspecified address: what a DNS-resolved origin may not be unless
// origins.dns.allow_loopback is set, because a name an attacker can point
// at 127.0.0.1 would reach the edge host's own services.
func isLocal(a netip.Addr) bool {
	if v4, ok := embeddedV4(a); ok {
		a = v4
	}
	return a.IsLoopback() || a.IsUnspecified()
}
