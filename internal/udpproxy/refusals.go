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

// RateBucketsEvicted returns how many rate buckets of the app's limiter
// were evicted, still refilling, because its table was full (see
// limit.MaxRateBuckets): each gave a returning prefix a full burst again.
func (s *Server) RateBucketsEvicted() uint64 { return s.lim.Evicted() }
