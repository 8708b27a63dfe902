package proxy

import (
	"fmt"
	"time"

	"github.com/prismproxy/prism/internal/event"
	"github.com/prismproxy/prism/internal/limit"
)

// admitClient applies the app's per-client limits to a connection that
// passed the firewall. On refusal it writes the terminal record
// (clientFiltered 403) and returns ok false; otherwise done is wrapped to
// give the slot back when the connection ends. The record keeps the
// firewall's ClientMatchedIpFirewall (an allow rule's WHITELIST_*, else
// UNKNOWN): the field says which rule the client matched (spec §3), and
// the detail names the limit that refused it.
func (a *tcpApp) admitClient(c leg, ev *event.Event, now time.Time, done *func()) bool {
	if a.lim == nil || ev.ClientProto != event.ProtoTCP {
		return true
	}
	release, which := a.lim.Admit(ev.ClientAddr.Addr(), now)
	if which != limit.None {
		// Refused by prism, like a firewall block (spec §7.5).
		a.end(c, ev, event.ClientFiltered, event.StatusFiltered, event.SideProxy, event.ReasonClosed,
			fmt.Sprintf("client over limits.%s", which.Key()))
		return false
	}
	prev := *done
	*done = func() { release(); prev() }
	return true
}

// LimitRefusals returns how many connections each per-client limit and
// the TLS handshake limit refused, by limit key.
func (s *Server) LimitRefusals() map[string]uint64 {
	a := s.app
	m := map[string]uint64{}
	for w, n := range a.lim.Refused() {
		m[w.Key()] = n
	}
	if a.edge != nil && a.cfg.MaxTLSHandshakes > 0 {
		m["max_tls_handshakes"] = a.edge.HandshakesRefused()
	}
	return m
}

// RateBucketsEvicted returns how many rate buckets of the app's limiter
// were evicted, still refilling, because its table was full (see
// limit.MaxRateBuckets): each gave a returning prefix a full burst again.
func (s *Server) RateBucketsEvicted() uint64 { return s.app.lim.Evicted() }
