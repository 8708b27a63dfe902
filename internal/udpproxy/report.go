package udpproxy

import (
	"log/slog"
	"time"
)

// dropReportEvery is how often a UDP app reports the datagrams it dropped
// since its last report, by cause (as log jobs report theirs).
const dropReportEvery = 10 * time.Second

// DropCauses name the drop counters of Stats, in one order, the same in
// prism's log lines (the periodic drop report, the shutdown totals) and in
// the admin listener's prism_udp_dropped_datagrams_total{cause}. The
// limit causes are named as the limits are (see package limit).
var DropCauses = [...]struct {
	Name  string
	Count func(Stats) int64
}{
	{"max_sessions", func(s Stats) int64 { return s.DropCapApp }},
	{"max_sessions_per_client", func(s Stats) int64 { return s.DropCapClient }},
	{"filtered", func(s Stats) int64 { return s.DropFiltered }},
	{"pending_queue_full", func(s Stats) int64 { return s.DropPending }},
	{"truncated", func(s Stats) int64 { return s.DropTruncated }},
	{"bad_inbound_header", func(s Stats) int64 { return s.DropBadInbound }},
	{"bad_spp_header", func(s Stats) int64 { return s.DropBadSPP }},
	{"send_origin", func(s Stats) int64 { return s.DropSendOrigin }},
	{"send_client", func(s Stats) int64 { return s.DropSendClient }},
	{"no_session", func(s Stats) int64 { return s.DropNoSession }},
	{"max_connections_per_client", func(s Stats) int64 { return s.DropLimitClient }},
	{"max_connections_per_prefix", func(s Stats) int64 { return s.DropLimitPrefix }},
	{"new_connections_per_second", func(s Stats) int64 { return s.DropLimitRate }},
	{"draining", func(s Stats) int64 { return s.DropDraining }},
	{"setup_failed", func(s Stats) int64 { return s.DropSetup }},
}

// drops returns the drop counters in DropCauses order.
func (st Stats) drops() (out [len(DropCauses)]int64) {
	for i, c := range DropCauses {
		out[i] = c.Count(st)
	}
	return out
}

// dropReporter remembers the counts already reported.
type dropReporter struct {
	next time.Time
	last [len(DropCauses)]int64
}

// due reports drops since the last report when the period has passed.
func (r *dropReporter) due(s *Server, now time.Time) {
	if r.next.IsZero() {
		r.next = now.Add(s.reportEvery)
		return
	}
	if now.Before(r.next) {
		return
	}
	r.next = now.Add(s.reportEvery)
	r.report(s)
}

// report logs one line naming each cause with drops since the last line,
// and the totals; nothing when there were none.
func (r *dropReporter) report(s *Server) {
	cur := s.Stats().drops()
	var attrs []any
	var n, total int64
	for i, v := range cur {
		total += v
		if d := v - r.last[i]; d > 0 {
			n += d
			attrs = append(attrs, slog.Int64(DropCauses[i].Name, d))
		}
	}
	r.last = cur
	if n == 0 {
		return
	}
	s.log.Warn("udp datagrams dropped", append([]any{"dropped", n, "dropped_total", total}, attrs...)...)
}

// logTotals is the app's line in the shutdown totals.
func (s *Server) logTotals() {
	st := s.Stats()
	attrs := []any{"client_datagrams", st.ClientDatagrams, "origin_datagrams", st.OriginDatagrams, "health_checks", st.HealthChecks}
	var total int64
	for i, v := range st.drops() {
		total += v
		if v > 0 {
			attrs = append(attrs, slog.Int64("dropped_"+DropCauses[i].Name, v))
		}
	}
	s.log.Info("udp app totals", append(attrs, "dropped", total)...)
}
