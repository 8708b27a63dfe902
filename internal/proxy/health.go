package proxy

import "github.com/prismproxy/prism/internal/origin"

// pools are the app's origin pools: its own, then one per passthrough SNI
// route.
func (a *tcpApp) pools() []*origin.Pool {
	return append([]*origin.Pool{a.pool}, a.routes...)
}

// OriginHealth is the health of every checked origin of the app (its
// pool, then its passthrough routes'), nil if none has health checks or
// passive ejection (for logs and metrics).
func (s *Server) OriginHealth() []origin.OriginHealth {
	var out []origin.OriginHealth
	for _, p := range s.app.pools() {
		out = append(out, p.Health()...)
	}
	return out
}
