package proxy

// Stats are the TCP server's counters since New.
type Stats struct {
	// HealthChecks counts connections from a trusted front (inbound PROXY
	// protocol) that were health checks, not clients: closed before sending
	// a byte, or a PROXY v2 LOCAL header. They write no record (spec §7.1).
	HealthChecks int64
}

// Stats returns the counters.
func (s *Server) Stats() Stats {
	return Stats{HealthChecks: s.healthChecks.Load()}
}
