package proxy

import "log/slog"

// logTotals is the TCP side's line in the shutdown totals (next to each UDP
// app's and each log job's): health checks, accept failures and, if the
// app has limits, the connections each limit refused.
func (s *Server) logTotals() {
	if !s.serving.Load() {
		return // never started: nothing to total
	}
	attrs := []any{"health_checks", s.healthChecks.Load(), "accept_errors", s.acceptErrs.Load()}
	var g []any
	for k, n := range s.LimitRefusals() {
		if n > 0 {
			g = append(g, slog.Uint64(k, n))
		}
	}
	if len(g) > 0 {
		attrs = append(attrs, slog.Group("refused_"+s.app.cfg.ID, g...))
	}
	s.log.Info("tcp totals", attrs...)
}
