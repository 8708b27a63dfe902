package admin

import (
	"net/netip"
	"sort"
	"sync"
	"time"

	"github.com/prismproxy/prism/internal/event"
)

// liveView is one walk over the open sessions, aggregated per app. The
// dashboard's view is cached for liveTTL so that any number of open
// dashboards cost at most one walk per period, whatever the session count;
// a scrape walks afresh (walks are serialised, so concurrent scrapes queue).
type liveView struct {
	at      time.Time
	withTop bool
	apps    map[string]*liveApp
	top     tops
	// tally is the ended sessions' counts, by app, read just before the
	// walk (the dashboard's view): a cached walk shown with a fresh tally
	// counted a session that ended since the walk twice, open and ended.
	tally map[string]AppCounts
}

type liveApp struct {
	Active      int
	ClientBytes int64
	OriginBytes int64
	Origins     map[originKey]int // origin → open sessions
}

// clientKey is a top-clients entry: the client's address, or for a
// client of a unix-socket listener without one the socket's path, named
// unix:PATH as the session list names it (an invalid address showed as
// "invalid IP").
type clientKey struct {
	addr netip.Addr
	path string
}

func (k clientKey) String() string {
	if k.path != "" {
		return "unix:" + k.path
	}
	return k.addr.String()
}

// originKey is an origin without formatting it (no allocation per session).
type originKey struct {
	addr netip.AddrPort
	path string
}

func (k originKey) String() string {
	if k.path != "" {
		return "unix:" + k.path
	}
	return k.addr.String()
}

// originStrings returns the open sessions per origin, by address text.
func (a *liveApp) originStrings() map[string]int {
	m := make(map[string]int, len(a.Origins))
	for k, n := range a.Origins {
		m[k.String()] += n
	}
	return m
}

type tops struct {
	clients   map[clientKey]int
	countries map[string]int
	asns      map[uint32]int
}

// maxTopKeys bounds the top-N maps: past it, new keys are not counted (the
// top entries of a heavy-tailed distribution are seen early).
const maxTopKeys = 10000

const liveTTL = 500 * time.Millisecond

type liveCache struct {
	mu   sync.Mutex
	view *liveView
}

// get returns a view no older than maxAge (0: walk now); withTop also
// counts the top clients, countries and ASNs and snapshots tl (the
// dashboard's view, not the metrics').
func (c *liveCache) get(reg *event.Registry, tl *Tally, now time.Time, maxAge time.Duration, withTop bool) *liveView {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.view != nil && now.Sub(c.view.at) < maxAge && (c.view.withTop || !withTop) {
		return c.view
	}
	v := &liveView{at: now, withTop: withTop, apps: map[string]*liveApp{}, top: tops{
		clients: map[clientKey]int{}, countries: map[string]int{}, asns: map[uint32]int{},
	}}
	if withTop && tl != nil {
		// Before the walk: a session ending in between is in neither
		// (shown once the next view is taken), never in both.
		v.tally = tl.Snapshot()
	}
	if reg != nil {
		var a *liveApp
		app := ""
		reg.Range(func(l *event.Live) bool {
			b := l.Base()
			if a == nil || b.App != app {
				if a = v.apps[b.App]; a == nil {
					a = &liveApp{Origins: map[originKey]int{}}
					v.apps[b.App] = a
				}
				app = b.App
			}
			a.Active++
			a.ClientBytes += l.ClientBytes.Load()
			a.OriginBytes += l.OriginBytes.Load()
			if b.OriginPath != "" || b.OriginAddr.IsValid() {
				a.Origins[originKey{b.OriginAddr, b.OriginPath}]++
			}
			if !withTop {
				return true
			}
			// The address when there is one (a unix-socket listener's
			// trusted PROXY header gives the real client's), else the
			// socket's path.
			ck := clientKey{addr: b.ClientAddr.Addr()}
			if !ck.addr.IsValid() {
				ck = clientKey{path: b.ClientPath}
			}
			countTop(v.top.clients, ck)
			if b.Country != "" {
				countTop(v.top.countries, b.Country)
			}
			if b.ASN != 0 {
				countTop(v.top.asns, b.ASN)
			}
			return true
		})
	}
	c.view = v
	return v
}

func countTop[K comparable](m map[K]int, k K) {
	if _, ok := m[k]; ok || len(m) < maxTopKeys {
		m[k]++
	}
}

// originString is the origin of a session as the API shows it.
func originString(e *event.Event) string {
	if e.OriginPath != "" {
		return "unix:" + e.OriginPath
	}
	if e.OriginAddr.IsValid() {
		return e.OriginAddr.String()
	}
	return ""
}

// KeyCount is one entry of a top-N list.
type KeyCount struct {
	Key      string `json:"key"`
	Sessions int    `json:"sessions"`
}

func topN[K comparable](m map[K]int, n int, str func(K) string) []KeyCount {
	out := make([]KeyCount, 0, len(m))
	for k, c := range m {
		out = append(out, KeyCount{Key: str(k), Sessions: c})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Sessions != out[j].Sessions {
			return out[i].Sessions > out[j].Sessions
		}
		return out[i].Key < out[j].Key
	})
	if len(out) > n {
		out = out[:n]
	}
	return out
}
