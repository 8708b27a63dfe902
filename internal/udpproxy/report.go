package udpproxy

import (
	"log/slog"
	"time"
)

// dropReportEvery is how often a UDP app reports the datagrams it dropped
// since its last report, by cause (as log jobs report theirs).
const dropReportEvery = 10 * time.Second

// dropCauses name the drop counters of Stats in log lines.
var dropCauses = [...]string{
	"max_sessions", "max_sessions_per_client", "firewall", "pending_queue_full",
	"too_large", "bad_inbound_proxy_header", "bad_spp_reply", "send_to_origin", "send_to_client", "session_ending",
	"limit_per_client", "limit_per_prefix", "limit_rate",
}

// drops returns the drop counters in dropCauses order.
func (st Stats) drops() [len(dropCauses)]int64 {
	return [...]int64{st.DropCapApp, st.DropCapClient, st.DropFiltered, st.DropPending,
		st.DropTruncated, st.DropBadInbound, st.DropBadSPP, st.DropSendOrigin, st.DropSendClient, st.DropNoSession,
		st.DropLimitClient, st.DropLimitPrefix, st.DropLimitRate}
}

// dropReporter remembers the counts already reported.
type dropReporter struct {
	next time.Time
	last [len(dropCauses)]int64
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
			attrs = append(attrs, slog.Int64(dropCauses[i], d))
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
	attrs := []any{"client_datagrams", st.ClientDatagrams, "origin_datagrams", st.OriginDatagrams}
	var total int64
	for i, v := range st.drops() {
		total += v
		if v > 0 {
			attrs = append(attrs, slog.Int64("dropped_"+dropCauses[i], v))
		}
	}
	s.log.Info("udp app totals", append(attrs, "dropped", total)...)
}
