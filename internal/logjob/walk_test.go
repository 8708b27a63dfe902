package logjob

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prismproxy/prism/internal/event"
	"github.com/prismproxy/prism/internal/render"
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
