package admin

import (
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/prismproxy/prism/internal/deliver"
	"github.com/prismproxy/prism/internal/logjob"
	"github.com/prismproxy/prism/internal/origin"
	"github.com/prismproxy/prism/internal/tlsedge"
	"github.com/prismproxy/prism/internal/udpproxy"
)

// collector turns the counters prism keeps into Prometheus metrics at
// scrape time. Nothing here runs on the data path.
type collector struct {
	p      *Parts
	live   *liveCache
	unauth func() uint64

	mu       sync.Mutex
	lastSent map[string][2]uint64 // app → bytes last reported (kept monotonic)
}

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, labels, nil)
}

var (
	dBuild        = desc("prism_build_info", "Always 1; the version label says which prism runs.", "version")
	dOpened       = desc("prism_sessions_opened_total", "Sessions (TCP connections, UDP sessions) that reached connect: both legs up.", "app", "protocol")
	dActive       = desc("prism_sessions_active", "Sessions open now (connected, not yet ended).", "app", "protocol")
	dRecords      = desc("prism_session_records_total", "Terminal records (one per session) by Event and Status.", "app", "event", "status")
	dBytes        = desc("prism_transferred_bytes_total", "Bytes relayed: client_to_origin is read from clients, origin_to_client read from origins (ended and open sessions).", "app", "direction")
	dUDPDgrams    = desc("prism_udp_datagrams_total", "UDP datagrams received, by where they came from.", "app", "from")
	dUDPDrops     = desc("prism_udp_dropped_datagrams_total", "UDP datagrams received and not forwarded, by cause.", "app", "cause")
	dUDPSessions  = desc("prism_udp_sessions", "UDP sessions now, including ones being set up.", "app")
	dLimitRefused = desc("prism_limit_refusals_total", "Connections (UDP: sessions) refused by a limit of the app's limits: section, by its config key; each wrote one clientFiltered record.", "app", "limit")
	dLimitEvicted = desc("prism_limit_rate_buckets_evicted_total", "Rate buckets (new_connections_per_second) the app's limiter evicted, still refilling, because it tracked its maximum of client prefixes; an evicted prefix starts again with a full burst.", "app")
	dAcceptErrs   = desc("prism_accept_errors_total", "TCP accepts that failed (EMFILE, ENFILE and the like); prism backs off and keeps serving.")
	dUDPBlocked   = desc("prism_udp_blocked_clients", "UDP clients the firewall blocked that are remembered now (their datagrams are dropped without a lookup).", "app")
	dFirewall     = desc("prism_firewall_decisions_total", "IP firewall decisions (one per session of an app with a firewall), by match.", "app", "match")
	dTLS          = desc("prism_tls_handshakes_total", "Edge TLS handshakes of terminating apps, by client-leg TLS status.", "app", "status")
	dDial         = desc("prism_origin_dial_duration_seconds", "Time to connect to the origin, all failover attempts of one connection together (tcp apps).", "app")
	dOriginErrs   = desc("prism_origin_errors_total", "Sessions that failed at the origin: resolveOrigin and originError records, by Status.", "app", "event", "status")
	dOriginActive = desc("prism_origin_active_connections", "Open sessions per origin address.", "app", "origin")
	dGeoBuild     = desc("prism_geoip_database_build_timestamp_seconds", "When the GeoIP database in use was built (its metadata), Unix time.", "kind", "path")
	dCertExpiry   = desc("prism_tls_certificate_expiry_timestamp_seconds", "When an edge certificate in use expires, Unix time (certificates of one name and key type: the earliest).", "app", "name", "key_type")
	dReloads      = desc("prism_config_reload_total", "Reloads (SIGHUP or POST /api/v1/reload: config re-read, log files reopened, GeoIP databases, firewall lists and certificates re-read), by result.", "result")
	dReloadOK     = desc("prism_config_last_reload_success_timestamp_seconds", "When the last successful reload finished, Unix time (0: none yet).")
	dHealthChecks = desc("prism_inbound_health_checks_total", "Connections (UDP: datagrams) from trusted front proxies that were health checks (closed before a byte, or PROXY v2 LOCAL); they write no record.")
	dUnauth       = desc("prism_admin_unauthorized_requests_total", "Admin requests refused with 401 (wrong or missing token).")
	dOriginUp     = desc("prism_origin_healthy", "1 while an origin address of an app with health checks or passive ejection is healthy, 0 while it is skipped.", "app", "origin")
	dOriginChecks = desc("prism_origin_health_checks_total", "Active health checks of an origin address, by result.", "app", "origin", "result")
	dOriginFlaps  = desc("prism_origin_health_transitions_total", "Times an origin address went down or came back.", "app", "origin")
)

// jobMetric is one log-job counter: a logjob.Stats field as a metric. A
// new Stats field becomes a metric by adding a row here. Rows with
// delivery set read Stats.Delivery and are left out for jobs without one
// (stdout and file destinations).
type jobMetric struct {
	name, help string
	gauge      bool
	label      [2]string // an extra label name and value, or empty
	get        func(logjob.Stats) float64
	delivery   func(*deliver.Stats) float64
}

var jobMetrics = []jobMetric{
	{name: "prism_logjob_events_total", help: "Events offered to the job (of the types its dataset writes) plus periodic snapshots it took.",
		get: func(s logjob.Stats) float64 { return float64(s.Emitted) }},
	{name: "prism_logjob_records_written_total", help: "Records the job's destination accepted (remote destinations: accepted for delivery).",
		get: func(s logjob.Stats) float64 { return float64(s.Written) }},
	{name: "prism_logjob_dropped_total", help: "Records lost before the destination, by cause: queue_full (the data path never waits) or write_error (in batches the destination failed to write).",
		label: [2]string{"cause", "queue_full"}, get: func(s logjob.Stats) float64 { return float64(s.Dropped) }},
	{name: "prism_logjob_dropped_total", label: [2]string{"cause", "write_error"},
		get: func(s logjob.Stats) float64 { return float64(s.WriteErrors) }},
	{name: "prism_logjob_skipped_total", help: "Records left out on purpose, by cause: filtered (the job's filter) or sampled (its sample rate).",
		label: [2]string{"cause", "filtered"}, get: func(s logjob.Stats) float64 { return float64(s.Filtered) }},
	{name: "prism_logjob_skipped_total", label: [2]string{"cause", "sampled"},
		get: func(s logjob.Stats) float64 { return float64(s.SampledOut) }},
	{name: "prism_logjob_queue_depth", help: "Events waiting in the job's queue now.", gauge: true,
		get: func(s logjob.Stats) float64 { return float64(s.Queued) }},

	// Remote destinations (http, s3, kafka).
	{name: "prism_logjob_delivery_accepted_total", help: "Records spooled (or queued in memory) for delivery.",
		delivery: func(d *deliver.Stats) float64 { return float64(d.Accepted) }},
	{name: "prism_logjob_delivered_total", help: "Records the remote destination acknowledged.",
		delivery: func(d *deliver.Stats) float64 { return float64(d.Delivered) }},
	{name: "prism_logjob_delivery_retries_total", help: "Failed delivery attempts (batches) that were tried again.",
		delivery: func(d *deliver.Stats) float64 { return float64(d.Retries) }},
	{name: "prism_logjob_delivery_rejected_total", help: "Records in batches the destination refused for good (kept as dead letters when spooled).",
		delivery: func(d *deliver.Stats) float64 { return float64(d.Rejected) }},
	{name: "prism_logjob_delivery_dropped_total", help: "Records dropped before delivery, by cause: spool_full, memory_full, shutdown (in memory at stop), corrupt (unreadable spool file).",
		label: [2]string{"cause", "spool_full"}, delivery: func(d *deliver.Stats) float64 { return float64(d.DroppedSpoolFull) }},
	{name: "prism_logjob_delivery_dropped_total", label: [2]string{"cause", "memory_full"},
		delivery: func(d *deliver.Stats) float64 { return float64(d.DroppedMemoryFull) }},
	{name: "prism_logjob_delivery_dropped_total", label: [2]string{"cause", "shutdown"},
		delivery: func(d *deliver.Stats) float64 { return float64(d.DroppedShutdown) }},
	{name: "prism_logjob_delivery_dropped_total", label: [2]string{"cause", "corrupt"},
		delivery: func(d *deliver.Stats) float64 { return float64(d.DroppedCorrupt) }},
	{name: "prism_logjob_delivery_pending", help: "Records waiting for delivery now (spooled or in memory).", gauge: true,
		delivery: func(d *deliver.Stats) float64 { return float64(d.Pending) }},
	{name: "prism_logjob_spool_bytes", help: "Size of the job's disk spool now (0 without a spool).", gauge: true,
		delivery: func(d *deliver.Stats) float64 { return float64(d.SpoolBytes) }},
	{name: "prism_logjob_delivery_lag_seconds", help: "Age of the oldest record not yet delivered (0 when nothing is pending).", gauge: true,
		delivery: func(d *deliver.Stats) float64 { return DeliveryLag(d, time.Now()).Seconds() }},
	{name: "prism_logjob_spool_restored_total", help: "Records found in the spool at start (an earlier run's).",
		delivery: func(d *deliver.Stats) float64 { return float64(d.Restored) }},
}

// DeliveryLag is how long the oldest undelivered record has waited (0 when
// none waits, or d is nil).
func DeliveryLag(d *deliver.Stats, now time.Time) time.Duration {
	if d == nil || d.OldestUndelivered.IsZero() {
		return 0
	}
	return max(now.Sub(d.OldestUndelivered), 0)
}

// jobDescs holds one Desc per distinct metric name of jobMetrics.
var jobDescs = func() map[string]*prometheus.Desc {
	m := map[string]*prometheus.Desc{}
	for _, jm := range jobMetrics {
		if _, ok := m[jm.name]; ok {
			continue
		}
		labels := []string{"log_job", "dataset"}
		if jm.label[0] != "" {
			labels = append(labels, jm.label[0])
		}
		m[jm.name] = desc(jm.name, jm.help, labels...)
	}
	return m
}()

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{dBuild, dOpened, dActive, dRecords, dBytes, dUDPDgrams, dUDPDrops, dUDPSessions,
		dUDPBlocked, dFirewall, dTLS, dDial, dOriginErrs, dOriginActive, dGeoBuild, dCertExpiry, dReloads, dReloadOK, dHealthChecks, dUnauth, dLimitRefused, dLimitEvicted, dAcceptErrs,
		dOriginUp, dOriginChecks, dOriginFlaps} {
		ch <- d
	}
	for _, d := range jobDescs {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	p := c.p
	gauge(dBuild, 1, p.Version)
	if p.OriginHealth != nil {
		for app, hs := range p.OriginHealth() {
			for _, h := range hs {
				up := 0.0
				if h.Healthy {
					up = 1
				}
				gauge(dOriginUp, up, app, h.Origin)
				counter(dOriginChecks, float64(h.ChecksOK), app, h.Origin, "ok")
				counter(dOriginChecks, float64(h.ChecksFailed), app, h.Origin, "failed")
				counter(dOriginFlaps, float64(h.Transitions), app, h.Origin)
			}
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	// The tally (ended sessions) is read before the walk over the open
	// ones: a session that ends in between is then in neither, and the
	// byte totals dip for one scrape (monotonic holds them). Read the
	// other way round it was in both, and monotonic kept the inflated
	// total for good.
	apps := p.apps()
	tallies := make([]AppCounts, len(apps))
	tallied := make([]bool, len(apps))
	for i, a := range apps {
		tallies[i], tallied[i] = p.Tally.App(a.ID)
	}
	lv := c.live.get(p.Registry, nil, time.Now(), 0, false)
	for i, a := range apps {
		la := lv.apps[a.ID]
		if la == nil {
			la = &liveApp{}
		}
		gauge(dActive, float64(la.Active), a.ID, a.Protocol)
		for o, n := range la.originStrings() {
			gauge(dOriginActive, float64(n), a.ID, o)
		}
		if ac, ok := tallies[i], tallied[i]; ok {
			counter(dOpened, float64(ac.Opened), a.ID, a.Protocol)
			for _, r := range ac.Records {
				code := strconv.Itoa(r.Code)
				counter(dRecords, float64(r.N), a.ID, r.Label, code)
				if r.Label == "resolveOrigin" || r.Label == "originError" {
					counter(dOriginErrs, float64(r.N), a.ID, r.Label, code)
				}
			}
			for _, f := range ac.Firewall {
				counter(dFirewall, float64(f.N), a.ID, f.Label)
			}
			for _, t := range ac.TLS {
				counter(dTLS, float64(t.N), a.ID, t.Label)
			}
			in := c.monotonic(a.ID, ac.ClientBytes+uint64(max(la.ClientBytes, 0)), ac.OriginBytes+uint64(max(la.OriginBytes, 0)))
			counter(dBytes, float64(in[0]), a.ID, "client_to_origin")
			counter(dBytes, float64(in[1]), a.ID, "origin_to_client")
		}
		if a.Dial != nil {
			cum, n, sum := a.Dial.Snapshot()
			buckets := make(map[float64]uint64, len(cum))
			for i, b := range origin.LatencyBuckets {
				buckets[b] = cum[i]
			}
			ch <- prometheus.MustNewConstHistogram(dDial, n, sum.Seconds(), buckets, a.ID)
		}
		if a.UDP != nil {
			st := a.UDP()
			counter(dUDPDgrams, float64(st.ClientDatagrams), a.ID, "client")
			counter(dUDPDgrams, float64(st.OriginDatagrams), a.ID, "origin")
			for _, d := range udpproxy.DropCauses {
				counter(dUDPDrops, float64(d.Count(st)), a.ID, d.Name)
			}
			gauge(dUDPSessions, float64(st.Sessions), a.ID)
			gauge(dUDPBlocked, float64(st.Blocked), a.ID)
		}
		if a.Refused != nil {
			for k, n := range a.Refused() {
				counter(dLimitRefused, float64(n), a.ID, k)
			}
		}
		if a.Evicted != nil {
			counter(dLimitEvicted, float64(a.Evicted()), a.ID)
		}
		if a.Certs != nil {
			for k, exp := range certExpiries(a.Certs()) {
				gauge(dCertExpiry, float64(exp.Unix()), a.ID, k[0], k[1])
			}
		}
	}
	if p.Jobs != nil {
		for _, st := range p.Jobs() {
			for _, jm := range jobMetrics {
				var v float64
				switch {
				case jm.delivery == nil:
					v = jm.get(st)
				case st.Delivery != nil:
					v = jm.delivery(st.Delivery)
				default:
					continue // not a remote destination
				}
				labels := []string{st.Job, st.Dataset}
				if jm.label[0] != "" {
					labels = append(labels, jm.label[1])
				}
				if jm.gauge {
					gauge(jobDescs[jm.name], v, labels...)
				} else {
					counter(jobDescs[jm.name], v, labels...)
				}
			}
		}
	}
	if p.Geo != nil {
		for _, b := range p.Geo() {
			gauge(dGeoBuild, float64(b.Built.Unix()), b.Kind, b.Path)
		}
	}
	if r := p.Reloads; r != nil {
		counter(dReloads, float64(r.ok.Load()), "success")
		counter(dReloads, float64(r.failed.Load()), "failure")
		gauge(dReloadOK, float64(r.lastOK.Load()))
	}
	if p.HealthChecks != nil {
		counter(dHealthChecks, float64(p.HealthChecks()))
	}
	if p.AcceptErrors != nil {
		counter(dAcceptErrs, float64(p.AcceptErrors()))
	}
	if c.unauth != nil {
		counter(dUnauth, float64(c.unauth()))
	}
}

// certExpiries is the earliest expiry of each name and key type among
// certs. An edge may hold an RSA and an ECDSA certificate for one name
// (the key type label tells them apart), and even two of one type: two
// samples with one label set would make the registry fail the whole
// scrape, and the earliest is the one an expiry alert is about.
func certExpiries(certs []tlsedge.Certificate) map[[2]string]time.Time {
	out := make(map[[2]string]time.Time, len(certs))
	for _, ct := range certs {
		k := [2]string{ct.Name, ct.KeyType}
		if t, ok := out[k]; !ok || ct.NotAfter.Before(t) {
			out[k] = ct.NotAfter
		}
	}
	return out
}

// monotonic returns the byte totals of app, never less than last reported:
// a session that ends between the tally read and the registry walk (which
// comes after it) is in neither, and would otherwise make a total dip for
// one scrape.
func (c *collector) monotonic(app string, in, out uint64) [2]uint64 {
	if c.lastSent == nil {
		c.lastSent = map[string][2]uint64{}
	}
	last := c.lastSent[app]
	v := [2]uint64{max(in, last[0]), max(out, last[1])}
	c.lastSent[app] = v
	return v
}
