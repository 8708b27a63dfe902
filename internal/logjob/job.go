package logjob

import (
	"encoding/binary"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prismproxy/prism/internal/deliver"
	"github.com/prismproxy/prism/internal/event"
	"github.com/prismproxy/prism/internal/render"
	"github.com/prismproxy/prism/internal/sink"
)

// batchesInFlight bounds the batches handed to the writer goroutine and not
// yet written; when the destination is this far behind, the job goroutine
// waits, its queue fills, and Emit starts counting drops.
const batchesInFlight = 4

// pruneAfterWalks forgets a session's last-reported totals when the session
// has been missing from the registry for this many walks without its final
// record arriving (its terminal event was dropped). Only walks at which the
// job had read everything queued at the previous walk count (see walk): a
// terminal event still waiting in a backed-up queue keeps its baseline.
const pruneAfterWalks = 3

// counters are a job's statistics. dropped is written by the data path
// (Emit); the others by the job's goroutines, so they sit on another cache
// line. Events accepted into the queue are counted when consumed
// (received), which keeps Emit to a single CAS on the happy path.
type counters struct {
	dropped                                         atomic.Uint64
	_                                               [56]byte
	received, filtered, sampled, written, writeErrs atomic.Uint64
}

// reportState is what the drop reporter last logged for a job. It lives
// with the job, not the pipeline, so that the pipeline that takes the job
// over goes on from there rather than log the job's drops again.
type reportState struct {
	mu        sync.Mutex
	dropped   uint64
	writeErrs uint64
	delivery  deliver.Stats
}

// lastReport is what a job last reported for one open session.
type lastReport struct {
	client, origin int64  // totals at the last written record
	gen            uint64 // j.gen when the session was last seen open
}

type job struct {
	cfg    *Config
	enc    *render.Encoder
	filter *Filter
	dest   sink.Destination
	reg    *event.Registry
	logger *slog.Logger
	wants  [8]bool

	q  *queue
	st counters

	// stop ends the job (it drains its queue first); the pipeline that owns
	// the job closes it. A reload's new pipeline takes over the jobs that
	// did not change (Pipeline.Next), so a job may outlive the pipeline
	// that started it.
	stop     chan struct{}
	stopOnce sync.Once
	owner    atomic.Pointer[Pipeline]
	rep      reportState

	// Owned by the run goroutine.
	cur    event.Event
	deltas bool
	// connects: the job walks the registry and its dataset writes a
	// record at connect (ocsf). Its walks then skip a session until its
	// connect event has come through the queue (see walk).
	connects bool
	last     map[event.ID]lastReport
	gen      uint64 // walks that count toward pruning
	walkHead uint64 // the queue's head at the last walk
	lives    []*event.Live
	sample   uint64 // keep a session when hash(id) < sample; MaxUint64 keeps all
	batch    *sink.Batch
	timerOn  bool
	batches  chan *sink.Batch
	free     chan *sink.Batch
	done     chan struct{}
	closeErr error

	errMu   sync.Mutex
	lastErr error
}

func newJob(node render.Node, cfg *Config, reg *event.Registry, logger *slog.Logger) (*job, error) {
	opt, err := cfg.encoderOptions()
	if err != nil {
		return nil, err
	}
	enc, err := render.NewEncoder(cfg.Dataset, node, opt)
	if err != nil {
		return nil, err
	}
	filter, err := CompileFilter(string(cfg.Filter), enc)
	if err != nil {
		return nil, err
	}
	if cfg.Interval > 0 && reg == nil {
		reg = new(event.Registry) // nothing to walk; keeps run simple
	}
	dest, err := newDestination(cfg, logger)
	if err != nil {
		return nil, err
	}
	j := &job{
		cfg:     cfg,
		enc:     enc,
		filter:  filter,
		dest:    dest,
		reg:     reg,
		logger:  logger,
		q:       newQueue(cfg.QueueSize),
		deltas:  render.Periodic(cfg.Dataset),
		last:    make(map[event.ID]lastReport),
		batches: make(chan *sink.Batch, batchesInFlight),
		free:    make(chan *sink.Batch, batchesInFlight+2),
		done:    make(chan struct{}),
		stop:    make(chan struct{}),
	}
	for t := range j.wants {
		j.wants[t] = enc.Wants(event.Type(t))
	}
	j.connects = cfg.Interval > 0 && j.deltas && j.wants[event.Connect]
	if j.connects {
		// The sessions open now had their connect emitted before this job
		// could receive it (Emit precedes Registry.Add, and the job is not
		// reachable yet): it never comes, and they are walked from the
		// start, with nothing reported yet.
		reg.Range(func(l *event.Live) bool {
			j.last[l.Base().SessionID] = lastReport{}
			return true
		})
	}
	rate := *cfg.SampleRate
	if rate >= 1 {
		j.sample = math.MaxUint64
	} else {
		j.sample = uint64(rate * (1 << 63) * 2)
	}
	return j, nil
}

// newDestination is a variable so tests can plug in slow or failing
// destinations.
var newDestination = func(cfg *Config, logger *slog.Logger) (sink.Destination, error) {
	return deliver.New(cfg.Name, cfg.Destination, cfg.Spool, cfg.OutputType == "csv", logger)
}

// run is the job goroutine: queue, periodic walks, batch deadlines. It
// reads the queue in chunks, checking its timers between chunks so that a
// busy queue does not starve periodic records or batch deadlines, and parks
// only when the queue is empty.
func (j *job) run() {
	stop := j.stop
	defer close(j.batches)
	var tick <-chan time.Time
	if j.cfg.Interval > 0 {
		t := time.NewTicker(j.cfg.Interval)
		defer t.Stop()
		tick = t.C
	}
	flush := time.NewTimer(time.Hour)
	flush.Stop()
	defer flush.Stop()
	const chunk = 256
	for {
		n := 0
		for n < chunk && j.q.pop(&j.cur) {
			j.handle(&j.cur)
			n++
		}
		j.armFlush(flush)
		if n == chunk {
			select {
			case now := <-tick:
				j.walk(now)
			case <-flush.C:
				j.timerOn = false
				j.flush()
			case <-stop:
				j.drain()
				return
			default:
			}
			continue
		}
		if !j.q.prepareSleep() {
			continue
		}
		select {
		case <-j.q.wake:
		case now := <-tick:
			j.walk(now)
		case <-flush.C:
			j.timerOn = false
			j.flush()
		case <-stop:
			j.q.sleeping.Store(false)
			j.drain()
			return
		}
		j.q.sleeping.Store(false)
		j.armFlush(flush)
	}
}

// armFlush keeps the batch deadline timer running exactly while a batch is
// open.
func (j *job) armFlush(flush *time.Timer) {
	if j.batch != nil && !j.timerOn {
		flush.Reset(j.cfg.Batch.MaxInterval)
		j.timerOn = true
	} else if j.batch == nil && j.timerOn {
		flush.Stop()
		j.timerOn = false
	}
}

// drain renders everything still queued and ships the last batch.
func (j *job) drain() {
	for j.q.pop(&j.cur) {
		j.handle(&j.cur)
	}
	j.flush()
}

// walk takes a periodic record of every open session. The registry's
// shard locks are held only to collect the sessions.
//
// The data path emits a session's connect event before it adds the session
// to the registry, so a walk can find a session whose connect is still in
// this job's queue (it is backed up, or just not read yet). A job that
// writes connect records skips such a session, which has no entry in
// j.last yet: a periodic record written now would come before the connect
// record, and the connect's delta would be negative. Sessions that were
// open before the job was built are in j.last from the start (newJob).
//
// A walk counts toward forgetting sessions that left the registry without
// a final record (pruneAfterWalks) only when the job has read every event
// that was queued at the previous walk. A session leaves the registry just
// before its terminal event is emitted; while the queue is behind, that
// event may still be waiting in it, and forgetting the session's totals
// would make the final delta its whole total again.
func (j *job) walk(now time.Time) {
	caughtUp := j.q.tail.Load() >= j.walkHead
	if caughtUp {
		j.gen++
	}
	j.reg.Range(func(l *event.Live) bool {
		j.lives = append(j.lives, l)
		return true
	})
	j.walkHead = j.q.head.Load()
	for _, l := range j.lives {
		if j.connects {
			if _, ok := j.last[l.Base().SessionID]; !ok {
				continue
			}
		}
		j.cur = l.Snapshot(now)
		j.handle(&j.cur)
	}
	clear(j.lives)
	j.lives = j.lives[:0]
	if !caughtUp {
		return
	}
	for id, lr := range j.last {
		if j.gen-lr.gen > pruneAfterWalks {
			delete(j.last, id)
		}
	}
}

// handle turns one event into (at most) one record.
func (j *job) handle(e *event.Event) {
	j.st.received.Add(1)
	terminal := e.Type.Terminal()
	var lr lastReport
	var had bool
	if j.deltas {
		lr, had = j.last[e.SessionID]
		e.ClientBytesDelta = e.ClientBytes - lr.client
		e.OriginBytesDelta = e.OriginBytes - lr.origin
		if !terminal {
			// Seen open now (a connect counts: walks skip the session, or
			// miss it until the data path adds it to the registry).
			lr.gen = j.gen
		}
	}
	keep := j.keep(e)
	if j.deltas {
		if keep && !terminal {
			lr.client, lr.origin = e.ClientBytes, e.OriginBytes
		}
		switch {
		case terminal:
			delete(j.last, e.SessionID)
		case j.cfg.Interval == 0 && lr.client == 0 && lr.origin == 0:
			// A job that does not walk never prunes: a session whose
			// terminal event is dropped would stay in j.last for good.
			// No entry is the same zero baseline, and connect events
			// carry no bytes, so such a job keeps none for them.
			if had {
				delete(j.last, e.SessionID)
			}
		default:
			j.last[e.SessionID] = lr // still open (filtered out: keep it from being pruned)
		}
	}
	if !keep {
		return
	}
	if j.batch == nil {
		j.batch = j.newBatch()
	}
	b := j.batch
	start := len(b.Data)
	b.Data = j.enc.Append(b.Data, e)
	if len(b.Data) > j.cfg.Batch.MaxBytes && b.Records > 0 {
		// The record does not fit: ship the batch without it, start the
		// next one with it.
		next := j.newBatch()
		next.Data = append(next.Data, b.Data[start:]...)
		b.Data = b.Data[:start]
		j.send(b)
		j.batch = next
		b = next
	}
	b.Records++
	b.Ends = append(b.Ends, uint32(len(b.Data)))
	b.Keys = append(b.Keys, e.SessionID)
	if b.First.IsZero() {
		b.First = e.Time
	}
	b.Last = e.Time
	if b.Records >= j.cfg.Batch.MaxRecords || len(b.Data) >= j.cfg.Batch.MaxBytes {
		j.flush()
	}
}

// keep applies the filter, then the sample rate.
func (j *job) keep(e *event.Event) bool {
	if j.filter != nil {
		j.enc.Bind(e)
		ok := j.filter.Match(j.enc)
		j.enc.Unbind()
		if !ok {
			j.st.filtered.Add(1)
			return false
		}
	}
	if j.sample != math.MaxUint64 && sessionHash(&e.SessionID) >= j.sample {
		j.st.sampled.Add(1)
		return false
	}
	return true
}

// sessionHash spreads a session id over uint64, so that sampling keeps or
// drops all records of a session together (a connect without its
// disconnect, or half of a session's deltas, would mislead).
func sessionHash(id *event.ID) uint64 {
	x := binary.LittleEndian.Uint64(id[0:8]) ^ uint64(binary.LittleEndian.Uint32(id[8:12]))<<29
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

func (j *job) newBatch() *sink.Batch {
	select {
	case b := <-j.free:
		b.Reset()
		return b
	default:
		b := &sink.Batch{Header: j.enc.Header(), Data: make([]byte, 0, 64<<10)}
		b.Prefix, b.Suffix, b.Delim = j.cfg.batchFraming()
		if len(b.Prefix) > 0 {
			b.Header = nil // the operator's batch_prefix is the header (Logpush's "csv with header")
		}
		return b
	}
}

func (j *job) flush() {
	if j.batch == nil || j.batch.Records == 0 {
		return
	}
	j.send(j.batch)
	j.batch = nil
}

// send hands a batch to the writer. It blocks when batchesInFlight are
// pending: the destination is behind, and the queue absorbs (then drops).
func (j *job) send(b *sink.Batch) { j.batches <- b }

// write is the writer goroutine.
func (j *job) write() {
	defer close(j.done)
	for b := range j.batches {
		err := j.dest.Write(b)
		kept := sink.Written(b, err) // a short write keeps whole records only
		j.st.written.Add(uint64(kept))
		if err != nil {
			j.st.writeErrs.Add(uint64(b.Records - kept))
			j.errMu.Lock()
			j.lastErr = err
			j.errMu.Unlock()
		}
		select {
		case j.free <- b:
		default:
		}
	}
	if err := j.dest.Close(); err != nil {
		j.closeErr = err
	}
}

// end tells the job to drain its queue, flush and stop.
func (j *job) end() { j.stopOnce.Do(func() { close(j.stop) }) }

func (j *job) lastWriteErr() error {
	j.errMu.Lock()
	defer j.errMu.Unlock()
	return j.lastErr
}
