package daemon

import "github.com/prismproxy/prism/internal/origin"

// OriginHealth is the health of every checked origin of each app with
// health checks or passive ejection, by app id: what logs and metrics
// show of it.
func (d *Daemon) OriginHealth() map[string][]origin.OriginHealth {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := map[string][]origin.OriginHealth{}
	for id, p := range d.apps {
		var h []origin.OriginHealth
		if p.udp != nil {
			h = p.parts.Pool.Health()
		} else {
			h = p.tcp.OriginHealth()
		}
		if h != nil {
			out[id] = h
		}
	}
	return out
}
