// Package deliver gets a log job's batches to a remote destination (http,
// s3, kafka) at least once. It sits between the job's batching and the
// destination's Sender and is itself a sink.Destination, so the job hands
// it batches exactly as it hands them to a file.
//
// With a spool (internal/spool), Write makes each batch durable on disk
// (written and fsynced) before the job counts it as accepted; one delivery
// goroutine sends spooled batches oldest first, removes each once the
// destination took it, and starts with what an earlier run left behind.
// Without a spool, a bounded number of batches waits in memory. Either way
// a failed send is retried with exponential backoff and jitter for as long
// as prism runs (a Retry-After is honoured); a batch the destination
// refuses for good is counted as rejected and moved to the spool's
// dead-letter directory. When the spool (or the memory bound) is full,
// batches are dropped by the configured policy and counted by cause.
//
// Nothing here runs on the data path: Write is called by the job's writer
// goroutine, whose queue absorbs (and, beyond its bound, counts) what a
// slow fsync holds up.
package deliver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prismproxy/prism/internal/sink"
	"github.com/prismproxy/prism/internal/sink/httpdst"
	"github.com/prismproxy/prism/internal/sink/kafkadst"
	"github.com/prismproxy/prism/internal/sink/s3dst"
	"github.com/prismproxy/prism/internal/spool"
)

// Stats are a job's delivery counters, in records unless named otherwise.
type Stats struct {
	// Accepted records were spooled (or queued in memory) for delivery.
	Accepted uint64
	// Delivered records the destination acknowledged.
	Delivered uint64
	// Retries counts failed attempts that were tried again (batches).
	Retries uint64
	// Rejected records were in batches the destination refused for good
	// (kept in the spool's dead-letter directory when there is one).
	Rejected uint64
	// Dropped by cause: the spool was full (drop_oldest removed them, or
	// drop_newest refused them); the memory bound was full (no spool);
	// still in memory at shutdown (no spool); a spool file was corrupt
	// (spool.ErrCorrupt) or kept failing to read (maxLoadAttempts), and
	// was moved to the dead-letter directory.
	DroppedSpoolFull  uint64
	DroppedMemoryFull uint64
	DroppedShutdown   uint64
	DroppedCorrupt    uint64
	// Pending records wait for delivery now (spooled or in memory).
	Pending int
	// SpoolBytes is the spool's size now (0 without a spool).
	SpoolBytes int64
	// OldestUndelivered is the time of the oldest pending record (zero
	// when nothing is pending); its age is time.Since(OldestUndelivered).
	OldestUndelivered time.Time
	// Restored records were found in the spool at start (an earlier run's).
	Restored uint64
}

// Dropped is the sum of the drops of every cause.
func (s *Stats) Dropped() uint64 {
	return s.DroppedSpoolFull + s.DroppedMemoryFull + s.DroppedShutdown + s.DroppedCorrupt
}

// New returns the destination c describes: the local stdout and file
// destinations as they are, remote ones wrapped in a Deliverer. c and sp
// are defaulted and validated (by package config, or cfgerr.Prepare; a
// job's validation refuses a spool for a local destination). job names the
// job in log lines; csv says the job writes CSV.
func New(job string, c Config, sp spool.Config, csv bool, logger *slog.Logger) (sink.Destination, error) {
	if !c.Remote() {
		return sink.New(c.File)
	}
	var snd sink.Sender
	var err error
	switch c.Type {
	case TypeHTTP:
		snd, err = httpdst.New(c.HTTP, csv)
	case TypeS3:
		snd, err = s3dst.New(c.S3)
	case TypeKafka:
		snd, err = kafkadst.New(c.Kafka)
	}
	if err != nil {
		return nil, err
	}
	return NewDeliverer(job, snd, c, sp, logger)
}

// Deliverer is a remote destination with retries and an optional spool.
type Deliverer struct {
	job    string
	snd    sink.Sender
	cfg    Config
	sp     *spool.Spool
	logger *slog.Logger
	// spReady, when not nil, is closed once the spool another holder had
	// locked is open (sp set) or waiting for it gave up (spErr set); sp is
	// read only after it is closed.
	spReady chan struct{}
	spErr   error
	// side, while the spool is awaited, is the side spool (spool.OpenSide)
	// that makes the job's batches durable meanwhile; awaitSpool moves
	// them into the spool once it is open (sideMu held for both).
	sideMu sync.Mutex
	side   *spool.Spool

	ctx    context.Context // cancelled when Close gives up
	cancel context.CancelFunc
	wake   chan struct{}
	done   chan struct{}

	closing atomic.Bool

	mu      sync.Mutex
	mem     []*sink.Batch // no spool: pending batches, oldest first
	memRecs int
	free    []*sink.Batch

	cur sink.Batch // the batch being delivered (loaded from the spool)

	accepted, delivered, retries, rejected                atomic.Uint64
	dropSpoolFull, dropMemFull, dropShutdown, dropCorrupt atomic.Uint64
	restored                                              atomic.Uint64
	errMu                                                 sync.Mutex
	lastErr                                               error
}

// NewDeliverer starts delivering to snd, with c and sp as New takes them.
// With sp enabled it opens the spool and starts with the batches already
// in it.
func NewDeliverer(job string, snd sink.Sender, c Config, sp spool.Config, logger *slog.Logger) (*Deliverer, error) {
	if logger == nil {
		logger = slog.Default()
	}
	d := &Deliverer{job: job, snd: snd, cfg: c, logger: logger, wake: make(chan struct{}, 1), done: make(chan struct{})}
	d.ctx, d.cancel = context.WithCancel(context.Background())
	if sp.Enabled() {
		s, corrupt, err := spool.Open(sp)
		switch {
		case errors.Is(err, spool.ErrLocked) && SpoolLockWait > 0:
			// The pipeline a reload replaces, or the process an upgrade
			// replaces, still flushes into it: take it over once it lets go.
			d.spReady = make(chan struct{})
			side, err := spool.OpenSide(sp)
			if err != nil {
				logger.Warn("log job spool: waiting for the previous holder to flush and release it; no side spool, so the job's queue holds the new records meanwhile", "job", job, "dir", sp.Dir, "wait", SpoolLockWait.String(), "err", err)
			} else {
				d.side = side
				logger.Info("log job spool: waiting for the previous holder to flush and release it; new batches are spooled beside it meanwhile", "job", job, "dir", sp.Dir, "side", side.Dir(), "wait", SpoolLockWait.String())
			}
			go d.awaitSpool(sp)
		case err != nil:
			d.cancel()
			snd.Close()
			return nil, err
		default:
			d.adopt(s, corrupt)
		}
	}
	go d.loop()
	return d, nil
}

// SpoolLockWait is how long a new log job waits for a spool directory that
// another pipeline (the one a config reload replaces) or process (the one
// a binary upgrade replaces) holds: that one flushes into it, lets go, and
// the new job opens it with everything left in it. Meanwhile the job's
// batches go to a side spool (spool.OpenSide), moved in once it is open;
// only if that cannot be made does the job's queue hold them (bounded:
// its drops are counted). Past the wait, the job delivers from the side
// spool. 0: fail at once.
var SpoolLockWait = 5 * time.Minute

// spoolRetry is how often a locked spool is tried again.
const spoolRetry = 20 * time.Millisecond

func (d *Deliverer) adopt(s *spool.Spool, corrupt int) {
	d.sp = s
	st := s.Stats()
	d.restored.Store(uint64(st.Records))
	if corrupt > 0 {
		d.logger.Warn("log job spool: unreadable batch files moved to the dead-letter directory", "job", d.job, "files", corrupt, "dir", s.Dir())
	}
	if st.Batches > 0 {
		d.logger.Info("log job spool: delivering batches left by an earlier run", "job", d.job, "batches", st.Batches, "records", st.Records, "bytes", st.Bytes)
	}
}

// awaitSpool opens the locked spool c once its holder lets go, for up to
// SpoolLockWait or until Close gives up.
func (d *Deliverer) awaitSpool(c spool.Config) {
	defer close(d.spReady)
	deadline := time.Now().Add(SpoolLockWait)
	t := time.NewTicker(spoolRetry)
	defer t.Stop()
	for {
		s, corrupt, err := spool.Open(c)
		if err == nil {
			d.adopt(s, corrupt)
			d.sideMu.Lock()
			if d.side != nil {
				n, err := s.Absorb(d.side)
				if err != nil {
					d.setErr(err)
					d.logger.Error("log job spool: moving the side spool's batches in failed; the rest stay beside it for the next start", "job", d.job, "side", d.side.Dir(), "moved_records", n, "err", err)
				}
				d.side = nil
				d.logger.Info("log job spool: taken over", "job", d.job, "dir", c.Dir, "side_records", n)
			} else {
				d.logger.Info("log job spool: taken over", "job", d.job, "dir", c.Dir)
			}
			d.sideMu.Unlock()
			return
		}
		if !errors.Is(err, spool.ErrLocked) || time.Now().After(deadline) {
			d.sideMu.Lock()
			if side := d.side; side != nil {
				// The holder never let go: deliver from the side spool (the
				// next start of the job takes what is left into the spool).
				d.side = nil
				d.sideMu.Unlock()
				d.sp = side
				d.setErr(fmt.Errorf("log job %s: %w", d.job, err))
				d.logger.Error("log job spool: the previous holder never let go; delivering from the side spool", "job", d.job, "dir", c.Dir, "side", side.Dir(), "err", err)
				return
			}
			d.sideMu.Unlock()
			d.spErr = fmt.Errorf("log job %s: %w", d.job, err)
			d.setErr(d.spErr)
			d.logger.Error("log job spool: could not be opened; the job's records are counted as write errors", "job", d.job, "err", err)
			return
		}
		select {
		case <-t.C:
		case <-d.ctx.Done():
			d.spErr = fmt.Errorf("log job %s: closed while waiting for its spool: %w", d.job, err)
			return
		}
	}
}

// spoolNow is the open spool and true, or false while it is awaited.
func (d *Deliverer) spoolNow() (*spool.Spool, bool) {
	if d.spReady == nil {
		return d.sp, true
	}
	select {
	case <-d.spReady:
		return d.sp, true
	default:
		return nil, false
	}
}

// Write accepts b for delivery: spooled and fsynced, or copied into the
// bounded memory queue. It never waits for the destination.
func (d *Deliverer) Write(b *sink.Batch) error {
	if d.spReady != nil {
		select {
		case <-d.spReady:
		default:
			d.sideMu.Lock()
			if side := d.side; side != nil {
				err := d.put(side, b) // delivered once the spool is taken over
				d.sideMu.Unlock()
				return err
			}
			d.sideMu.Unlock()
			<-d.spReady // bounded by SpoolLockWait; the job's queue holds meanwhile
		}
		if d.spErr != nil {
			return d.spErr
		}
	}
	if d.sp != nil {
		err := d.put(d.sp, b)
		d.signal()
		return err
	}
	d.mu.Lock()
	if len(d.mem) >= d.cfg.MemoryBatches {
		d.mu.Unlock()
		d.dropMemFull.Add(uint64(b.Records))
		return nil
	}
	var c *sink.Batch
	if n := len(d.free); n > 0 {
		c = d.free[n-1]
		d.free = d.free[:n-1]
	} else {
		c = new(sink.Batch)
	}
	copyBatch(c, b)
	d.mem = append(d.mem, c)
	d.memRecs += c.Records
	d.mu.Unlock()
	d.accepted.Add(uint64(b.Records))
	d.signal()
	return nil
}

// put spools b in s, counting what it accepted and what the policy dropped.
func (d *Deliverer) put(s *spool.Spool, b *sink.Batch) error {
	acc, evicted, err := s.Put(b)
	if evicted > 0 {
		d.dropSpoolFull.Add(uint64(evicted))
	}
	if err != nil {
		return fmt.Errorf("log job %s: %w", d.job, err)
	}
	if acc == 0 {
		d.dropSpoolFull.Add(uint64(b.Records))
		return nil
	}
	d.accepted.Add(uint64(acc))
	return nil
}

func copyBatch(dst, src *sink.Batch) {
	dst.Reset()
	dst.Header = src.Header // immutable, shared by every batch of the job
	dst.Data = append(dst.Data, src.Data...)
	dst.Ends = append(dst.Ends, src.Ends...)
	dst.Keys = append(dst.Keys, src.Keys...)
	dst.Records, dst.First, dst.Last = src.Records, src.First, src.Last
	dst.Prefix, dst.Suffix, dst.Delim = src.Prefix, src.Suffix, src.Delim // job constants
}

func (d *Deliverer) signal() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// loop is the delivery goroutine.
func (d *Deliverer) loop() {
	defer close(d.done)
	if d.spReady != nil {
		select {
		case <-d.spReady:
		case <-d.ctx.Done():
			return
		}
	}
	loadBackoff := d.cfg.Retry.Initial
	// loadFails counts the reads of batch loadSeq that failed with an error
	// of its file; a batch read or moved aside leaves the spool, so another
	// oldest starts the count again (as does one drop_oldest put first).
	loadFails := 0
	var loadSeq uint64
	for {
		if d.ctx.Err() != nil {
			return
		}
		if d.sp != nil {
			e, ok := d.sp.Oldest()
			if ok {
				if err := loadBatch(d.sp, e, &d.cur); err != nil {
					d.setErr(fmt.Errorf("log job %s: %w", d.job, err))
					if !errors.Is(err, spool.ErrCorrupt) {
						// Too many open files, an I/O error: the batch may
						// well be good. It stays the oldest, loaded again
						// after the backoff: for as long as a shortage
						// lasts (every batch would fail the same way), up
						// to maxLoadAttempts reads for an error of its
						// file (a bad sector), lest it hold up every batch
						// behind it until the spool is full.
						if e.Seq != loadSeq {
							loadSeq, loadFails = e.Seq, 0
						}
						if !spool.IsShortage(err) {
							loadFails++
						}
						if loadFails < maxLoadAttempts {
							d.logger.Warn("log job spool: reading a batch failed; trying again", "job", d.job, "file", d.sp.Path(e), "records", e.Records, "err", err)
							if !d.sleep(jitter(loadBackoff)) {
								return // stays spooled for the next start
							}
							loadBackoff = min(loadBackoff*2, d.cfg.Retry.Max)
							continue
						}
						d.logger.Error("log job spool: a batch that could not be read moved to the dead-letter directory", "job", d.job, "file", d.sp.Path(e), "records", e.Records, "attempts", loadFails, "err", err)
					} else {
						d.logger.Warn("log job spool: unreadable batch moved to the dead-letter directory", "job", d.job, "file", d.sp.Path(e), "records", e.Records, "err", err)
					}
					if !d.deadLetter(e) {
						return
					}
					d.dropCorrupt.Add(uint64(e.Records))
					continue
				}
				loadBackoff = d.cfg.Retry.Initial
				switch d.deliver(&d.cur) {
				case outDelivered:
					if err := d.sp.Remove(e); err != nil {
						// Not sent again in this run (it left the index);
						// the file left behind is, at the next start.
						d.setErr(fmt.Errorf("log job %s: %w", d.job, err))
						d.logger.Error("log job spool: a delivered batch's file could not be removed; it is sent again at the next start", "job", d.job, "file", d.sp.Path(e), "records", e.Records, "err", err)
					}
				case outRejected:
					if !d.deadLetter(e) {
						return // stays spooled: sent again at the next start
					}
				case outStopped:
					return // stays spooled for the next start
				}
				continue
			}
		} else {
			d.mu.Lock()
			var b *sink.Batch
			if len(d.mem) > 0 {
				b = d.mem[0]
			}
			d.mu.Unlock()
			if b != nil {
				out := d.deliver(b)
				if out == outStopped {
					return
				}
				d.mu.Lock()
				d.mem = d.mem[1:]
				d.memRecs -= b.Records
				d.free = append(d.free, b)
				d.mu.Unlock()
				continue
			}
		}
		if d.closing.Load() {
			return // everything delivered
		}
		select {
		case <-d.wake:
		case <-d.ctx.Done():
			return
		}
	}
}

// loadBatch is Spool.Load. A test replaces it to make a read fail as a
// disk can (EIO, EMFILE), which no file a test can make does.
var loadBatch = (*spool.Spool).Load

// maxLoadAttempts bounds the reads of a spooled batch whose file fails to
// read with an error of its own (not corrupt, not a shortage: see
// spool.IsShortage): the first and 4 more after the backoff (7.5 to 15 s
// with the default retry), then it is moved to the dead-letter directory
// and counted as corrupt, and delivery goes on with the next batch.
const maxLoadAttempts = 5

type outcome int

const (
	outDelivered outcome = iota
	outRejected
	outStopped
)

// deliver sends b until it is delivered, rejected, or Close gives up.
func (d *Deliverer) deliver(b *sink.Batch) outcome {
	backoff := d.cfg.Retry.Initial
	for {
		err := d.snd.Send(d.ctx, b)
		if err == nil {
			d.delivered.Add(uint64(b.Records))
			return outDelivered
		}
		if d.ctx.Err() != nil {
			return outStopped
		}
		d.setErr(err)
		if sink.IsRejected(err) {
			d.rejected.Add(uint64(b.Records))
			d.logger.Warn("log job destination rejected a batch", "job", d.job, "records", b.Records, "err", err, "kept", d.sp != nil)
			return outRejected
		}
		d.retries.Add(1)
		wait := jitter(backoff)
		if after, ok := sink.RetryAfter(err); ok {
			wait = min(max(wait, after), 5*time.Minute)
		}
		backoff = min(backoff*2, d.cfg.Retry.Max)
		if !d.sleep(wait) {
			return outStopped
		}
	}
}

// deadLetter moves e (rejected, or unreadable) to the spool's dead-letter
// directory. While that fails (the directory cannot be made, a full or
// read-only disk) it tries again with backoff: the batch stays spooled and
// the oldest, and is not sent again. It returns false when Close gives up
// first; the batch then stays in the spool for the next start.
func (d *Deliverer) deadLetter(e spool.Entry) bool {
	backoff := d.cfg.Retry.Initial
	for {
		err := d.sp.DeadLetter(e)
		if err == nil {
			return true
		}
		d.setErr(fmt.Errorf("log job %s: %w", d.job, err))
		d.logger.Error("log job spool: moving a batch to the dead-letter directory failed; trying again", "job", d.job, "records", e.Records, "err", err)
		if !d.sleep(jitter(backoff)) {
			return false
		}
		backoff = min(backoff*2, d.cfg.Retry.Max)
	}
}

// jitter is a wait of about b: half fixed, half random.
func jitter(b time.Duration) time.Duration { return b/2 + rand.N(b/2+1) }

// sleep waits for wait, or until Close gives up (false).
func (d *Deliverer) sleep(wait time.Duration) bool {
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-d.ctx.Done():
		return false
	}
}

func (d *Deliverer) setErr(err error) {
	d.errMu.Lock()
	d.lastErr = err
	d.errMu.Unlock()
}

// LastError is the most recent delivery error (nil if none yet).
func (d *Deliverer) LastError() error {
	d.errMu.Lock()
	defer d.errMu.Unlock()
	return d.lastErr
}

// DeliveryStats returns the counters.
func (d *Deliverer) DeliveryStats() Stats {
	st := Stats{
		Accepted: d.accepted.Load(), Delivered: d.delivered.Load(), Retries: d.retries.Load(),
		Rejected: d.rejected.Load(), DroppedSpoolFull: d.dropSpoolFull.Load(),
		DroppedMemoryFull: d.dropMemFull.Load(), DroppedShutdown: d.dropShutdown.Load(),
		DroppedCorrupt: d.dropCorrupt.Load(), Restored: d.restored.Load(),
	}
	sp, ready := d.spoolNow()
	if !ready { // awaited: what waits is in the side spool, if there is one
		d.sideMu.Lock()
		sp = d.side
		d.sideMu.Unlock()
	}
	if sp != nil {
		ss := sp.Stats()
		st.Pending, st.SpoolBytes, st.OldestUndelivered = ss.Records, ss.Bytes, ss.Oldest
	} else if d.spReady == nil {
		d.mu.Lock()
		st.Pending = d.memRecs
		if len(d.mem) > 0 {
			st.OldestUndelivered = d.mem[0].First
		}
		d.mu.Unlock()
	}
	return st
}

// Close delivers what is pending for up to the flush timeout, then stops:
// spooled batches stay for the next start; batches in memory are counted
// as dropped at shutdown. A deliverer still waiting for its spool (after
// one more try to open it) stops at once: it has nothing it could deliver (its batches are in the side
// spool, on disk, which the next job to open the spool takes in; the
// memory queue is not used with a spool), and the flush timeout would
// only hold up the shutdown or reload that closes it.
func (d *Deliverer) Close() error {
	d.closing.Store(true)
	if _, ready := d.spoolNow(); !ready {
		// The holder may just have let go: a reload closes the replaced
		// job right before, and a shutdown may follow at once. The wait
		// tries again every spoolRetry; give it that try, then deliver
		// as usual, rather than leave the batches beside the spool.
		t := time.NewTimer(2 * spoolRetry)
		select {
		case <-d.spReady:
		case <-t.C:
			d.cancel()
		}
		t.Stop()
	}
	d.signal()
	t := time.NewTimer(d.cfg.FlushTimeout)
	select {
	case <-d.done:
		t.Stop()
	case <-t.C:
		d.cancel()
		<-d.done
	}
	d.cancel()
	if d.spReady != nil {
		<-d.spReady // awaitSpool returns at once after cancel
	}
	d.sideMu.Lock()
	if side := d.side; side != nil { // closed while still waiting
		if st := side.Stats(); st.Batches > 0 {
			d.logger.Warn("log job: batches stay in the side spool; the next start of the job takes them into its spool", "job", d.job, "batches", st.Batches, "records", st.Records, "dir", side.Dir())
		}
		_ = side.Close()
		d.side = nil
	}
	d.sideMu.Unlock()
	var err error
	if d.sp != nil {
		if st := d.sp.Stats(); st.Batches > 0 {
			d.logger.Warn("log job: undelivered batches stay in the spool for the next start", "job", d.job, "batches", st.Batches, "records", st.Records, "dir", d.sp.Dir(), "err", d.LastError())
		}
		err = d.sp.Close()
	} else {
		d.mu.Lock()
		if d.memRecs > 0 {
			d.dropShutdown.Add(uint64(d.memRecs))
			why := "the destination had not answered" // slow, not failing: no error to name
			if le := d.LastError(); le != nil {
				why = le.Error()
			}
			err = fmt.Errorf("log job %s: %d records not delivered before the flush timeout (no spool): %s", d.job, d.memRecs, why)
			d.mem, d.memRecs = nil, 0
		}
		d.mu.Unlock()
	}
	if e := d.snd.Close(); e != nil && err == nil {
		err = e
	}
	return err
}
