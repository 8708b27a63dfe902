package proxy

import "github.com/prismproxy/prism/internal/origin"

// pools are the app's origin pools: its own, then one per passthrough SNI
// route.
func (a *tcpApp) pools() []*origin.Pool {
	return append([]*origin.Pool{a.pool}, a.routes...)
}

// OriginHealth is the health of every checked origin of each TCP app that
// has health checks or passive ejection, by app id (for logs and metrics).
func (s *Server) OriginHealth() map[string][]origin.OriginHealth {
	out := map[string][]origin.OriginHealth{}
	for _, a := range s.apps {
		for _, p := range a.pools() {
			if h := p.Health(); h != nil {
				out[a.cfg.ID] = append(out[a.cfg.ID], h...)
			}
		}
	}
	return out
}
