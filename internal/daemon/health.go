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
		if p.udp != nil {
			if h := p.pool.Health(); h != nil {
				out[id] = h
			}
			continue
		}
		for k, v := range p.tcp.OriginHealth() {
			out[k] = v
		}
	}
	return out
}
