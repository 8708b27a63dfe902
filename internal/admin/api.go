package admin

import (
	"bytes"
	"container/heap"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/prismproxy/prism/internal/event"
	"github.com/prismproxy/prism/internal/logjob"
	"github.com/prismproxy/prism/internal/netspec"
	"github.com/prismproxy/prism/internal/udpproxy"
)

// Limits of GET /api/v1/sessions.
const (
	DefaultSessionLimit = 100
	MaxSessionLimit     = 1000
)

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", " ")
	_ = enc.Encode(v)
}

func badRequest(w http.ResponseWriter, format string, args ...any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusBadRequest)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": strings.TrimSpace(fmt.Sprintf(format, args...))})
}

// AppJSON is one app in GET /api/v1/apps.
type AppJSON struct {
	ID            string   `json:"id"`
	Protocol      string   `json:"protocol"`
	Listen        []string `json:"listen"`
	Bound         []string `json:"bound"`
	Origins       []string `json:"origins"`
	Balance       string   `json:"balance,omitempty"`
	ProxyProtocol string   `json:"proxy_protocol"`
	TLSMode       string   `json:"tls_mode"`
}

func (s *Server) appList() []AppJSON { return appJSONs(s.p.apps()) }

func appJSONs(apps []App) []AppJSON {
	out := make([]AppJSON, 0, len(apps))
	for _, a := range apps {
		j := AppJSON{ID: a.ID, Protocol: a.Protocol, Listen: a.Listen, Origins: a.Origins, Balance: a.Balance,
			ProxyProtocol: a.ProxyProtocol, TLSMode: a.TLSMode}
		if a.Addrs != nil {
			j.Bound = a.Addrs()
		}
		out = append(out, j)
	}
	return out
}

func (s *Server) apps(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, map[string]any{"apps": s.appList()})
}

// SessionJSON is one live session in GET /api/v1/sessions. Every field is
// one the session's records carry.
type SessionJSON struct {
	ID              string    `json:"id"`
	App             string    `json:"app"`
	Protocol        string    `json:"protocol"`
	Client          string    `json:"client"`
	Origin          string    `json:"origin"`
	Country         string    `json:"country,omitempty"`
	ASN             uint32    `json:"asn,omitempty"`
	SNI             string    `json:"sni,omitempty"`
	Start           time.Time `json:"start"`
	AgeSeconds      float64   `json:"age_seconds"`
	BytesFromClient int64     `json:"bytes_from_client"`
	BytesFromOrigin int64     `json:"bytes_from_origin"`
}

// SessionsJSON is the answer of GET /api/v1/sessions.
type SessionsJSON struct {
	// Matched is how many open sessions match the filters (on every
	// page); Sessions is one page of them, oldest first (by session id).
	Matched  int           `json:"matched"`
	Sessions []SessionJSON `json:"sessions"`
	// Next is the cursor of the next page (pass it as after=), "" at the end.
	Next string `json:"next,omitempty"`
}

func sessionJSON(l *event.Live, now time.Time) SessionJSON {
	b := l.Base()
	j := SessionJSON{
		ID: b.SessionID.String(), App: b.App, Protocol: b.ClientProto, Origin: originString(b),
		Country: b.Country, ASN: b.ASN, SNI: b.ClientTLS.ServerName, Start: b.StartTime,
		AgeSeconds:      now.Sub(b.StartTime).Seconds(),
		BytesFromClient: l.ClientBytes.Load(), BytesFromOrigin: l.OriginBytes.Load(),
	}
	if b.ClientPath != "" {
		j.Client = "unix:" + b.ClientPath
	} else {
		j.Client = b.ClientAddr.String()
	}
	return j
}

// sessionFilter is the query of GET /api/v1/sessions.
type sessionFilter struct {
	app    string
	client netip.Prefix // zero: any
	minAge time.Duration
	after  event.ID
	limit  int
}

func parseSessionFilter(r *http.Request) (sessionFilter, error) {
	q := r.URL.Query()
	f := sessionFilter{app: q.Get("app"), limit: DefaultSessionLimit}
	if c := q.Get("client"); c != "" {
		p, err := netspec.ParsePrefix(c)
		if err != nil {
			return f, fmt.Errorf("client: %q is neither an IP address nor a CIDR prefix", c)
		}
		f.client = p
	}
	if v := q.Get("min_age"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			secs, err2 := strconv.ParseFloat(v, 64)
			if err2 != nil {
				return f, fmt.Errorf("min_age: %q is not a duration (30s, 5m) or a number of seconds", v)
			}
			d = time.Duration(secs * float64(time.Second))
		}
		f.minAge = d
	}
	if v := q.Get("after"); v != "" {
		b, err := hex.DecodeString(v)
		if err != nil || len(b) != len(f.after) {
			return f, fmt.Errorf("after: %q is not a session id (24 hex digits)", v)
		}
		copy(f.after[:], b)
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxSessionLimit {
			return f, fmt.Errorf("limit: want 1 to %d", MaxSessionLimit)
		}
		f.limit = n
	}
	return f, nil
}

func (f *sessionFilter) match(b *event.Event, now time.Time) bool {
	if f.app != "" && b.App != f.app {
		return false
	}
	if f.client.IsValid() && !f.client.Contains(b.ClientAddr.Addr()) {
		return false
	}
	return f.minAge <= 0 || now.Sub(b.StartTime) >= f.minAge
}

// idHeap is a max-heap of sessions by id: it keeps the limit smallest ids
// seen, so a page costs one walk and O(limit) memory however many sessions
// are open.
type idHeap []*event.Live

func (h idHeap) Len() int { return len(h) }
func (h idHeap) Less(i, j int) bool {
	return bytes.Compare(h[i].Base().SessionID[:], h[j].Base().SessionID[:]) > 0
}
func (h idHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *idHeap) Push(x any)   { *h = append(*h, x.(*event.Live)) }
func (h *idHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// listSessions returns one page of the open sessions that match f.
func listSessions(reg *event.Registry, f sessionFilter, now time.Time) SessionsJSON {
	h := make(idHeap, 0, f.limit+1)
	matched, remaining := 0, 0
	if reg != nil {
		reg.Range(func(l *event.Live) bool {
			b := l.Base()
			if !f.match(b, now) {
				return true
			}
			matched++
			if bytes.Compare(b.SessionID[:], f.after[:]) <= 0 {
				return true // on an earlier page
			}
			remaining++
			if len(h) < f.limit {
				heap.Push(&h, l)
			} else if bytes.Compare(b.SessionID[:], h[0].Base().SessionID[:]) < 0 {
				h[0] = l
				heap.Fix(&h, 0)
			}
			return true
		})
	}
	sort.Slice(h, func(i, j int) bool { return bytes.Compare(h[i].Base().SessionID[:], h[j].Base().SessionID[:]) < 0 })
	out := SessionsJSON{Matched: matched, Sessions: make([]SessionJSON, len(h))}
	for i, l := range h {
		out.Sessions[i] = sessionJSON(l, now)
	}
	if remaining > len(h) && len(h) > 0 {
		out.Next = out.Sessions[len(h)-1].ID
	}
	return out
}

func (s *Server) sessions(w http.ResponseWriter, r *http.Request) {
	f, err := parseSessionFilter(r)
	if err != nil {
		badRequest(w, "%v", err)
		return
	}
	select {
	case s.sessionSlots <- struct{}{}:
		defer func() { <-s.sessionSlots }()
	case <-r.Context().Done():
		return
	}
	writeJSON(w, listSessions(s.p.Registry, f, time.Now()))
}

// CloseDetail is the terminal record's Detail of a session closed through
// the API.
const CloseDetail = "closed by an operator through the admin API"

func (s *Server) closeSession(w http.ResponseWriter, r *http.Request) {
	raw := r.PathValue("id")
	var id event.ID
	b, err := hex.DecodeString(raw)
	if err != nil || len(b) != len(id) {
		badRequest(w, "%q is not a session id (24 hex digits)", raw)
		return
	}
	copy(id[:], b)
	app := ""
	s.p.Registry.Range(func(l *event.Live) bool {
		if l.Base().SessionID == id {
			app = l.Base().App
			return false
		}
		return true
	})
	if app == "" || s.p.Close == nil || !s.p.Close(app, id, CloseDetail) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": "no open session " + raw})
		return
	}
	s.log.Info("session closed through the admin API", "app", app, "session", raw, "from", r.RemoteAddr)
	writeJSON(w, map[string]string{"closed": raw, "app": app})
}

func (s *Server) jobList() []logjob.Stats {
	if s.p.Jobs == nil {
		return []logjob.Stats{}
	}
	return s.p.Jobs()
}

func (s *Server) jobs(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, map[string]any{"jobs": s.jobList()})
}

// SummaryJSON is GET /api/v1/summary: everything the dashboard and
// `prism status` show, in one answer. Counters are totals since start; a
// client gets rates from two answers.
type SummaryJSON struct {
	Version       string            `json:"version"`
	Time          time.Time         `json:"time"`
	UptimeSeconds float64           `json:"uptime_seconds"`
	Ready         bool              `json:"ready"`
	NotReady      string            `json:"not_ready,omitempty"`
	Apps          []AppSummary      `json:"apps"`
	Records       []RecordCount     `json:"records"`
	TopClients    []KeyCount        `json:"top_clients"`
	TopCountries  []KeyCount        `json:"top_countries"`
	TopASNs       []KeyCount        `json:"top_asns"`
	Jobs          []logjob.Stats    `json:"jobs"`
	Reloads       map[string]uint64 `json:"reloads"`
}

// AppSummary is one app's line of the summary.
type AppSummary struct {
	AppJSON
	Started         uint64        `json:"started"`
	Opened          uint64        `json:"opened"`
	Ended           uint64        `json:"ended"`
	Active          int           `json:"active"`
	BytesFromClient uint64        `json:"bytes_from_client"`
	BytesFromOrigin uint64        `json:"bytes_from_origin"`
	OriginErrors    uint64        `json:"origin_errors"`
	UDPDrops        int64         `json:"udp_drops"`
	OriginState     []OriginState `json:"origin_state"`
}

// OriginState is one origin of an app: configured, and how many sessions
// are open to it.
type OriginState struct {
	Origin string `json:"origin"`
	Active int    `json:"active"`
}

// RecordCount is the number of terminal records of one Event and Status.
type RecordCount struct {
	Event  string `json:"event"`
	Status int    `json:"status"`
	Count  uint64 `json:"count"`
}

const topLen = 10

func (s *Server) buildSummary(now time.Time) SummaryJSON {
	// Active, bytes and ended counts come from one view: the walk over the
	// open sessions and the tally taken with it, cached together.
	lv := s.live.get(s.p.Registry, s.p.Tally, now, liveTTL, true)
	out := SummaryJSON{Version: s.p.Version, Time: now, UptimeSeconds: now.Sub(s.start).Seconds(), Ready: true,
		Reloads: map[string]uint64{}, Jobs: s.jobList(), Apps: []AppSummary{}, Records: []RecordCount{}}
	if s.p.Ready != nil {
		if err := s.p.Ready(); err != nil {
			out.Ready, out.NotReady = false, err.Error()
		}
	}
	byRecord := map[[2]any]uint64{}
	apps := s.p.apps()
	for i, a := range appJSONs(apps) {
		pa := apps[i]
		as := AppSummary{AppJSON: a, OriginState: []OriginState{}}
		la := lv.apps[a.ID]
		if la == nil {
			la = &liveApp{}
		}
		as.Active = la.Active
		if ac, ok := lv.tally[a.ID]; ok {
			as.Started, as.Opened, as.Ended = ac.Started(), ac.Opened, ac.Terminal()
			as.BytesFromClient = ac.ClientBytes + uint64(max(la.ClientBytes, 0))
			as.BytesFromOrigin = ac.OriginBytes + uint64(max(la.OriginBytes, 0))
			for _, r := range ac.Records {
				byRecord[[2]any{r.Label, r.Code}] += r.N
				if r.Label == "resolveOrigin" || r.Label == "originError" {
					as.OriginErrors += r.N
				}
			}
		}
		if pa.UDP != nil {
			st := pa.UDP()
			for _, d := range udpproxy.DropCauses {
				as.UDPDrops += d.Count(st)
			}
		}
		seen := map[string]bool{}
		open := la.originStrings()
		for _, o := range a.Origins {
			seen[o] = true
			as.OriginState = append(as.OriginState, OriginState{Origin: o, Active: open[o]})
		}
		for o, n := range open {
			if !seen[o] { // resolved from a DNS name, or a port-range origin
				as.OriginState = append(as.OriginState, OriginState{Origin: o, Active: n})
			}
		}
		out.Apps = append(out.Apps, as)
	}
	for k, n := range byRecord {
		out.Records = append(out.Records, RecordCount{Event: k[0].(string), Status: k[1].(int), Count: n})
	}
	sort.Slice(out.Records, func(i, j int) bool { return out.Records[i].Count > out.Records[j].Count })
	out.TopClients = topN(lv.top.clients, topLen, clientKey.String)
	out.TopCountries = topN(lv.top.countries, topLen, func(s string) string { return s })
	out.TopASNs = topN(lv.top.asns, topLen, func(a uint32) string { return "AS" + strconv.FormatUint(uint64(a), 10) })
	if r := s.p.Reloads; r != nil {
		out.Reloads["success"], out.Reloads["failure"] = r.ok.Load(), r.failed.Load()
	}
	return out
}

func (s *Server) summary(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, s.buildSummary(time.Now()))
}
