package logs

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"sort"
	"strconv"
	"text/tabwriter"

	"github.com/prismproxy/prism/internal/event"
)

// StatsOptions are the options of Stats.
type StatsOptions struct {
	Common
	// Top is how many clients, countries and ASNs to list (default 10).
	Top int
	// JSON writes the report as one JSON object instead of tables.
	JSON bool
}

// Report is what Stats computes.
type Report struct {
	Dataset string `json:"dataset"`
	Records int    `json:"records"`
	// Sessions counts sessions with a final record; Open those whose final
	// record was not in the input.
	Sessions int         `json:"sessions"`
	Open     int         `json:"open_sessions"`
	Apps     []AppStats  `json:"apps"`
	Events   []EventStat `json:"events"`
	Clients  []TopEntry  `json:"top_clients"`
	Country  []TopEntry  `json:"top_countries"`
	ASNs     []TopEntry  `json:"top_asns"`
	Bad      int         `json:"bad_records"`
}

// AppStats are the totals of one app's finished sessions.
type AppStats struct {
	App         string    `json:"app"`
	Sessions    int       `json:"sessions"`
	ClientBytes int64     `json:"client_bytes"`
	OriginBytes int64     `json:"origin_bytes"`
	Duration    Durations `json:"duration_ms"`
}

// Durations are session duration percentiles in milliseconds (nearest
// rank).
type Durations struct {
	P50 int64 `json:"p50"`
	P90 int64 `json:"p90"`
	P99 int64 `json:"p99"`
	Max int64 `json:"max"`
}

// EventStat counts records of one Spectrum Event and Status (for sources
// without them, as read back: see docs/logs-cli.md).
type EventStat struct {
	Event  string `json:"event"`
	Status int    `json:"status"`
	Count  int    `json:"count"`
}

// TopEntry is one of the busiest clients, countries or ASNs, by finished
// sessions.
type TopEntry struct {
	Key      string `json:"key"`
	Sessions int    `json:"sessions"`
	Bytes    int64  `json:"bytes"`
}

type appAcc struct {
	sessions       int
	client, origin int64
	durs           []int64
}

type topAcc struct {
	sessions int
	bytes    int64
}

// Stats reads the input and summarises it. EdgeOne periodic records are
// merged per SessionID (or the key sessionKey derives without one): a
// session counts once, at its final record, with the sum of its records'
// bytes.
func Stats(o StatsOptions) (*Report, Result, error) {
	var res Result
	r, err := newReader(&o.Common, &res)
	if err != nil {
		return nil, res, err
	}
	if o.Top <= 0 {
		o.Top = 10
	}
	tr := newTracker(o.From, true)
	apps := map[string]*appAcc{}
	type ek struct {
		t      event.Type
		status int
	}
	events := map[ek]int{}
	clients, countries, asns := map[string]*topAcc{}, map[string]*topAcc{}, map[string]*topAcc{}
	bump := func(m map[string]*topAcc, k string, bytes int64) {
		a := m[k]
		if a == nil {
			a = &topAcc{}
			m[k] = a
		}
		a.sessions++
		a.bytes += bytes
	}
	rep := &Report{Dataset: o.From}
	err = r.walk(false, func(rec *record, _ []problem) error {
		e := &rec.dec.Event
		tr.update(rec.dec, true)
		if e.Type != event.Interim {
			events[ek{e.Type, e.Status}]++
		}
		if !e.Type.Terminal() {
			return nil
		}
		rep.Sessions++
		a := apps[e.App]
		if a == nil {
			a = &appAcc{}
			apps[e.App] = a
		}
		a.sessions++
		a.client += e.ClientBytes
		a.origin += e.OriginBytes
		a.durs = append(a.durs, e.Duration().Milliseconds())
		bytes := e.ClientBytes + e.OriginBytes
		client := "(none)"
		if e.ClientAddr.IsValid() {
			client = e.ClientAddr.Addr().Unmap().String()
		}
		bump(clients, client, bytes)
		if e.Country != "" {
			bump(countries, e.Country, bytes)
		}
		if e.ASN != 0 {
			bump(asns, "AS"+strconv.FormatUint(uint64(e.ASN), 10), bytes)
		}
		return nil
	})
	rep.Records, rep.Bad, rep.Open = res.Records, res.Bad, len(tr.m)+tr.evicted
	for app, a := range apps {
		slices.Sort(a.durs)
		rep.Apps = append(rep.Apps, AppStats{App: app, Sessions: a.sessions, ClientBytes: a.client, OriginBytes: a.origin,
			Duration: Durations{P50: rank(a.durs, 50), P90: rank(a.durs, 90), P99: rank(a.durs, 99), Max: a.durs[len(a.durs)-1]}})
	}
	sort.Slice(rep.Apps, func(i, j int) bool {
		if rep.Apps[i].Sessions != rep.Apps[j].Sessions {
			return rep.Apps[i].Sessions > rep.Apps[j].Sessions
		}
		return rep.Apps[i].App < rep.Apps[j].App
	})
	for k, n := range events {
		rep.Events = append(rep.Events, EventStat{Event: k.t.String(), Status: k.status, Count: n})
	}
	sort.Slice(rep.Events, func(i, j int) bool {
		a, b := rep.Events[i], rep.Events[j]
		if a.Count != b.Count {
			return a.Count > b.Count
		}
		if a.Event != b.Event {
			return a.Event < b.Event
		}
		return a.Status < b.Status
	})
	rep.Clients, rep.Country, rep.ASNs = top(clients, o.Top), top(countries, o.Top), top(asns, o.Top)
	if err == nil && res.Bad > 0 {
		err = ErrProblems
	}
	return rep, res, err
}

// rank is the nearest-rank percentile of sorted values.
func rank(sorted []int64, p int) int64 {
	if len(sorted) == 0 {
		return 0
	}
	i := (p*len(sorted)+99)/100 - 1
	return sorted[max(i, 0)]
}

func top(m map[string]*topAcc, n int) []TopEntry {
	out := make([]TopEntry, 0, len(m))
	for k, a := range m {
		out = append(out, TopEntry{Key: k, Sessions: a.sessions, Bytes: a.bytes})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Sessions != out[j].Sessions {
			return out[i].Sessions > out[j].Sessions
		}
		if out[i].Bytes != out[j].Bytes {
			return out[i].Bytes > out[j].Bytes
		}
		return out[i].Key < out[j].Key
	})
	if len(out) > n {
		out = out[:n]
	}
	return out
}

// WriteJSON writes the report as one indented JSON object.
func (rep *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(rep)
}

// WriteText writes the report as tables, one per section.
func (rep *Report) WriteText(w io.Writer) error {
	fmt.Fprintf(w, "%s: %d records, %d sessions finished, %d open at the end of the input", rep.Dataset, rep.Records, rep.Sessions, rep.Open)
	if rep.Bad > 0 {
		fmt.Fprintf(w, ", %d bad records", rep.Bad)
	}
	fmt.Fprintln(w)
	table := func(header string, rows func(tw *tabwriter.Writer)) error {
		fmt.Fprintln(w)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, header)
		rows(tw)
		return tw.Flush()
	}
	if err := table("app\tsessions\tclient bytes\torigin bytes\tp50 ms\tp90 ms\tp99 ms\tmax ms", func(tw *tabwriter.Writer) {
		for _, a := range rep.Apps {
			fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\n", orNone(a.App), a.Sessions, a.ClientBytes, a.OriginBytes,
				a.Duration.P50, a.Duration.P90, a.Duration.P99, a.Duration.Max)
		}
	}); err != nil {
		return err
	}
	if err := table("event\tstatus\trecords", func(tw *tabwriter.Writer) {
		for _, e := range rep.Events {
			fmt.Fprintf(tw, "%s\t%d\t%d\n", e.Event, e.Status, e.Count)
		}
	}); err != nil {
		return err
	}
	for _, t := range []struct {
		name string
		list []TopEntry
	}{{"client", rep.Clients}, {"country", rep.Country}, {"asn", rep.ASNs}} {
		if err := table("top "+t.name+"\tsessions\tbytes", func(tw *tabwriter.Writer) {
			if len(t.list) == 0 {
				fmt.Fprintln(tw, "(none in the input)")
			}
			for _, e := range t.list {
				fmt.Fprintf(tw, "%s\t%d\t%d\n", e.Key, e.Sessions, e.Bytes)
			}
		}); err != nil {
			return err
		}
	}
	return nil
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}
