package deliver

import (
	"testing"
	"time"

	"github.com/prismproxy/prism/internal/cfgerr"
	"github.com/prismproxy/prism/internal/sink/sinktest"
	"github.com/prismproxy/prism/internal/spool"
)

// TestLockedSpoolIsTakenOverWhenItsHolderCloses: a second deliverer on a
// spool the first still holds (a reload's new job) starts at once, holds
// its writes until the first has closed, then delivers what the first left
// in the spool and its own records: every session exactly once.
func TestLockedSpoolIsTakenOverWhenItsHolderCloses(t *testing.T) {
	r := sinktest.NewReceiver(t)
	r.Down() // the first leaves its batches in the spool
	dir := t.TempDir()
	c := httpCfg(r.URL)
	c.FlushTimeout = 100 * time.Millisecond
	first := newDel(t, c, spool.Config{Dir: dir})
	n := writeBatches(t, first, 0, 3)

	second := newDel(t, c, spool.Config{Dir: dir}) // locked: it waits
	wrote := make(chan error)
	b := sinktest.Batch(t0, 100, 101, 102)
	go func() { wrote <- second.Write(b) }()
	select {
	case <-wrote:
		t.Fatal("the second deliverer wrote into a spool the first still holds")
	case <-time.After(50 * time.Millisecond):
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-wrote; err != nil {
		t.Fatal(err)
	}
	n2 := b.Records
	r.Up()
	if !r.WaitRecords(n+n2, 20*time.Second) {
		t.Fatalf("received %d of %d", len(r.Records()), n+n2)
	}
	if err := second.Close(); err != nil {
		t.Fatal(err)
	}
	if st := second.DeliveryStats(); st.Restored != uint64(n) || st.Delivered != uint64(n+n2) {
		t.Errorf("restored %d, delivered %d; want %d, %d", st.Restored, st.Delivered, n, n+n2)
	}
	recs := r.Records()
	got := sessions(t, recs)
	if len(recs) != n+n2 || len(got) != n+n2 {
		t.Fatalf("%d records of %d sessions, want %d each", len(recs), len(got), n+n2)
	}
}

// TestLockedSpoolWaitIsBounded: when the holder never lets go, the wait
// ends after SpoolLockWait and the writes fail (counted by the job as
// write errors), and Close returns.
func TestLockedSpoolWaitIsBounded(t *testing.T) {
	old := SpoolLockWait
	SpoolLockWait = 100 * time.Millisecond
	defer func() { SpoolLockWait = old }()
	r := sinktest.NewReceiver(t)
	dir := t.TempDir()
	hc := spool.Config{Dir: dir}
	if err := cfgerr.Prepare(&hc); err != nil {
		t.Fatal(err)
	}
	holder, _, err := spool.Open(hc)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	d := newDel(t, httpCfg(r.URL), spool.Config{Dir: dir})
	if err := d.Write(sinktest.Batch(t0, 1, 2)); err == nil {
		t.Fatal("a write into a spool never released succeeded")
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
}
