package deliver

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prismproxy/prism/internal/cfgerr"
	"github.com/prismproxy/prism/internal/sink/sinktest"
	"github.com/prismproxy/prism/internal/spool"
)

// sideBatches counts the batch files in the side spools under dir.
func sideBatches(t *testing.T, dir string) int {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "incoming", "*", "*.batch"))
	if err != nil {
		t.Fatal(err)
	}
	return len(m)
}

// TestLockedSpoolIsTakenOverWhenItsHolderCloses: a second deliverer on a
// spool the first still holds (a reload's or an upgrade's new job) spools
// its batches beside it at once (durable, so the job's queue never fills
// however long the first drains), then, once the first has closed, moves
// them in and delivers what the first left and its own records: every
// session exactly once, and no side spool left behind.
func TestLockedSpoolIsTakenOverWhenItsHolderCloses(t *testing.T) {
	r := sinktest.NewReceiver(t)
	r.Down() // the first leaves its batches in the spool
	dir := t.TempDir()
	c := httpCfg(r.URL)
	c.FlushTimeout = 100 * time.Millisecond
	first := newDel(t, c, spool.Config{Dir: dir})
	n := writeBatches(t, first, 0, 3)

	second := newDel(t, c, spool.Config{Dir: dir}) // locked: it spools beside
	n2 := writeBatches(t, second, 3, 4)
	if got := sideBatches(t, dir); got != 4 {
		t.Fatalf("%d batches in the side spool while the first holds the spool, want 4", got)
	}
	if st := second.DeliveryStats(); st.Accepted != uint64(n2) || st.Pending != n2 {
		t.Errorf("while waiting: accepted %d, pending %d; want %d each", st.Accepted, st.Pending, n2)
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
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
	if left, _ := os.ReadDir(filepath.Join(dir, "incoming")); len(left) != 0 {
		t.Errorf("side spools left behind: %v", left)
	}
}

// TestLockedSpoolWaitIsBounded: when the holder never lets go, the wait
// ends after SpoolLockWait and the deliverer delivers from its side spool.
func TestLockedSpoolWaitIsBounded(t *testing.T) {
	old := SpoolLockWait
	SpoolLockWait = 100 * time.Millisecond
	defer func() { SpoolLockWait = old }()
	r := sinktest.NewReceiver(t)
	dir := t.TempDir()
	holder := holdSpool(t, dir)
	defer holder.Close()
	d := newDel(t, httpCfg(r.URL), spool.Config{Dir: dir})
	n := writeBatches(t, d, 0, 2)
	if !r.WaitRecords(n, 20*time.Second) {
		t.Fatalf("received %d of %d from the side spool", len(r.Records()), n)
	}
	n += writeBatches(t, d, 2, 1) // after the wait: still spooled, delivered
	if !r.WaitRecords(n, 20*time.Second) {
		t.Fatalf("received %d of %d", len(r.Records()), n)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if got := len(sessions(t, r.Records())); got != n {
		t.Errorf("%d sessions delivered, want %d", got, n)
	}
}

// TestSideSpoolLeftBehindIsTakenInAtTheNextStart: a job that stops while
// still waiting (an upgrade that is rolled back, a crash) leaves its side
// spool; the next job to open the spool takes those batches in and
// delivers them with the holder's.
func TestSideSpoolLeftBehindIsTakenInAtTheNextStart(t *testing.T) {
	r := sinktest.NewReceiver(t)
	r.Down()
	dir := t.TempDir()
	c := httpCfg(r.URL)
	c.FlushTimeout = 100 * time.Millisecond
	first := newDel(t, c, spool.Config{Dir: dir})
	n := writeBatches(t, first, 0, 2)
	waiting := newDel(t, c, spool.Config{Dir: dir})
	n += writeBatches(t, waiting, 2, 3)
	if err := waiting.Close(); err != nil {
		t.Fatal(err)
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	if got := sideBatches(t, dir); got != 3 {
		t.Fatalf("%d batches left in the side spool, want 3", got)
	}
	r.Up()
	next := newDel(t, c, spool.Config{Dir: dir})
	if !r.WaitRecords(n, 20*time.Second) {
		t.Fatalf("received %d of %d", len(r.Records()), n)
	}
	if err := next.Close(); err != nil {
		t.Fatal(err)
	}
	if st := next.DeliveryStats(); st.Restored != uint64(n) {
		t.Errorf("restored %d, want %d", st.Restored, n)
	}
	if got := len(sessions(t, r.Records())); got != n {
		t.Errorf("%d sessions delivered, want %d", got, n)
	}
	if got := sideBatches(t, dir); got != 0 {
		t.Errorf("%d batches still in a side spool", got)
	}
}

// TestLockedSpoolWithoutSideSpoolHoldsWrites: when no side spool can be
// made (here "incoming" is a dangling symlink), a job on a locked spool
// holds its writes until the holder lets go, then delivers everything.
func TestLockedSpoolWithoutSideSpoolHoldsWrites(t *testing.T) {
	r := sinktest.NewReceiver(t)
	dir := t.TempDir()
	if err := os.Symlink(filepath.Join(dir, "gone"), filepath.Join(dir, "incoming")); err != nil {
		t.Fatal(err)
	}
	holder := holdSpool(t, dir)
	d := newDel(t, httpCfg(r.URL), spool.Config{Dir: dir})
	wrote := make(chan error)
	b := sinktest.Batch(t0, 1, 2, 3)
	go func() { wrote <- d.Write(b) }()
	select {
	case err := <-wrote:
		t.Fatalf("a write returned (%v) while the spool was held and no side spool could be made", err)
	case <-time.After(50 * time.Millisecond):
	}
	if err := holder.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-wrote; err != nil {
		t.Fatal(err)
	}
	if !r.WaitRecords(b.Records, 20*time.Second) {
		t.Fatalf("received %d of %d", len(r.Records()), b.Records)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
}

// holdSpool opens the spool in dir, as the pipeline or process a job
// replaces holds it.
func holdSpool(t *testing.T, dir string) *spool.Spool {
	t.Helper()
	c := spool.Config{Dir: dir}
	if err := cfgerr.Prepare(&c); err != nil {
		t.Fatal(err)
	}
	s, _, err := spool.Open(c)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestCloseWhileWaitingForTheSpoolIsPrompt: a job closed while another
// holder still has its spool (a second reload before the first finished)
// has nothing it could deliver, so Close does not wait out the flush
// timeout; its batches stay in the side spool, and the next job to open
// the spool delivers them.
func TestCloseWhileWaitingForTheSpoolIsPrompt(t *testing.T) {
	r := sinktest.NewReceiver(t)
	dir := t.TempDir()
	holder := holdSpool(t, dir)
	c := httpCfg(r.URL)
	c.FlushTimeout = 10 * time.Second
	d := newDel(t, c, spool.Config{Dir: dir})
	n := writeBatches(t, d, 0, 2)
	start := time.Now()
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el >= c.FlushTimeout/2 {
		t.Fatalf("Close took %v waiting for a spool it could not have (flush_timeout %v)", el, c.FlushTimeout)
	}
	if got := sideBatches(t, dir); got != 2 {
		t.Fatalf("%d batches left in the side spool, want 2", got)
	}
	if err := holder.Close(); err != nil {
		t.Fatal(err)
	}
	next := newDel(t, c, spool.Config{Dir: dir})
	if !r.WaitRecords(n, 20*time.Second) {
		t.Fatalf("received %d of %d", len(r.Records()), n)
	}
	if err := next.Close(); err != nil {
		t.Fatal(err)
	}
	if got := len(sessions(t, r.Records())); got != n {
		t.Errorf("%d sessions delivered, want %d", got, n)
	}
}
