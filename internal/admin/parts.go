package admin

import (
	"sync/atomic"
	"time"

	"github.com/prismproxy/prism/internal/event"
	"github.com/prismproxy/prism/internal/geo"
	"github.com/prismproxy/prism/internal/logjob"
	"github.com/prismproxy/prism/internal/origin"
	"github.com/prismproxy/prism/internal/tlsedge"
	"github.com/prismproxy/prism/internal/udpproxy"
)

// Parts is what the admin side reads: the running proxy's counters and
// tables, handed over by the daemon as plain values and functions. The
// admin side never reaches into the data path beyond these.
type Parts struct {
	Version string
	// Apps are the configured apps; AppList, when set, is read instead on
	// every request (the apps after the last reload).
	Apps     []App
	AppList  func() []App
	Registry *event.Registry
	Tally    *Tally
	Reloads  *Reloads
	// Jobs returns every log job's counters.
	Jobs func() []logjob.Stats
	// Geo returns the GeoIP databases in use (nil: none configured).
	Geo func() []geo.Build
	// Close ends one open session as a close by the proxy.
	Close func(app string, id event.ID, detail string) bool
	// Ready is nil when every listener is bound and every part loaded.
	Ready func() error
	// HealthChecks returns how many connections (UDP: datagrams) from
	// trusted front proxies were health checks (they write no record).
	HealthChecks func() int64
	// AcceptErrors returns how many TCP accepts failed (EMFILE and the
	// like); nil: not reported.
	AcceptErrors func() uint64
	// Reload is what SIGHUP does (POST /api/v1/reload): re-read and apply
	// the config file, then reopen and re-read the files it names; the
	// result says what changed, the error why the config did not load.
	// nil: no reload offered.
	Reload func() (any, error)
	// OriginHealth returns, by app, the health of every checked origin
	// address (apps with health checks or passive ejection). nil: none.
	OriginHealth func() map[string][]origin.OriginHealth
}

// App is one configured app.
type App struct {
	ID            string
	Protocol      string   // tcp | udp
	Listen        []string // as configured
	Origins       []string // configured addresses, or the DNS name
	Balance       string
	ProxyProtocol string
	TLSMode       string
	// Addrs returns the bound listener addresses.
	Addrs func() []string
	// Dial is the origin dial-time histogram (tcp apps).
	Dial *origin.Latency
	// UDP returns the UDP counters (udp apps).
	UDP func() udpproxy.Stats
	// Certs returns the edge certificates in use (apps with edge TLS).
	Certs func() []tlsedge.Certificate
	// Refused returns how many connections (UDP: sessions) each limit of
	// the app's `limits:` refused, by config key; nil: no limit set.
	Refused func() map[string]uint64
	// Evicted returns how many rate buckets the app's limiter evicted
	// because its table was full; nil: no new_connections_per_second.
	Evicted func() uint64
}

// Reloads counts configuration reloads (SIGHUP) by result.
type Reloads struct {
	ok, failed atomic.Uint64
	lastOK     atomic.Int64 // unix seconds of the last successful reload, 0 never
}

// Record counts one reload that ended with err.
func (r *Reloads) Record(err error) {
	if err != nil {
		r.failed.Add(1)
		return
	}
	r.ok.Add(1)
	r.lastOK.Store(time.Now().Unix())
}

// apps is the current app list: AppList's when set, else Apps.
func (p *Parts) apps() []App {
	if p.AppList != nil {
		return p.AppList()
	}
	return p.Apps
}
