package deliver

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prismproxy/prism/internal/cfgerr"
	"github.com/prismproxy/prism/internal/sink"
	"github.com/prismproxy/prism/internal/sink/httpdst"
	"github.com/prismproxy/prism/internal/sink/sinktest"
	"github.com/prismproxy/prism/internal/slogtest"
	"github.com/prismproxy/prism/internal/spool"
)

var t0 = time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)

func httpCfg(url string) Config {
	return Config{Type: TypeHTTP, HTTP: httpdst.Config{URL: url}, Retry: RetryConfig{Initial: 5 * time.Millisecond, Max: 50 * time.Millisecond}, FlushTimeout: 2 * time.Second}
}

func newDel(t *testing.T, c Config, sp spool.Config) *Deliverer {
	t.Helper()
	return newDelLog(t, c, sp, slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})))
}

// newDelLog is newDel logging to logger.
func newDelLog(t *testing.T, c Config, sp spool.Config, logger *slog.Logger) *Deliverer {
	t.Helper()
	for _, s := range []cfgerr.Section{&c, &sp} {
		if err := cfgerr.Prepare(s); err != nil {
			t.Fatal(err)
		}
	}
	d, err := New("test", c, sp, false, logger)
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

// TestShutdownDropWhileTheDestinationIsSlow: records still in memory at
// the flush timeout because the destination is slow (not failing) were
// reported with the last delivery error, which there is none of: the
// message ended in ": <nil>".
func TestShutdownDropWhileTheDestinationIsSlow(t *testing.T) {
	r := sinktest.NewReceiver(t)
	r.Throttle(1) // one byte a second: the batch is still being read at Close
	c := httpCfg(r.URL)
	c.FlushTimeout = 100 * time.Millisecond
	d := newDel(t, c, spool.Config{})
	writeBatches(t, d, 0, 1)
	waitStats(t, d, func(Stats) bool { return r.Requests() >= 1 })
	err := d.Close()
	if err == nil {
		t.Fatal("Close with undelivered records and no spool reported nothing")
	}
	if msg := err.Error(); strings.Contains(msg, "<nil>") || !strings.Contains(msg, "had not answered") {
		t.Fatalf("Close: %q, want the destination named as not answering", msg)
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

// failLoads makes loadBatch fail for the spooled batch with sequence
// number seq: fail(n) is the error of its nth load (from 1), nil to load
// it. It returns the count of that batch's loads.
func failLoads(t *testing.T, seq uint64, fail func(n int) error) *atomic.Int32 {
	t.Helper()
	var loads atomic.Int32
	orig := loadBatch
	loadBatch = func(s *spool.Spool, e spool.Entry, b *sink.Batch) error {
		if e.Seq == seq {
			if err := fail(int(loads.Add(1))); err != nil {
				return fmt.Errorf("spool: %w", err) // as Load wraps them
			}
		}
		return orig(s, e, b)
	}
	t.Cleanup(func() { loadBatch = orig }) // after the deferred Close: the loop is done
	return &loads
}

// batchPath is the file of the spooled batch seq in dir.
func batchPath(dir string, seq uint64) string {
	return filepath.Join(dir, fmt.Sprintf("%020d.batch", seq))
}

// checkReceived checks that r received the sessions of want once each and
// nothing else.
func checkReceived(t *testing.T, r *sinktest.Receiver, want []uint32) {
	t.Helper()
	if !r.WaitRecords(len(want), 20*time.Second) {
		t.Fatalf("received %d of %d records", len(r.Records()), len(want))
	}
	got := sessions(t, r.Records())
	for _, s := range want {
		if c := got[sinktest.Session(s).String()]; c != 1 {
			t.Errorf("session %d received %d times, want once", s, c)
		}
	}
	if len(got) != len(want) || len(r.Records()) != len(want) {
		t.Errorf("received %d records of %d sessions, want %d", len(r.Records()), len(got), len(want))
	}
}

// span is the sessions from..to-1.
func span(from, to uint32) []uint32 {
	var out []uint32
	for s := from; s < to; s++ {
		out = append(out, s)
	}
	return out
}

// deadRecords is the count of records in the batches of dir's dead-letter
// directory (read through a spool of their own) and the count of its files.
func deadRecords(t *testing.T, dir string) (records, files int) {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(dir, "dead"))
	if err != nil {
		t.Fatal(err)
	}
	cp := t.TempDir()
	for _, de := range ents {
		p, err := os.ReadFile(filepath.Join(dir, "dead", de.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(cp, de.Name()), p, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	s, corrupt, err := spool.Open(spool.Config{Dir: cp, MaxBytes: spool.DefaultMaxBytes})
	if err != nil || corrupt != 0 {
		t.Fatalf("reading the dead letters: %d corrupt, %v", corrupt, err)
	}
	defer s.Close()
	return s.Stats().Records, len(ents)
}

const (
	msgReadRetry  = "log job spool: reading a batch failed; trying again"
	msgReadGaveUp = "log job spool: a batch that could not be read moved to the dead-letter directory"
	msgNotRemoved = "log job spool: a delivered batch's file could not be removed; it is sent again at the next start"
)

// TestTransientReadErrorKeepsTheBatch: a spooled batch that cannot be read
// for a while is good: it stays spooled and is delivered once it reads
// again, not dead-lettered and counted as corrupt. A shortage (too many
// open files) is read again however often it fails (every batch would
// fail the same way); an error of the file itself (EIO) as long as it
// fails fewer than maxLoadAttempts times.
func TestTransientReadErrorKeepsTheBatch(t *testing.T) {
	for _, tc := range []struct {
		name  string
		errno syscall.Errno
		fails int
	}{
		{"EMFILE past the bound", syscall.EMFILE, maxLoadAttempts + 2},
		{"EIO within the bound", syscall.EIO, maxLoadAttempts - 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := sinktest.NewReceiver(t)
			dir := t.TempDir()
			loads := failLoads(t, 2, func(n int) error {
				if n <= tc.fails {
					return &os.PathError{Op: "read", Path: batchPath(dir, 2), Err: tc.errno}
				}
				return nil
			})
			logger, logs := slogtest.JSON(t)
			d := newDelLog(t, httpCfg(r.URL), spool.Config{Dir: dir}, logger)
			defer d.Close()
			n := writeBatches(t, d, 0, 3)
			st := waitStats(t, d, func(s Stats) bool { return s.Pending == 0 })
			if st.Delivered != uint64(n) || st.Dropped() != 0 {
				t.Fatalf("a batch that could not be read for a while: %+v", st)
			}
			checkReceived(t, r, span(0, 30))
			if got := loads.Load(); got != int32(tc.fails+1) {
				t.Errorf("the batch was loaded %d times, want %d", got, tc.fails+1)
			}
			if recs, files := deadRecords(t, dir); files != 0 {
				t.Fatalf("dead/ holds %d files (%d records), want none", files, recs)
			}
			if got := len(logs.Records(msgReadRetry)); got != tc.fails {
				t.Errorf("%d %q lines, want %d", got, msgReadRetry, tc.fails)
			}
		})
	}
}

// TestUnreadableBatchIsDeadLetteredAfterBoundedReads: a spooled batch whose
// file keeps failing to read with an error of its own (EIO from a bad
// sector; EISDIR, the real thing, from a path that leads to a directory)
// is read maxLoadAttempts times, then moved to dead/ and counted as
// DroppedCorrupt, with one error line naming the file, and the batches
// after it are delivered. It was read again for ever, and every batch
// behind it waited until the spool was full.
func TestUnreadableBatchIsDeadLetteredAfterBoundedReads(t *testing.T) {
	t.Run("EIO", func(t *testing.T) {
		r := sinktest.NewReceiver(t)
		dir := t.TempDir()
		loads := failLoads(t, 1, func(int) error {
			return &os.PathError{Op: "read", Path: batchPath(dir, 1), Err: syscall.EIO}
		})
		logger, logs := slogtest.JSON(t)
		d := newDelLog(t, httpCfg(r.URL), spool.Config{Dir: dir}, logger)
		defer d.Close()
		n := writeBatches(t, d, 0, 3)
		st := waitStats(t, d, func(s Stats) bool { return s.Pending == 0 })
		if st.Accepted != uint64(n) || st.Delivered != 20 || st.DroppedCorrupt != 10 || st.Dropped() != 10 || st.Rejected != 0 {
			t.Fatalf("after an unreadable batch: %+v; want 20 delivered, 10 dropped_corrupt", st)
		}
		checkReceived(t, r, span(10, 30))
		if got := loads.Load(); got != maxLoadAttempts {
			t.Errorf("the batch was read %d times, want %d", got, maxLoadAttempts)
		}
		// Nothing lost silently: the dead letter holds the batch, whole.
		if recs, files := deadRecords(t, dir); recs != 10 || files != 1 {
			t.Errorf("dead/ holds %d files of %d records, want 1 of 10", files, recs)
		}
		checkGaveUpLog(t, logs, batchPath(dir, 1))
		if got := len(logs.Records(msgReadRetry)); got != maxLoadAttempts-1 {
			t.Errorf("%d %q lines, want %d", got, msgReadRetry, maxLoadAttempts-1)
		}
	})
	t.Run("EISDIR", func(t *testing.T) {
		r := sinktest.NewReceiver(t)
		r.Down()
		dir := t.TempDir()
		logger, logs := slogtest.JSON(t)
		d := newDelLog(t, httpCfg(r.URL), spool.Config{Dir: dir}, logger)
		defer d.Close()
		n := writeBatches(t, d, 0, 3)
		waitStats(t, d, func(s Stats) bool { return s.Retries >= 1 }) // the first is being sent
		second := batchPath(dir, 2)
		if err := os.Remove(second); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(t.TempDir(), second); err != nil {
			t.Fatal(err)
		}
		r.Up()
		st := waitStats(t, d, func(s Stats) bool { return s.Pending == 0 })
		if st.Accepted != uint64(n) || st.Delivered != 20 || st.DroppedCorrupt != 10 || st.Dropped() != 10 {
			t.Fatalf("after an unreadable batch: %+v; want 20 delivered, 10 dropped_corrupt", st)
		}
		checkReceived(t, r, append(span(0, 10), span(20, 30)...))
		if dead, _ := os.ReadDir(filepath.Join(dir, "dead")); len(dead) != 1 {
			t.Errorf("dead/ holds %d files, want 1", len(dead))
		}
		checkGaveUpLog(t, logs, second)
	})
}

// TestReadAttemptsArePerBatch: the reads that failed are counted for the
// batch that failed them. The oldest batch can leave the spool between two
// reads (drop_oldest evicts it when the spool is full); the next one, just
// as unreadable, inherited the count and was dead-lettered after fewer
// reads than maxLoadAttempts.
func TestReadAttemptsArePerBatch(t *testing.T) {
	r := sinktest.NewReceiver(t)
	dir := t.TempDir()
	eio := func(seq uint64) error {
		return fmt.Errorf("spool: %w", &os.PathError{Op: "read", Path: batchPath(dir, seq), Err: syscall.EIO})
	}
	var first, second atomic.Int32
	orig := loadBatch
	loadBatch = func(s *spool.Spool, e spool.Entry, b *sink.Batch) error {
		switch e.Seq {
		case 1:
			if first.Add(1) == maxLoadAttempts-2 {
				_ = s.Remove(e) // gone from the spool before its last reads, as drop_oldest does
			}
			return eio(1)
		case 2:
			second.Add(1)
			return eio(2)
		}
		return orig(s, e, b)
	}
	t.Cleanup(func() { loadBatch = orig })
	d := newDel(t, httpCfg(r.URL), spool.Config{Dir: dir})
	defer d.Close()
	writeBatches(t, d, 0, 3)
	waitStats(t, d, func(s Stats) bool { return s.DroppedCorrupt == 10 && s.Delivered == 10 }) // the second dead-lettered, the third delivered
	checkReceived(t, r, span(20, 30))
	if got := second.Load(); got != maxLoadAttempts {
		t.Errorf("the second unreadable batch was read %d times before it was dead-lettered, want %d (the first's %d failed reads counted for it)", got, maxLoadAttempts, first.Load())
	}
}

// checkGaveUpLog checks for the one error line of a batch that could not
// be read, naming its file.
func checkGaveUpLog(t *testing.T, logs *slogtest.Buffer, file string) {
	t.Helper()
	recs := logs.Records(msgReadGaveUp)
	if len(recs) != 1 {
		t.Fatalf("%d %q lines, want 1", len(recs), msgReadGaveUp)
	}
	if l := recs[0]; l["level"] != "ERROR" || l["file"] != file || l["records"] != 10.0 || l["attempts"] != float64(maxLoadAttempts) {
		t.Errorf("log line %v: want level ERROR, file %s, records 10, attempts %d", l, file, maxLoadAttempts)
	}
}

// TestDeliveredBatchWhoseFileStaysIsLogged: a delivered batch whose file
// cannot be removed (here a non-empty directory has taken its place) is
// not sent again in this run, and delivery goes on; the failure is logged
// as an error naming the file (the next start would send it again). It
// was only in LastError.
func TestDeliveredBatchWhoseFileStaysIsLogged(t *testing.T) {
	r := sinktest.NewReceiver(t)
	r.Down()
	dir := t.TempDir()
	logger, logs := slogtest.JSON(t)
	d := newDelLog(t, httpCfg(r.URL), spool.Config{Dir: dir}, logger)
	defer d.Close()
	n := writeBatches(t, d, 0, 2)
	waitStats(t, d, func(s Stats) bool { return s.Retries >= 1 }) // the first is loaded and being sent
	first := batchPath(dir, 1)
	if err := os.Remove(first); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(first, "x"), 0o700); err != nil { // unlink and rmdir fail
		t.Fatal(err)
	}
	r.Up()
	st := waitStats(t, d, func(s Stats) bool { return s.Pending == 0 })
	if st.Delivered != uint64(n) || st.Dropped() != 0 {
		t.Fatalf("%+v", st)
	}
	checkReceived(t, r, span(0, 20))
	recs := logs.Records(msgNotRemoved)
	if len(recs) != 1 || recs[0]["level"] != "ERROR" || recs[0]["file"] != first {
		t.Fatalf("%q lines: %v; want one error naming %s", msgNotRemoved, recs, first)
	}
}
