package daemon

import "github.com/prismproxy/prism/internal/origin"

// OriginHealth is the health of every checked origin of each app with
// health checks or passive ejection, by app id: what logs and metrics
// show of it.
func (d *Daemon) OriginHealth() map[string][]origin.OriginHealth {
	out := d.tcp.OriginHealth()
	for id, p := range d.udpPools {
		if h := p.Health(); h != nil {
			out[id] = h
		}
	}
	return out
}
