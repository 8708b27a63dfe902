package event

import (
	"sync"
	"sync/atomic"
	"time"
)

// Live is a session in progress. The data path updates its counters with
// atomic adds as bytes move; the log side reads them for periodic records
// without copying anything per connection or arming any per-connection
// timer. The connect record it was made from is immutable once the Live is
// published in a Registry.
type Live struct {
	base Event // the connect record; read-only after Registry.Add

	ClientBytes atomic.Int64 // total read from the client
	OriginBytes atomic.Int64 // total read from the origin
	ClientRTT   atomic.Int64 // nanoseconds, last sample
	OriginRTT   atomic.Int64 // nanoseconds, last sample
}

// NewLive returns a Live for the session described by its connect record.
func NewLive(connect Event) *Live { return &Live{base: connect} }

// Base returns the connect record the Live was made from.
func (l *Live) Base() *Event { return &l.base }

// Snapshot returns an Interim record of the session at time now, with the
// counters as they are now.
func (l *Live) Snapshot(now time.Time) Event {
	e := l.base
	e.Type = Interim
	e.Status = StatusConnect
	e.Time = now
	e.ClientBytes = l.ClientBytes.Load()
	e.OriginBytes = l.OriginBytes.Load()
	e.ClientRTT = time.Duration(l.ClientRTT.Load())
	e.OriginRTT = time.Duration(l.OriginRTT.Load())
	return e
}

const registryShards = 64

// Registry holds the sessions that are open right now, so that log jobs can
// walk them for periodic records. The data path must Remove a session before
// it emits the session's terminal event: a job that walks the registry and
// reads the terminal event on one goroutine then never writes an interim
// record after a terminal one.
type Registry struct {
	shards [registryShards]struct {
		mu sync.Mutex
		m  map[*Live]struct{}
		_  [40]byte // keep shards on separate cache lines
	}
	n atomic.Int64
}

func (r *Registry) shard(l *Live) int {
	id := &l.base.SessionID
	return int(id[11]^id[10]) % registryShards
}

// Add publishes l. l's base must not change afterwards.
func (r *Registry) Add(l *Live) {
	s := &r.shards[r.shard(l)]
	s.mu.Lock()
	if s.m == nil {
		s.m = make(map[*Live]struct{})
	}
	s.m[l] = struct{}{}
	s.mu.Unlock()
	r.n.Add(1)
}

// Remove withdraws l. Removing a Live that is not there does nothing.
func (r *Registry) Remove(l *Live) {
	s := &r.shards[r.shard(l)]
	s.mu.Lock()
	if _, ok := s.m[l]; ok {
		delete(s.m, l)
		r.n.Add(-1)
	}
	s.mu.Unlock()
}

// Len is the number of open sessions.
func (r *Registry) Len() int { return int(r.n.Load()) }

// Range calls f for every open session until f returns false. f runs with a
// shard lock held: it must be quick and must not call Add or Remove.
func (r *Registry) Range(f func(*Live) bool) {
	for i := range r.shards {
		s := &r.shards[i]
		s.mu.Lock()
		for l := range s.m {
			if !f(l) {
				s.mu.Unlock()
				return
			}
		}
		s.mu.Unlock()
	}
}

// Emitter takes events from the data path. Emit must never block and never
// fail: an implementation that cannot take the event counts it as dropped.
// It must not keep e after it returns (it copies what it keeps): the data
// path reuses the Event.
type Emitter interface {
	Emit(e *Event)
}

// EmitterFunc adapts a function to Emitter (handy in tests).
type EmitterFunc func(e *Event)

// Emit calls f(e).
func (f EmitterFunc) Emit(e *Event) { f(e) }
