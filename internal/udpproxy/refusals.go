package udpproxy

// LimitRefusals returns how many sessions each per-client limit of the
// app's `limits:` section refused, by config key (empty when none is set).
// The datagrams those sessions sent are counted apart, as DropLimit*.
func (s *Server) LimitRefusals() map[string]uint64 {
	out := map[string]uint64{}
	for w, n := range s.lim.Refused() {
		out[w.Key()] = n
	}
	return out
}
