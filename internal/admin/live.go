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
	at   time.Time
	apps map[string]*liveApp
	top  tops
}

type liveApp struct {
	Active      int
	ClientBytes int64
	OriginBytes int64
	Origins     map[string]int // origin address → open sessions
}

type tops struct {
	clients   map[netip.Addr]int
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

// get returns a view no older than maxAge (0: walk now).
func (c *liveCache) get(reg *event.Registry, now time.Time, maxAge time.Duration) *liveView {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.view != nil && now.Sub(c.view.at) < maxAge {
		return c.view
	}
	v := &liveView{at: now, apps: map[string]*liveApp{}, top: tops{
		clients: map[netip.Addr]int{}, countries: map[string]int{}, asns: map[uint32]int{},
	}}
	if reg != nil {
		reg.Range(func(l *event.Live) bool {
			b := l.Base()
			a := v.apps[b.App]
			if a == nil {
				a = &liveApp{Origins: map[string]int{}}
				v.apps[b.App] = a
			}
			a.Active++
			a.ClientBytes += l.ClientBytes.Load()
			a.OriginBytes += l.OriginBytes.Load()
			if o := originString(b); o != "" {
				a.Origins[o]++
			}
			countTop(v.top.clients, b.ClientAddr.Addr())
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
