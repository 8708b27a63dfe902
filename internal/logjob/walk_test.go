package logjob

import (
	"context"
	"log/slog"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prismproxy/prism/internal/event"
	"github.com/prismproxy/prism/internal/render"
	"github.com/prismproxy/prism/internal/sink"
)

// ocsfRecords are the OCSF records of session id that d holds, in order:
// message and traffic.bytes_out of each.
func ocsfRecords(t *testing.T, d *memDest, id event.ID) (msgs []string, out []float64) {
	t.Helper()
	for _, r := range d.records(t) {
		if !recordOf(r, id) {
			continue
		}
		msgs = append(msgs, r["message"].(string))
		out = append(out, r["traffic"].(map[string]any)["bytes_out"].(float64))
	}
	return msgs, out
}

// recordOf reports whether OCSF record r is of session id.
func recordOf(r map[string]any, id event.ID) bool {
	c, _ := r["connection_info"].(map[string]any)
	return c != nil && c["uid"] == id.String()
}

// TestOCSFWalkWaitsForTheConnect: an ocsf job's queue is backed up (its
// destination is stalled) when a session connects; the proxy emits the
// connect, then adds the session to the registry, and a tick comes while
// the connect is still queued behind more than one chunk of events. The
// walk took a periodic record of the session then, written before its
// connect record, and the connect's delta was negative. Now the session's
// first record is its connect and the deltas sum to the total; a session
// open before the job was built still gets its periodic records.
func TestOCSFWalkWaitsForTheConnect(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := &memDest{gate: make(chan struct{})}
		useDests(t, map[string]*memDest{"o": d})
		reg := new(event.Registry)
		early := session(1000, event.Connect)
		earlyLive := event.NewLive(early)
		reg.Add(earlyLive)
		earlyLive.ClientBytes.Add(7)
		p, err := newPipeline(node, prepared(t, []Config{{Name: "o", Dataset: render.OCSF, Interval: time.Second,
			Batch: BatchConfig{MaxRecords: 1}}}), reg, nil, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		for i := range 300 { // more than a chunk
			e := session(i, event.Disconnect)
			p.Emit(&e)
		}
		s := session(999, event.Connect)
		p.Emit(&s)
		live := event.NewLive(s)
		reg.Add(live)
		live.ClientBytes.Add(100)
		synctest.Wait()         // the job waits on its stalled destination
		time.Sleep(time.Second) // a tick is due
		close(d.gate)
		synctest.Wait() // the queue is read, the tick handled
		time.Sleep(time.Second)
		synctest.Wait() // one more walk: the connect has been read by now
		reg.Remove(live)
		fin := s
		fin.Type, fin.Status, fin.ClientBytes = event.Disconnect, event.StatusOK, 100
		fin.Time, fin.DisconnectTime = time.Now(), time.Now()
		p.Emit(&fin)
		reg.Remove(earlyLive)
		fin = early
		fin.Type, fin.Status, fin.ClientBytes = event.Disconnect, event.StatusOK, 7
		fin.Time, fin.DisconnectTime = time.Now(), time.Now()
		p.Emit(&fin)
		if err := p.Close(context.Background()); err != nil {
			t.Fatal(err)
		}

		msgs, out := ocsfRecords(t, d, s.SessionID)
		if len(msgs) < 3 || msgs[0] != "connect" || msgs[len(msgs)-1] != "disconnect" {
			t.Fatalf("records of the session: %v, want connect, interim…, disconnect", msgs)
		}
		var sum float64
		for i, v := range out {
			if v < 0 {
				t.Fatalf("record %d (%s) has a negative delta %v: %v", i, msgs[i], v, out)
			}
			sum += v
		}
		if sum != 100 {
			t.Fatalf("deltas %v sum to %v, want 100", out, sum)
		}
		msgs, out = ocsfRecords(t, d, early.SessionID)
		if len(msgs) < 2 || msgs[0] != "interim" || out[0] != 7 {
			t.Fatalf("records of the session open before the job: %v %v, want interim (7 bytes)…, disconnect", msgs, out)
		}
	})
}

// delayDest is a memDest whose every write takes delay (of the test's
// clock: use it in a synctest bubble).
type delayDest struct {
	memDest
	delay time.Duration
}

func (d *delayDest) Write(b *sink.Batch) error {
	time.Sleep(d.delay)
	return d.memDest.Write(b)
}

// TestBaselineKeptWhileTheTerminalIsQueued: a session leaves the registry
// and its terminal event waits behind two thousand others for a slow
// destination, while the job walks between chunks. The job forgot the
// session's reported totals after three walks without it, and the final
// record's delta was the whole total again (1000 bytes counted twice).
// Now walks count toward forgetting only while the job keeps up with its
// queue, and a session whose terminal event never comes is still
// forgotten then.
func TestBaselineKeptWhileTheTerminalIsQueued(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := &delayDest{delay: 10 * time.Millisecond}
		old := newDestination
		newDestination = func(*Config, *slog.Logger) (sink.Destination, error) { return d, nil }
		defer func() { newDestination = old }()
		reg := new(event.Registry)
		p, err := newPipeline(node, prepared(t, []Config{{Name: "e", Dataset: render.EdgeOne, Interval: time.Second,
			QueueSize: 4096, Batch: BatchConfig{MaxRecords: 1}}}), reg, nil, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		s, lost := session(7, event.Connect), session(8, event.Connect)
		live, lostLive := event.NewLive(s), event.NewLive(lost)
		reg.Add(live)
		reg.Add(lostLive)
		live.ClientBytes.Add(1000)
		time.Sleep(1500 * time.Millisecond) // one walk: 1000 bytes reported
		synctest.Wait()
		reg.Remove(lostLive) // its terminal event is lost
		for i := range 2000 {
			e := session(i, event.Disconnect)
			p.Emit(&e)
		}
		live.ClientBytes.Add(1)
		reg.Remove(live)
		fin := s
		fin.Type, fin.Status, fin.ClientBytes = event.Disconnect, event.StatusOK, 1001
		fin.Time, fin.DisconnectTime = time.Now(), time.Now()
		p.Emit(&fin)
		for p.Stats()[0].Queued > 0 { // about 20s of writes, walks between chunks
			time.Sleep(time.Second)
		}
		time.Sleep(10 * time.Second) // walks of a job that keeps up
		synctest.Wait()
		if err := p.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
		if st := p.Stats()[0]; st.Dropped != 0 {
			t.Fatalf("dropped %d", st.Dropped)
		}
		var sum float64
		var deltas []float64
		for _, r := range d.records(t) {
			if r["SessionID"] == s.SessionID.String() {
				v := r["ReceivedBytes"].(float64)
				deltas = append(deltas, v)
				sum += v
			}
		}
		if sum != 1001 {
			t.Fatalf("deltas %v sum to %v, want 1001", deltas, sum)
		}
		if n := len(p.jobs[0].last); n != 0 {
			t.Fatalf("the job still tracks %d sessions; the one whose terminal event was lost should be forgotten", n)
		}
	})
}

// TestJobWithoutIntervalKeepsNoBaselineOfAConnect: an ocsf job without
// interval never walks, so nothing prunes the totals it keeps per open
// session; it kept an entry for every connect, and the entry of a session
// whose terminal event was dropped (full queue) stayed for good. A connect
// carries no bytes: the job now keeps nothing for it.
func TestJobWithoutIntervalKeepsNoBaselineOfAConnect(t *testing.T) {
	d := &memDest{}
	useDests(t, map[string]*memDest{"o": d})
	p, err := newPrepared(t, node, []Config{{Name: "o", Dataset: render.OCSF}}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		e := session(i, event.Connect) // the terminal events are lost
		p.Emit(&e)
	}
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := len(d.records(t)); n != 100 {
		t.Fatalf("%d records, want 100 connects", n)
	}
	if n := len(p.jobs[0].last); n != 0 {
		t.Fatalf("the job keeps totals for %d sessions whose terminal events were lost", n)
	}
}
