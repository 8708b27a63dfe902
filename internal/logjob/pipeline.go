// Package logjob runs log jobs, the Logpush model (spec §6): each job reads
// the one stream of canonical events, filters, samples, renders it into its
// dataset's shape and ships batches to its destination.
//
// The data path only ever calls (*Pipeline).Emit, which copies the event
// into each interested job's bounded queue and returns: it never blocks and
// never waits for a destination. A full queue drops the event and counts it
// (per job); drops are reported in the proxy's own log, rate-limited, so a
// loss is never silent.
//
// Per job, one goroutine consumes the queue, walks the event.Registry on the
// job's interval for periodic records (EdgeOne), keeps the per-session
// "last reported" byte totals that turn totals into deltas, and cuts
// batches; a second goroutine writes batches to the destination, so a slow
// destination stalls only that job. Walking the registry and consuming the
// queue on the same goroutine is what guarantees that no periodic record of
// a session follows its final record (see event.Registry).
package logjob

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prismproxy/prism/internal/deliver"
	"github.com/prismproxy/prism/internal/event"
	"github.com/prismproxy/prism/internal/render"
)

// Pipeline runs a node's log jobs. It implements event.Emitter.
type Pipeline struct {
	jobs   []*job
	node   render.Node
	logger *slog.Logger
	// fresh are the jobs this pipeline built; the others it takes over from
	// the pipeline it was built from (Next) when it starts.
	fresh []*job

	mu      sync.Mutex
	started bool // under mu
	closing bool // under mu

	closed    atomic.Bool
	closeOnce sync.Once
	repStop   chan struct{}
	repDone   chan struct{}
	// reportEvery is the drop-report period (10s; tests shorten it).
	reportEvery time.Duration
}

var _ event.Emitter = (*Pipeline)(nil)

// New opens the destinations of jobs, defaulted and validated (by package
// config, or cfgerr.Prepare(Jobs(jobs))), and starts them. reg is the
// registry of open sessions that periodic jobs walk; it may be nil when no
// job has an interval.
func New(node render.Node, jobs []Config, reg *event.Registry, logger *slog.Logger) (*Pipeline, error) {
	return newPipeline(node, jobs, reg, logger, 10*time.Second)
}

func newPipeline(node render.Node, jobs []Config, reg *event.Registry, logger *slog.Logger, reportEvery time.Duration) (*Pipeline, error) {
	p, err := build(nil, node, jobs, reg, logger, reportEvery)
	if err != nil {
		return nil, err
	}
	p.Start()
	return p, nil
}

// Next builds the pipeline that replaces p after a reload to jobs and
// node, as New would, except that it takes over every job of p whose
// config (and the node) did not change: the same job, with its queue, its
// counters and the byte totals it last reported per open session, so that
// it goes on as if there had been no reload (its deltas stay exact and its
// Stats keep counting). The other jobs are new; those of p that changed or
// went away stay p's.
//
// Next changes nothing in p, and the new pipeline does not run its new
// jobs yet: make it the one the data path emits to, then call Start (which
// takes the unchanged jobs over), then Close p, which then writes what its
// remaining jobs hold and stops them only. A pipeline that is never
// started can be closed: it closes the destinations it opened. p must not
// be closed before Start.
func (p *Pipeline) Next(node render.Node, jobs []Config, reg *event.Registry) (*Pipeline, error) {
	return build(p, node, jobs, reg, p.logger, p.reportEvery)
}

func build(prev *Pipeline, node render.Node, jobs []Config, reg *event.Registry, logger *slog.Logger, reportEvery time.Duration) (*Pipeline, error) {
	if logger == nil {
		logger = slog.Default()
	}
	cfgs := make([]Config, len(jobs))
	copy(cfgs, jobs)
	p := &Pipeline{
		node:        node,
		logger:      logger,
		repStop:     make(chan struct{}),
		repDone:     make(chan struct{}),
		reportEvery: reportEvery,
	}
	running := map[string]*job{}
	if prev != nil && prev.node == node && !prev.closed.Load() {
		for _, j := range prev.owned() {
			running[j.cfg.Name] = j
		}
	}
	for i := range cfgs {
		if o := running[cfgs[i].Name]; o != nil && reflect.DeepEqual(*o.cfg, cfgs[i]) {
			delete(running, cfgs[i].Name)
			p.jobs = append(p.jobs, o)
			continue
		}
		j, err := newJob(node, &cfgs[i], reg, logger)
		if err != nil {
			for _, o := range p.fresh {
				_ = o.dest.Close()
			}
			return nil, fmt.Errorf("log job %q: %w", cfgs[i].Name, err)
		}
		p.jobs = append(p.jobs, j)
		p.fresh = append(p.fresh, j)
	}
	return p, nil
}

// Start runs the pipeline's new jobs and takes over the ones it shares with
// the pipeline it was built from (see Next). New's pipeline is started
// already. A job's periodic records begin here: call Start once the data
// path emits to p, so that a job a reload changed does not walk the open
// sessions while the old one still gets their events.
func (p *Pipeline) Start() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.started || p.closing {
		return
	}
	p.started = true
	for _, j := range p.jobs {
		j.owner.Store(p)
	}
	for _, j := range p.fresh {
		go j.run()
		go j.write()
	}
	go p.reporter()
}

// owned are the jobs p runs: all of them, except those a newer pipeline
// took over, and none before Start.
func (p *Pipeline) owned() []*job {
	var out []*job
	for _, j := range p.jobs {
		if j.owner.Load() == p {
			out = append(out, j)
		}
	}
	return out
}

// Emit offers e to every job whose dataset wants its type. It copies e,
// never blocks, and counts the event as dropped for a job whose queue is
// full (or after Close).
func (p *Pipeline) Emit(e *event.Event) {
	closed := p.closed.Load()
	for _, j := range p.jobs {
		if !j.wants[e.Type&7] {
			continue
		}
		if closed {
			j.st.dropped.Add(1)
			continue
		}
		if !j.q.push(e) {
			j.st.dropped.Add(1)
		}
	}
}

// Close stops the jobs after they have rendered everything already queued,
// flushes every batch to its destination and closes the destinations. Call
// it after the data path has emitted its last event (at shutdown, after the
// drain): events emitted later are counted as dropped. It returns an error
// naming the jobs that could not finish before ctx ended. Jobs a newer
// pipeline took over (Next, Start) are that one's: they keep running.
func (p *Pipeline) Close(ctx context.Context) error {
	p.closeOnce.Do(func() {
		p.closed.Store(true)
		p.mu.Lock()
		p.closing = true
		started := p.started
		p.mu.Unlock()
		if !started {
			for _, j := range p.fresh { // never ran
				if err := j.dest.Close(); err != nil {
					j.closeErr = err
				}
				close(j.done)
			}
			close(p.repStop)
			close(p.repDone)
			return
		}
		for _, j := range p.owned() {
			j.end()
		}
	})
	var errs []error
	for _, j := range p.owned() {
		select {
		case <-j.done:
		case <-ctx.Done():
		}
		// Once ctx is done (another job was stuck), both cases are ready
		// for a job that did finish: look at done itself before naming it.
		select {
		case <-j.done:
			if j.closeErr != nil {
				errs = append(errs, fmt.Errorf("log job %q: %w", j.cfg.Name, j.closeErr))
			}
		default:
			errs = append(errs, fmt.Errorf("log job %q: not flushed (%d events queued): %w", j.cfg.Name, j.q.len(), ctx.Err()))
		}
	}
	select {
	case <-p.repStop:
	default:
		close(p.repStop)
	}
	<-p.repDone
	return errors.Join(errs...)
}

// Reopen reopens every file destination (call it on SIGHUP after an
// external log rotation).
func (p *Pipeline) Reopen() error {
	var errs []error
	for _, j := range p.jobs {
		if r, ok := j.dest.(interface{ Reopen() error }); ok {
			if err := r.Reopen(); err != nil {
				errs = append(errs, fmt.Errorf("log job %q: %w", j.cfg.Name, err))
			}
		}
	}
	return errors.Join(errs...)
}

// Stats are one job's counters since it started.
type Stats struct {
	Job     string
	Dataset string
	// Emitted counts events offered to the job (of types its dataset
	// writes) plus periodic snapshots it took.
	Emitted uint64
	// Dropped counts events lost because the queue was full (or the
	// pipeline was closed).
	Dropped uint64
	// Filtered and SampledOut count records the filter or the sample rate
	// left out.
	Filtered   uint64
	SampledOut uint64
	// Written counts records the destination accepted (for http, s3 and
	// kafka: accepted for delivery, spooled or queued; Delivery says what
	// was delivered).
	Written uint64
	// WriteErrors counts records in batches the destination failed to write.
	WriteErrors uint64
	// Queued is the number of events waiting right now.
	Queued int
	// Delivery holds the delivery counters of a remote destination (http,
	// s3, kafka): accepted, delivered, retried, rejected, dropped by cause,
	// spool bytes and the oldest undelivered record. Nil for stdout and
	// file, where Written is the whole story.
	Delivery *deliver.Stats
}

// deliveryStats is implemented by remote destinations (deliver.Deliverer).
type deliveryStats interface {
	DeliveryStats() deliver.Stats
	LastError() error
}

// Stats returns every job's counters, in configuration order, except the
// jobs a newer pipeline took over (Next, Start): those are its, and it
// reports them. So after a reload the replaced pipeline's Stats are those
// of the jobs it retired, and a job taken over is counted once.
func (p *Pipeline) Stats() []Stats {
	p.mu.Lock()
	started := p.started
	p.mu.Unlock()
	out := make([]Stats, 0, len(p.jobs))
	for _, j := range p.jobs {
		if started && j.owner.Load() != p {
			continue
		}
		out = append(out, Stats{
			Job:         j.cfg.Name,
			Dataset:     j.cfg.Dataset,
			Emitted:     j.st.received.Load() + uint64(j.q.len()) + j.st.dropped.Load(),
			Dropped:     j.st.dropped.Load(),
			Filtered:    j.st.filtered.Load(),
			SampledOut:  j.st.sampled.Load(),
			Written:     j.st.written.Load(),
			WriteErrors: j.st.writeErrs.Load(),
			Queued:      j.q.len(),
		})
		if ds, ok := j.dest.(deliveryStats); ok {
			st := ds.DeliveryStats()
			out[len(out)-1].Delivery = &st
		}
	}
	return out
}

// reporter logs drops and write errors at most once per reportEvery, with
// the count since the previous report, and once more at Close. It reports
// the jobs p runs; a job taken over by a newer pipeline is reported by
// that one's reporter, from where this one left off (job.rep).
func (p *Pipeline) reporter() {
	defer close(p.repDone)
	t := time.NewTicker(p.reportEvery)
	defer t.Stop()
	report := func() {
		for _, j := range p.owned() {
			p.report(j)
		}
	}
	for {
		select {
		case <-t.C:
			report()
		case <-p.repStop:
			for _, j := range p.owned() {
				select {
				case <-j.done:
				case <-time.After(100 * time.Millisecond):
				}
			}
			report()
			return
		}
	}
}

// report logs what changed in j's counters since the last report.
func (p *Pipeline) report(j *job) {
	r := &j.rep
	r.mu.Lock()
	defer r.mu.Unlock()
	d, w := j.st.dropped.Load(), j.st.writeErrs.Load()
	if d > r.dropped {
		p.logger.Warn("log job dropped records: its queue was full",
			"job", j.cfg.Name, "dropped", d-r.dropped, "dropped_total", d, "queue_size", j.q.cap())
	}
	if w > r.writeErrs {
		p.logger.Warn("log job lost records: the destination failed to write them",
			"job", j.cfg.Name, "lost", w-r.writeErrs, "lost_total", w, "err", j.lastWriteErr())
	}
	r.dropped, r.writeErrs = d, w
	if ds, ok := j.dest.(deliveryStats); ok {
		p.reportDelivery(j.cfg.Name, &r.delivery, ds)
	}
}

// reportDelivery logs what changed in a remote destination's counters
// since prev: drops by cause and rejections as warnings, and, while the
// destination is behind (retrying, or records pending for longer than a
// report period), one line with the backlog.
func (p *Pipeline) reportDelivery(job string, prev *deliver.Stats, ds deliveryStats) {
	st := ds.DeliveryStats()
	if dr := st.Dropped() - prev.Dropped(); dr > 0 {
		p.logger.Warn("log job dropped records before delivery", "job", job, "dropped", dr,
			"spool_full_total", st.DroppedSpoolFull, "memory_full_total", st.DroppedMemoryFull,
			"shutdown_total", st.DroppedShutdown, "corrupt_total", st.DroppedCorrupt)
	}
	if rj := st.Rejected - prev.Rejected; rj > 0 {
		p.logger.Warn("log job destination rejected records", "job", job, "rejected", rj, "rejected_total", st.Rejected, "err", ds.LastError())
	}
	behind := !st.OldestUndelivered.IsZero() && time.Since(st.OldestUndelivered) > p.reportEvery
	if st.Retries > prev.Retries || behind {
		p.logger.Warn("log job delivery is behind", "job", job, "pending", st.Pending,
			"oldest_undelivered_age", durationSince(st.OldestUndelivered).String(), "spool_bytes", st.SpoolBytes,
			"retries", st.Retries-prev.Retries, "delivered_total", st.Delivered, "err", ds.LastError())
	}
	*prev = st
}

func durationSince(t time.Time) time.Duration {
	if t.IsZero() {
		return 0
	}
	return time.Since(t).Round(time.Millisecond)
}
