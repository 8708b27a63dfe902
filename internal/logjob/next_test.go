package logjob

import (
	"context"
	"log/slog"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prismproxy/prism/internal/event"
	"github.com/prismproxy/prism/internal/render"
)

// edgeoneDeltas are the ReceivedBytes of session id's records in d.
func edgeoneDeltas(t *testing.T, d *memDest, id event.ID) []float64 {
	t.Helper()
	var out []float64
	for _, r := range d.records(t) {
		if r["SessionID"] == id.String() {
			out = append(out, r["ReceivedBytes"].(float64))
		}
	}
	return out
}

func sum(v []float64) (s float64) {
	for _, x := range v {
		s += x
	}
	return s
}

// TestNextTakesOverUnchangedJobs: a reload's pipeline (Next) keeps running
// the job whose config did not change: the same job, whose deltas of a
// session open across the reload still sum to its total (a new job for
// it had no baseline and reported the session's bytes twice) and whose
// counters go on. A changed job is new: its first record of that session
// carries everything since the session began. New jobs walk only once
// started; closing the old pipeline closes the changed and removed jobs
// only.
func TestNextTakesOverUnchangedJobs(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		same, changed, gone, added := &memDest{}, &memDest{}, &memDest{}, &memDest{}
		useDests(t, map[string]*memDest{"same": same, "changed": changed, "gone": gone, "added": added})
		logs := &logCapture{}
		job := func(name string, fields ...string) Config {
			return Config{Name: name, Dataset: render.EdgeOne, Interval: time.Second, QueueSize: 4,
				Fields: fields, Batch: BatchConfig{MaxRecords: 1}}
		}
		reg := new(event.Registry)
		p1, err := newPipeline(node, prepared(t, []Config{job("same"), job("changed"), job("gone")}), reg, slog.New(logs), time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		s := session(7, event.Connect)
		live := event.NewLive(s)
		reg.Add(live)
		live.ClientBytes.Add(1000)
		time.Sleep(1500 * time.Millisecond) // one walk: 1000 bytes reported
		synctest.Wait()
		for range 10 { // more than the queue holds while nothing reads it: some are dropped
			e := session(1, event.Interim)
			p1.Emit(&e)
		}
		before := p1.Stats()[0]
		if before.Dropped == 0 {
			t.Fatal("no drops before the reload")
		}

		p2, err := p1.Next(node, prepared(t, []Config{job("same"), job("changed", "SessionID", "ReceivedBytes"), job("added")}), reg)
		if err != nil {
			t.Fatal(err)
		}
		if p2.jobs[0] != p1.jobs[0] || p2.jobs[1] == p1.jobs[1] {
			t.Fatal("the unchanged job was not taken over, or the changed one was")
		}
		time.Sleep(3 * time.Second) // not started: its new jobs do not walk
		synctest.Wait()
		if n := len(added.lines()); n != 0 {
			t.Fatalf("a job of a pipeline not started yet wrote %d records", n)
		}
		p2.Start() // the data path emits to p2 from here on
		if err := p1.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
		if !changed.closed || !gone.closed || same.closed || added.closed {
			t.Fatalf("closing the old pipeline closed: changed %v, gone %v, same %v, added %v; want the first two only",
				changed.closed, gone.closed, same.closed, added.closed)
		}
		nChanged := len(changed.lines())
		live.ClientBytes.Add(500)
		time.Sleep(time.Second)
		synctest.Wait()
		reg.Remove(live)
		fin := s
		fin.Type, fin.Status, fin.ClientBytes = event.Disconnect, event.StatusOK, 1500
		fin.Time, fin.DisconnectTime = time.Now(), time.Now()
		p2.Emit(&fin)
		if err := p2.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
		if !same.closed {
			t.Fatal("the unchanged job's destination is not closed at the end")
		}

		if d := edgeoneDeltas(t, same, s.SessionID); sum(d) != 1500 {
			t.Errorf("unchanged job: deltas %v across the reload sum to %v, want 1500", d, sum(d))
		}
		var newRecs []map[string]any
		for _, r := range changed.records(t)[nChanged:] {
			if r["SessionID"] == s.SessionID.String() {
				newRecs = append(newRecs, r)
			}
		}
		if len(newRecs) == 0 || newRecs[0]["ReceivedBytes"] != 1500.0 || len(newRecs[0]) != 2 {
			t.Errorf("changed job: its records of the session %v, want the first one (new fields) to carry all 1500 bytes", newRecs)
		}
		if d := edgeoneDeltas(t, added, s.SessionID); len(d) == 0 || sum(d) != 1500 {
			t.Errorf("added job: deltas %v, want them to sum to 1500", d)
		}
		after := p2.Stats()[0]
		if after.Emitted <= before.Emitted || after.Dropped != before.Dropped {
			t.Errorf("the unchanged job's counters did not go on: before %+v, after %+v", before, after)
		}
		var reports []map[string]any
		for _, m := range logs.find("log job dropped records") {
			if m["job"] == "same" {
				reports = append(reports, m)
			}
		}
		if len(reports) != 1 || reports[0]["dropped"] != before.Dropped {
			t.Errorf("the unchanged job's drops were reported as %v, want once, %d", reports, before.Dropped)
		}
	})
}
