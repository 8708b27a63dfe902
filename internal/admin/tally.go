package admin

import (
	"sync/atomic"

	"github.com/prismproxy/prism/internal/event"
)

// Tally counts the records the data path emits, per app: sessions that
// reached connect, terminal records by Event and Status, bytes of ended
// sessions, firewall decisions and edge TLS handshakes. It is an
// event.Emitter fed alongside the log pipeline; Emit is a map read and a few
// atomic adds (no lock, no allocation), so it never slows the data path.
// Every session has exactly one terminal record, so each per-session count
// is taken from that record.
type Tally struct {
	// tab is replaced whole by Add (a reload that adds apps) and read
	// with one atomic load by Emit.
	tab atomic.Pointer[tallyTable]
}

// tallyTable is read-only once stored. A record's App is the config's own
// string, so comparing it with ids (same pointer, same length) is quicker
// than hashing it for a map.
type tallyTable struct {
	ids  []string
	apps []*appTally
	byID map[string]*appTally // instead of the scan when there are many apps
}

// scanApps is the most apps looked up by scanning ids.
const scanApps = 16

// terminalTypes are the Event values of terminal records, in index order.
var terminalTypes = [...]event.Type{event.Disconnect, event.ClientFiltered, event.TLSError, event.ResolveOrigin, event.OriginError}

// knownStatuses are the Status values records can carry (spec §2), in
// index order; anything else is counted as 999.
var knownStatuses = [...]int{
	event.StatusOK, event.StatusInvalidSNI, event.StatusFiltered, event.StatusClientHandshake,
	event.StatusOriginReset, event.StatusOriginTimeout, event.StatusOriginUnreachable, event.StatusOriginRefused,
	event.StatusOriginPipe, event.StatusClientTLSError, event.StatusClientRefused, event.StatusClientUnreachable,
	event.StatusClientTimeout, event.StatusClientPipe, event.StatusClientReset, event.StatusInternal,
	event.StatusKeylessHandshake, event.StatusOriginUnknown, event.StatusOriginConnRefused, event.StatusOriginConnTimeout,
	event.StatusOriginConnUnreachable, event.StatusOriginConnInternal, event.StatusResolveInternal, event.StatusResolveFailed,
	event.StatusResolveBlocked, event.StatusResolveInternal2, event.StatusEdgeTLSConfig, event.StatusUnknown,
}

// firewallMatches are the ClientMatchedIpFirewall values, in index order.
var firewallMatches = [...]string{
	event.FirewallUnknown, event.FirewallBlockError, event.FirewallBlockIP, event.FirewallBlockCountry,
	event.FirewallBlockASN, event.FirewallWhitelistIP, event.FirewallWhitelistCountry, event.FirewallWhitelistASN,
}

// tlsStatuses are the client-leg TLS status values, in index order.
var tlsStatuses = [...]string{"OK", "INTERNAL_ERROR", "INVALID_CONFIG", "INVALID_SNI", "HANDSHAKE_FAILED", "KEYLESS_RPC", event.TLSStatusUnknown}

var statusIndex = func() (t [1000]uint8) {
	for i := range t {
		t[i] = uint8(len(knownStatuses) - 1) // 999
	}
	for i, s := range knownStatuses {
		t[s] = uint8(i)
	}
	return t
}()

func typeIndex(t event.Type) int {
	for i, tt := range terminalTypes {
		if tt == t {
			return i
		}
	}
	return -1
}

func indexOf[T comparable](list []T, v T) int {
	for i, x := range list {
		if x == v {
			return i
		}
	}
	return len(list) - 1 // the catch-all last entry
}

type appTally struct {
	opened      atomic.Uint64
	early       atomic.Uint64 // terminal records of sessions that never reached connect
	records     [len(terminalTypes)][len(knownStatuses)]atomic.Uint64
	clientBytes atomic.Uint64 // ended sessions: read from the client
	originBytes atomic.Uint64 // ended sessions: read from the origin
	firewall    [len(firewallMatches)]atomic.Uint64
	tls         [len(tlsStatuses)]atomic.Uint64
}

// NewTally counts the records of the given apps; records of other apps are
// ignored.
func NewTally(apps []string) *Tally {
	t := &Tally{}
	t.tab.Store(newTallyTable(nil, apps))
	return t
}

// Add starts counting the records of apps too (apps a reload added); the
// counts of apps already counted go on. Callers serialise Add.
func (t *Tally) Add(apps ...string) {
	t.tab.Store(newTallyTable(t.tab.Load(), apps))
}

func newTallyTable(old *tallyTable, apps []string) *tallyTable {
	n := &tallyTable{}
	if old != nil {
		n.ids = append(n.ids, old.ids...)
		n.apps = append(n.apps, old.apps...)
	}
	for _, a := range apps {
		if n.lookup(a) != nil {
			continue
		}
		n.ids = append(n.ids, a)
		n.apps = append(n.apps, new(appTally))
	}
	if len(n.ids) > scanApps {
		n.byID = make(map[string]*appTally, len(n.ids))
		for i, a := range n.ids {
			n.byID[a] = n.apps[i]
		}
	}
	return n
}

func (n *tallyTable) lookup(id string) *appTally {
	if n.byID != nil {
		return n.byID[id]
	}
	for i, s := range n.ids {
		if s == id {
			return n.apps[i]
		}
	}
	return nil
}

func (t *Tally) app(id string) *appTally {
	return t.tab.Load().lookup(id)
}

// Emit counts e.
func (t *Tally) Emit(e *event.Event) {
	a := t.app(e.App)
	if a == nil {
		return
	}
	if e.Type == event.Connect {
		a.opened.Add(1)
		return
	}
	ti := typeIndex(e.Type)
	if ti < 0 {
		return
	}
	si := len(knownStatuses) - 1
	if e.Status >= 0 && e.Status < len(statusIndex) {
		si = int(statusIndex[e.Status])
	}
	a.records[ti][si].Add(1)
	if e.ConnectTime.IsZero() {
		a.early.Add(1)
	}
	if e.ClientBytes > 0 {
		a.clientBytes.Add(uint64(e.ClientBytes))
	}
	if e.OriginBytes > 0 {
		a.originBytes.Add(uint64(e.OriginBytes))
	}
	if e.Firewall {
		a.firewall[indexOf(firewallMatches[:], e.FirewallMatch)].Add(1)
	}
	switch e.TLSMode {
	case "flexible", "full", "strict":
		// A terminating app: the client leg's handshake status (UNKNOWN
		// when the session ended before a handshake was tried).
		if e.ClientTLS.Status != event.TLSStatusUnknown || e.Type == event.TLSError {
			a.tls[indexOf(tlsStatuses[:], e.ClientTLS.Status)].Add(1)
		}
	}
}

// Count is one non-zero counter with its labels.
type Count struct {
	Label string // event name, firewall match or TLS status
	Code  int    // status code (records only)
	N     uint64
}

// AppCounts is a snapshot of one app's tallies.
type AppCounts struct {
	Opened      uint64
	Early       uint64  // sessions that ended before connect
	Records     []Count // terminal records by Event (Label) and Status (Code)
	ClientBytes uint64  // ended sessions
	OriginBytes uint64
	Firewall    []Count
	TLS         []Count
}

// Terminal is the number of terminal records (= sessions that ended).
func (c AppCounts) Terminal() uint64 {
	var n uint64
	for _, r := range c.Records {
		n += r.N
	}
	return n
}

// Started is the number of sessions seen: those that reached connect plus
// those that ended before it (refused, failed, or closed during set-up).
func (c AppCounts) Started() uint64 {
	return c.Opened + c.Early
}

// App returns the counts of app id.
func (t *Tally) App(id string) (AppCounts, bool) {
	a := t.app(id)
	if a == nil {
		return AppCounts{}, false
	}
	c := AppCounts{Opened: a.opened.Load(), Early: a.early.Load(), ClientBytes: a.clientBytes.Load(), OriginBytes: a.originBytes.Load()}
	for ti := range a.records {
		for si := range a.records[ti] {
			if n := a.records[ti][si].Load(); n > 0 {
				c.Records = append(c.Records, Count{Label: terminalTypes[ti].String(), Code: knownStatuses[si], N: n})
			}
		}
	}
	for i := range a.firewall {
		if n := a.firewall[i].Load(); n > 0 {
			c.Firewall = append(c.Firewall, Count{Label: firewallMatches[i], N: n})
		}
	}
	for i := range a.tls {
		if n := a.tls[i].Load(); n > 0 {
			c.TLS = append(c.TLS, Count{Label: tlsStatuses[i], N: n})
		}
	}
	return c, true
}

// Snapshot returns the counts of every app counted, by id.
func (t *Tally) Snapshot() map[string]AppCounts {
	tab := t.tab.Load()
	out := make(map[string]AppCounts, len(tab.ids))
	for _, id := range tab.ids {
		out[id], _ = t.App(id)
	}
	return out
}
