package logjob

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"sort"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prismproxy/prism/internal/event"
	"github.com/prismproxy/prism/internal/render"
)

// step is one thing that happens to a session at time at.
type step struct {
	at     time.Duration
	sess   int
	kind   int // stepStart, stepBytes, stepEnd
	cb, ob int64
}

const (
	stepStart = iota
	stepBytes
	stepEnd
)

type simSession struct {
	id        event.ID
	proto     string
	live      *event.Live
	connected bool // false: fails before connect (originError), no Live
	early     bool // started before the pipeline
	cb, ob    int64
	start     time.Time
}

// TestPropertyDeltasSumToTotals runs random connection histories (TCP and
// UDP sessions with random byte increments and random close times, some
// started before the jobs, some failing before connect) through several
// EdgeOne jobs with different intervals side by side. For every session and
// job: interim deltas plus the final delta equal the session totals, there
// is exactly one final record, and nothing follows it.
func TestPropertyDeltasSumToTotals(t *testing.T) {
	for seed := uint64(1); seed <= 6; seed++ {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) { runHistory(t, seed) })
		})
	}
}

func runHistory(t *testing.T, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, seed*7919))
	jobs := []Config{
		{Name: "every1s", Dataset: render.EdgeOne, Interval: time.Second},
		{Name: "every3s", Dataset: render.EdgeOne, Interval: 3 * time.Second},
		{Name: "every7s", Dataset: render.EdgeOne, Interval: 7 * time.Second},
		{Name: "final-only", Dataset: render.EdgeOne},
		// Filtering interim records must not break the sums: what is held
		// back is reported with the next record that passes.
		{Name: "filtered", Dataset: render.EdgeOne, Interval: 2 * time.Second,
			Filter: FilterSpec(where(`{"or":[` + leaf("ReceivedBytes", "geq", "3000") + `,` + leaf("DisconnetReason", "!eq", `"-"`) + `]}`))},
		{Name: "spectrum", Dataset: render.Spectrum},
	}
	dests := map[string]*memDest{}
	for i := range jobs {
		jobs[i].QueueSize = 1 << 12
		jobs[i].Batch = BatchConfig{MaxRecords: 1 + rng.IntN(50), MaxInterval: time.Duration(1+rng.IntN(3000)) * time.Millisecond}
		dests[jobs[i].Name] = &memDest{}
	}
	useDests(t, dests)

	var reg event.Registry
	n := 60 + rng.IntN(60)
	sess := make([]*simSession, n)
	var steps []step
	t0 := time.Now()
	for i := range sess {
		s := &simSession{proto: event.ProtoTCP, connected: rng.IntN(10) != 0, early: rng.IntN(6) == 0}
		if rng.IntN(2) == 0 {
			s.proto = event.ProtoUDP
		}
		sess[i] = s
		start := time.Duration(rng.Int64N(int64(20 * time.Second)))
		if s.early {
			start = 0
		}
		end := start + time.Duration(rng.Int64N(int64(30*time.Second)))
		steps = append(steps, step{at: start, sess: i, kind: stepStart})
		if s.connected {
			for range rng.IntN(40) {
				at := start + time.Duration(rng.Int64N(int64(end-start)+1))
				steps = append(steps, step{at: at, sess: i, kind: stepBytes, cb: rng.Int64N(5000), ob: rng.Int64N(50000)})
			}
		}
		steps = append(steps, step{at: end, sess: i, kind: stepEnd})
	}
	sort.SliceStable(steps, func(a, b int) bool {
		if steps[a].at != steps[b].at {
			return steps[a].at < steps[b].at
		}
		return steps[a].kind < steps[b].kind
	})

	base := func(s *simSession, i int) event.Event {
		e := event.New("app", s.id)
		e.ClientProto = s.proto
		e.ClientAddr = netip.AddrPortFrom(netip.MustParseAddr("192.0.2.1"), uint16(10000+i))
		e.LocalAddr = netip.MustParseAddrPort("127.0.0.1:7000")
		e.StartTime = s.start
		return e
	}
	startSession := func(p *Pipeline, i int) {
		s := sess[i]
		s.start = time.Now()
		s.id = event.NewID(s.start)
		if !s.connected {
			return
		}
		c := base(s, i)
		c.Type, c.Time, c.ConnectTime = event.Connect, s.start, s.start
		s.live = event.NewLive(c)
		reg.Add(s.live)
		if p != nil {
			p.Emit(&c)
		}
	}

	// Sessions that exist before the jobs start: their connect is never seen.
	for _, st := range steps {
		if st.at == 0 && st.kind == stepStart && sess[st.sess].early {
			startSession(nil, st.sess)
		}
	}
	p, err := newPrepared(t, node, jobs, &reg, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range steps {
		if d := t0.Add(st.at).Sub(time.Now()); d > 0 {
			time.Sleep(d)
		}
		s := sess[st.sess]
		switch st.kind {
		case stepStart:
			if !s.early {
				startSession(p, st.sess)
			}
		case stepBytes:
			s.live.ClientBytes.Add(st.cb)
			s.live.OriginBytes.Add(st.ob)
			s.cb += st.cb
			s.ob += st.ob
		case stepEnd:
			e := base(s, st.sess)
			e.Time, e.DisconnectTime = time.Now(), time.Now()
			if s.connected {
				reg.Remove(s.live) // before the terminal event (Registry contract)
				e.Type, e.Status, e.ConnectTime = event.Disconnect, 200, s.start
				e.ClientBytes, e.OriginBytes = s.live.ClientBytes.Load(), s.live.OriginBytes.Load()
				e.CloseSide, e.CloseReason = event.SideClient, event.ReasonPeerClose
			} else {
				e.Type, e.Status = event.OriginError, 522
				e.CloseSide, e.CloseReason = event.SideOrigin, event.ReasonCreatePeer
			}
			p.Emit(&e)
		}
	}
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if reg.Len() != 0 {
		t.Fatalf("%d sessions left in the registry", reg.Len())
	}
	for _, j := range p.jobs {
		if len(j.last) != 0 {
			t.Errorf("job %s still tracks %d sessions after their final records", j.cfg.Name, len(j.last))
		}
	}
	for _, st := range p.Stats() {
		if st.Dropped != 0 || st.WriteErrors != 0 {
			t.Fatalf("job %s: %+v", st.Job, st)
		}
	}

	type rec struct {
		SessionID        string
		ConnectTimeStamp string
		DisconnetReason  string
		ReceivedBytes    int64
		SentBytes        int64
	}
	byID := map[string]*simSession{}
	for _, s := range sess {
		byID[s.id.String()] = s
	}
	interims := map[string]int{}
	for _, j := range jobs {
		if j.Dataset != render.EdgeOne {
			continue
		}
		type acc struct {
			cb, ob int64
			final  bool
			n      int
		}
		got := map[string]*acc{}
		for _, line := range dests[j.Name].lines() {
			var r rec
			if err := json.Unmarshal(line, &r); err != nil {
				t.Fatal(err)
			}
			a := got[r.SessionID]
			if a == nil {
				a = &acc{}
				got[r.SessionID] = a
			}
			if a.final {
				t.Fatalf("job %s session %s: a record after the final one: %s", j.Name, r.SessionID, line)
			}
			if r.ReceivedBytes < 0 || r.SentBytes < 0 {
				t.Fatalf("job %s: negative delta: %s", j.Name, line)
			}
			// Every record, of sessions that connected or not, carries the
			// accept time (spec §7.4).
			if s := byID[r.SessionID]; s == nil || r.ConnectTimeStamp != s.start.UTC().Format("2006-01-02T15:04:05Z") {
				t.Fatalf("job %s: ConnectTimeStamp is not the session's start: %s", j.Name, line)
			}
			a.cb += r.ReceivedBytes
			a.ob += r.SentBytes
			a.n++
			if r.DisconnetReason != "-" {
				a.final = true
			} else {
				interims[j.Name]++
			}
		}
		for id, s := range byID {
			a := got[id]
			if a == nil || !a.final {
				t.Fatalf("job %s session %s: no final record", j.Name, id)
			}
			if a.cb != s.cb || a.ob != s.ob {
				t.Errorf("job %s session %s (%s, early=%v): deltas sum to %d/%d, totals %d/%d",
					j.Name, id, s.proto, s.early, a.cb, a.ob, s.cb, s.ob)
			}
		}
		if len(got) != len(byID) {
			t.Errorf("job %s: records for %d sessions, want %d", j.Name, len(got), len(byID))
		}
	}
	// The intervals really produced periodic records, more for shorter ones.
	if !(interims["every1s"] > interims["every3s"] && interims["every3s"] > interims["every7s"] && interims["every7s"] > 0) {
		t.Errorf("interim records per job: %v", interims)
	}
	if interims["final-only"] != 0 {
		t.Errorf("final-only job wrote %d interim records", interims["final-only"])
	}
	// Spectrum: one connect per connected session (except those started
	// before the job) and one terminal record per session.
	var connects, terminals int
	for _, line := range dests["spectrum"].lines() {
		var r struct{ Event string }
		_ = json.Unmarshal(line, &r)
		if r.Event == "connect" {
			connects++
		} else {
			terminals++
		}
	}
	wantConnects := 0
	for _, s := range sess {
		if s.connected && !s.early {
			wantConnects++
		}
	}
	if connects != wantConnects || terminals != n {
		t.Errorf("spectrum: %d connects (want %d), %d terminal (want %d)", connects, wantConnects, terminals, n)
	}
}
