package origin

// Proto is the transport an origin leg of this pool would use for an app
// whose transport is transport ("tcp" or "udp"): "unix" when every origin
// of the pool is a unix socket, transport otherwise. Records that end
// before an origin was chosen (clientFiltered, tlsError, resolveOrigin)
// carry it as their OriginProto (spec §7.3), so the field is never empty.
func (p *Pool) Proto(transport string) string {
	if p.cfg.DNS == nil && len(p.static) > 0 {
		unix := true
		for _, t := range p.static {
			if t.path == "" {
				unix = false
				break
			}
		}
		if unix {
			return "unix"
		}
	}
	return transport
}

// Resolves reports whether Candidates may wait for a DNS lookup.
func (p *Pool) Resolves() bool { return p.cfg.DNS != nil }
