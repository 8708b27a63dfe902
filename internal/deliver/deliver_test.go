package deliver

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prismproxy/prism/internal/cfgerr"
	"github.com/prismproxy/prism/internal/sink"
	"github.com/prismproxy/prism/internal/sink/httpdst"
	"github.com/prismproxy/prism/internal/sink/sinktest"
	"github.com/prismproxy/prism/internal/spool"
)

var t0 = time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)

func httpCfg(url string) Config {
	return Config{Type: TypeHTTP, HTTP: httpdst.Config{URL: url}, Retry: RetryConfig{Initial: 5 * time.Millisecond, Max: 50 * time.Millisecond}, FlushTimeout: 2 * time.Second}
}

func newDel(t *testing.T, c Config, sp spool.Config) *Deliverer {
	t.Helper()
	for _, s := range []cfgerr.Section{&c, &sp} {
		if err := cfgerr.Prepare(s); err != nil {
			t.Fatal(err)
		}
	}
	d, err := New("test", c, sp, false, slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})))
	if err != nil {
		t.Fatal(err)
	}
	return d.(*Deliverer)
}

// sessions counts the received records per session id ("s").
func sessions(t *testing.T, recs [][]byte) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, r := range recs {
		var v struct{ S string }
		if err := json.Unmarshal(r, &v); err != nil {
			t.Fatalf("record %q: %v", r, err)
		}
		out[v.S]++
	}
	return out
}

// writeBatches writes n batches of 10 records, sessions 10*i..10*i+9.
func writeBatches(t *testing.T, d *Deliverer, from, n int) int {
	t.Helper()
	recs := 0
	for i := from; i < from+n; i++ {
		var s []uint32
		for k := 0; k < 10; k++ {
			s = append(s, uint32(10*i+k))
		}
		b := sinktest.Batch(t0.Add(time.Duration(i)*time.Minute), s...)
		if err := d.Write(b); err != nil {
			t.Fatal(err)
		}
		recs += b.Records
	}
	return recs
}

func waitStats(t *testing.T, d *Deliverer, ok func(Stats) bool) Stats {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		st := d.DeliveryStats()
		if ok(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("stats never got there: %+v", st)
		}
		time.Sleep(5 * time.Millisecond) // counters have no signal; poll them
	}
}

func TestOutageThenBackNothingLost(t *testing.T) {
	for _, withSpool := range []bool{true, false} {
		t.Run(map[bool]string{true: "spool", false: "memory"}[withSpool], func(t *testing.T) {
			r := sinktest.NewReceiver(t)
			r.Down()
			var sp spool.Config
			if withSpool {
				sp.Dir = t.TempDir()
			}
			d := newDel(t, httpCfg(r.URL), sp)
			n := writeBatches(t, d, 0, 8)
			waitStats(t, d, func(s Stats) bool { return s.Retries >= 3 })
			st := d.DeliveryStats()
			if st.Accepted != uint64(n) || st.Delivered != 0 || st.Pending != n {
				t.Fatalf("during the outage: %+v", st)
			}
			if withSpool && (st.SpoolBytes == 0 || !st.OldestUndelivered.Equal(t0)) {
				t.Fatalf("spool stats: %+v", st)
			}
			r.Up()
			if !r.WaitRecords(n, 20*time.Second) {
				t.Fatalf("received %d of %d", len(r.Records()), n)
			}
			st = waitStats(t, d, func(s Stats) bool { return s.Delivered == uint64(n) })
			if st.Pending != 0 || st.Dropped() != 0 || st.SpoolBytes != 0 {
				t.Fatalf("after delivery: %+v", st)
			}
			if err := d.Close(); err != nil {
				t.Fatal(err)
			}
			got := sessions(t, r.Records())
			if len(got) != n {
				t.Fatalf("%d sessions received, %d sent", len(got), n)
			}
			for s, c := range got {
				if c != 1 {
					t.Errorf("session %s received %d times", s, c)
				}
			}
		})
	}
}

func TestRejectedGoesToDeadLetter(t *testing.T) {
	r := sinktest.NewReceiver(t)
	r.Fail(400, "")
	dir := t.TempDir()
	d := newDel(t, httpCfg(r.URL), spool.Config{Dir: dir})
	n := writeBatches(t, d, 0, 2)
	st := waitStats(t, d, func(s Stats) bool { return s.Rejected == uint64(n) })
	if st.Retries != 0 || st.Delivered != 0 || st.Pending != 0 {
		t.Fatalf("a 400 was retried or kept pending: %+v", st)
	}
	if r.Requests() != 2 {
		t.Fatalf("%d requests for 2 rejected batches", r.Requests())
	}
	d.Close()
	dead, _ := os.ReadDir(filepath.Join(dir, "dead"))
	if len(dead) != 2 {
		t.Fatalf("dead-letter holds %d files, want 2", len(dead))
	}
}

func TestRetryAfterHonoured(t *testing.T) {
	r := sinktest.NewReceiver(t)
	r.Fail(429, "1")
	d := newDel(t, httpCfg(r.URL), spool.Config{})
	defer d.Close()
	start := time.Now()
	writeBatches(t, d, 0, 1)
	waitStats(t, d, func(s Stats) bool { return s.Retries >= 1 })
	r.Fail(0, "")
	if !r.WaitRecords(10, 10*time.Second) {
		t.Fatal("not delivered after the 429")
	}
	// With 5 ms backoff, only Retry-After explains a second attempt after >= 1s.
	if el := time.Since(start); el < time.Second {
		t.Fatalf("delivered %v after a 429 with Retry-After: 1", el)
	}
	if n := r.Requests(); n != 2 {
		t.Fatalf("%d requests: the 429 was retried before Retry-After", n)
	}
}

func TestMemoryBoundAndShutdownDrops(t *testing.T) {
	r := sinktest.NewReceiver(t)
	r.Down()
	c := httpCfg(r.URL)
	c.MemoryBatches = 3
	c.FlushTimeout = 100 * time.Millisecond
	d := newDel(t, c, spool.Config{})
	writeBatches(t, d, 0, 5)
	st := d.DeliveryStats()
	if st.Accepted != 30 || st.DroppedMemoryFull != 20 || st.Pending != 30 {
		t.Fatalf("memory bound: %+v", st)
	}
	if err := d.Close(); err == nil {
		t.Fatal("Close with undelivered records and no spool reported nothing")
	}
	if st := d.DeliveryStats(); st.DroppedShutdown != 30 || st.Pending != 0 {
		t.Fatalf("after close: %+v", st)
	}
}

func TestSpoolSurvivesCloseAndIsDeliveredAfterRestart(t *testing.T) {
	r := sinktest.NewReceiver(t)
	r.Down()
	dir := t.TempDir()
	c := httpCfg(r.URL)
	c.FlushTimeout = 100 * time.Millisecond
	d := newDel(t, c, spool.Config{Dir: dir})
	n := writeBatches(t, d, 0, 4)
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	r.Up()
	d = newDel(t, c, spool.Config{Dir: dir})
	if st := d.DeliveryStats(); st.Restored != uint64(n) {
		t.Fatalf("restored %d, want %d", st.Restored, n)
	}
	n2 := writeBatches(t, d, 4, 2)
	if !r.WaitRecords(n+n2, 20*time.Second) {
		t.Fatalf("received %d of %d", len(r.Records()), n+n2)
	}
	d.Close()
	recs := r.Records()
	got := sessions(t, recs)
	if len(got) != n+n2 || len(recs) != n+n2 {
		t.Fatalf("%d records, %d sessions; want %d", len(recs), len(got), n+n2)
	}
	// Oldest first: the restored batches come before the new ones.
	var first struct{ S string }
	json.Unmarshal(recs[0], &first)
	if first.S != sinktest.Session(0).String() {
		t.Fatalf("first delivered record is of session %s", first.S)
	}
}

func TestSpoolFullDropsCounted(t *testing.T) {
	r := sinktest.NewReceiver(t)
	r.Down()
	c := httpCfg(r.URL)
	c.FlushTimeout = 50 * time.Millisecond
	d := newDel(t, c, spool.Config{Dir: t.TempDir(), MaxBytes: 1 << 20, WhenFull: spool.DropNewest})
	defer d.Close()
	big := sinktest.Batch(t0, make([]uint32, 6000)...)
	for i := 0; i < 8; i++ {
		if err := d.Write(big); err != nil {
			t.Fatal(err)
		}
	}
	st := d.DeliveryStats()
	if st.DroppedSpoolFull == 0 || st.Accepted+st.DroppedSpoolFull != 8*6000 || st.SpoolBytes > 1<<20 {
		t.Fatalf("spool full: %+v", st)
	}
}

var _ sink.Destination = (*Deliverer)(nil)

// TestRejectedBatchStaysSpooledUntilDeadLettered: while the dead-letter
// directory cannot be made, a rejected batch stays in the spool (pending,
// not sent again, counted as rejected once) and goes there once it can.
func TestRejectedBatchStaysSpooledUntilDeadLettered(t *testing.T) {
	r := sinktest.NewReceiver(t)
	r.Fail(400, "")
	dir := t.TempDir()
	dead := filepath.Join(dir, "dead")
	d := newDel(t, httpCfg(r.URL), spool.Config{Dir: dir})
	defer d.Close()
	if err := os.Remove(dead); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dead, nil, 0o600); err != nil { // dead/ cannot be made
		t.Fatal(err)
	}
	n := writeBatches(t, d, 0, 1)
	waitStats(t, d, func(Stats) bool {
		err := d.LastError()
		return err != nil && strings.Contains(err.Error(), "dead-letter")
	})
	if st := d.DeliveryStats(); st.Rejected != uint64(n) || st.Pending != n {
		t.Fatalf("while dead/ cannot be made: rejected %d, pending %d; want %d each", st.Rejected, st.Pending, n)
	}
	if err := os.Remove(dead); err != nil {
		t.Fatal(err)
	}
	st := waitStats(t, d, func(s Stats) bool { return s.Pending == 0 })
	if st.Rejected != uint64(n) || st.Dropped() != 0 {
		t.Fatalf("after the dead letter: %+v", st)
	}
	if got := r.Requests(); got != 1 {
		t.Fatalf("%d requests for one rejected batch", got)
	}
	if ents, _ := os.ReadDir(dead); len(ents) != 1 {
		t.Fatalf("dead/ holds %d files, want 1", len(ents))
	}
}

// gateSender takes a batch when the test lets it through gate, saying on
// entered when a Send has begun.
type gateSender struct {
	entered chan struct{}
	gate    chan struct{}
}

func (g *gateSender) Send(ctx context.Context, b *sink.Batch) error {
	select {
	case g.entered <- struct{}{}:
	default:
	}
	select {
	case <-g.gate:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (g *gateSender) Close() error { return nil }

// TestTransientReadErrorKeepsTheBatch: a spooled batch that cannot be read
// for a while (here its path leads to a directory: read fails with
// EISDIR, as it would with EMFILE or EIO) is good: it stays spooled and is delivered
// once it reads again, not dead-lettered and counted as corrupt.
func TestTransientReadErrorKeepsTheBatch(t *testing.T) {
	dir := t.TempDir()
	c, sp := httpCfg("http://127.0.0.1:1/"), spool.Config{Dir: dir}
	for _, s := range []cfgerr.Section{&c, &sp} {
		if err := cfgerr.Prepare(s); err != nil {
			t.Fatal(err)
		}
	}
	g := &gateSender{entered: make(chan struct{}, 1), gate: make(chan struct{})}
	d, err := NewDeliverer("test", g, c, sp, slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	n := writeBatches(t, d, 0, 2)
	<-g.entered // the first batch is being sent; the second waits in the spool
	second := filepath.Join(dir, "00000000000000000002.batch")
	if err := os.Rename(second, filepath.Join(dir, "kept")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(t.TempDir(), second); err != nil { // restored by one rename
		t.Fatal(err)
	}
	g.gate <- struct{}{} // the first is delivered; the second cannot be read
	waitStats(t, d, func(Stats) bool {
		err := d.LastError()
		return err != nil && strings.Contains(err.Error(), "is a directory")
	})
	if err := os.Rename(filepath.Join(dir, "kept"), second); err != nil {
		t.Fatal(err)
	}
	close(g.gate)
	st := waitStats(t, d, func(s Stats) bool { return s.Delivered == uint64(n) || s.Dropped() > 0 })
	if st.Delivered != uint64(n) || st.Dropped() != 0 || st.Pending != 0 {
		t.Fatalf("a batch that could not be read for a while: %+v", st)
	}
	if dead, _ := os.ReadDir(filepath.Join(dir, "dead")); len(dead) != 0 {
		t.Fatalf("dead/ holds %d files, want none", len(dead))
	}
}
