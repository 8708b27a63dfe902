package proxy

import "log/slog"

// logTotals is the TCP side's line in the shutdown totals (next to each UDP
// app's and each log job's): health checks, accept failures and, per app
// with limits, the connections each limit refused.
func (s *Server) logTotals() {
	if !s.serving.Load() {
		return // never started: nothing to total
	}
	attrs := []any{"health_checks", s.healthChecks.Load(), "accept_errors", s.acceptErrs.Load()}
	for id, m := range s.LimitRefusals() {
		var g []any
		for k, n := range m {
			if n > 0 {
				g = append(g, slog.Uint64(k, n))
			}
		}
		if len(g) > 0 {
			attrs = append(attrs, slog.Group("refused_"+id, g...))
		}
	}
	s.log.Info("tcp totals", attrs...)
}
