package pphdr

import "net/netip"

// Trusted reports whether peer is one of the front proxies in fronts, the
// only peers whose PROXY headers are read. With no fronts, no peer is.
func Trusted(fronts []netip.Prefix, peer netip.Addr) bool {
	for _, p := range fronts {
		if p.Contains(peer) {
			return true
		}
	}
	return false
}
