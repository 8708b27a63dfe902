// Package eventtest records the canonical events a server emits, for tests
// to wait on and assert against. It is imported only by tests (udpproxy,
// tlsedge, daemon, proxy).
package eventtest

import (
	"sync"
	"testing"
	"time"

	"github.com/prismproxy/prism/internal/event"
)

// DefaultTimeout is how long the waiting methods wait unless Timeout is set.
const DefaultTimeout = 10 * time.Second

// Recorder is an event.Emitter that keeps every event. Emit never blocks
// and never drops: the data path under test is not slowed by the test.
// The waiting methods (Next, NextOf, NextWithin, Terminal, Expect,
// WaitFor, Take) read the events in emission order through one cursor,
// each consuming what it reads; All and Count look at every event, read
// or not.
type Recorder struct {
	// Timeout bounds each waiting method; zero means DefaultTimeout.
	Timeout time.Duration

	mu     sync.Mutex
	evs    []event.Event
	read   int
	signal chan struct{}
}

// New returns an empty Recorder.
func New() *Recorder { return &Recorder{signal: make(chan struct{}, 1)} }

// Emit keeps a copy of e.
func (r *Recorder) Emit(e *event.Event) {
	r.mu.Lock()
	r.evs = append(r.evs, *e)
	r.mu.Unlock()
	select {
	case r.signal <- struct{}{}:
	default:
	}
}

func (r *Recorder) timeout() time.Duration {
	if r.Timeout > 0 {
		return r.Timeout
	}
	return DefaultTimeout
}

// pop returns the next unread event, if there is one.
func (r *Recorder) pop() (event.Event, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.read == len(r.evs) {
		return event.Event{}, false
	}
	e := r.evs[r.read]
	r.read++
	return e, true
}

// WaitFor consumes events until one satisfies match and returns it,
// failing the test if none arrives within the timeout. what names the
// awaited event in the failure message.
func (r *Recorder) WaitFor(t testing.TB, what string, match func(*event.Event) bool) event.Event {
	t.Helper()
	timer := time.NewTimer(r.timeout())
	defer timer.Stop()
	for {
		for {
			e, ok := r.pop()
			if !ok {
				break
			}
			if match(&e) {
				return e
			}
		}
		select {
		case <-r.signal:
		case <-timer.C:
			t.Fatalf("no %s event within %v; %d events recorded", what, r.timeout(), r.Len())
			return event.Event{}
		}
	}
}

// Take consumes events until n of them satisfy match and returns those n,
// failing the test if they do not all arrive within one timeout.
func (r *Recorder) Take(t testing.TB, n int, what string, match func(*event.Event) bool) []event.Event {
	t.Helper()
	out := make([]event.Event, 0, n)
	timer := time.NewTimer(r.timeout())
	defer timer.Stop()
	for len(out) < n {
		e, ok := r.pop()
		if ok {
			if match(&e) {
				out = append(out, e)
			}
			continue
		}
		select {
		case <-r.signal:
		case <-timer.C:
			t.Fatalf("got %d %s events within %v, want %d", len(out), what, r.timeout(), n)
			return out
		}
	}
	return out
}

// NextWithin returns the next event if one arrives within d, without
// failing the test: for asserting an absence (nothing within d) or, with
// d zero, that an event is already recorded.
func (r *Recorder) NextWithin(d time.Duration) (event.Event, bool) {
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		if e, ok := r.pop(); ok {
			return e, true
		}
		select {
		case <-r.signal:
		case <-timer.C:
			// One last look: an event emitted just before the timer fired.
			return r.pop()
		}
	}
}

// Next returns the next event.
func (r *Recorder) Next(t testing.TB) event.Event {
	t.Helper()
	return r.WaitFor(t, "further", func(*event.Event) bool { return true })
}

// NextOf skips events of other types and returns the next one of type typ.
func (r *Recorder) NextOf(t testing.TB, typ event.Type) event.Event {
	t.Helper()
	return r.WaitFor(t, typ.String(), func(e *event.Event) bool { return e.Type == typ })
}

// Terminal skips non-terminal events and returns the next terminal one.
func (r *Recorder) Terminal(t testing.TB) event.Event {
	t.Helper()
	return r.WaitFor(t, "terminal", func(e *event.Event) bool { return e.Type.Terminal() })
}

// Expect returns the next event and fails the test unless it has type typ
// and status status.
func (r *Recorder) Expect(t testing.TB, typ event.Type, status int) event.Event {
	t.Helper()
	e := r.Next(t)
	if e.Type != typ || e.Status != status {
		t.Fatalf("got %s %d (%s), want %s %d", e.Type, e.Status, e.Detail, typ, status)
	}
	return e
}

// All returns a copy of every event recorded so far.
func (r *Recorder) All() []event.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]event.Event(nil), r.evs...)
}

// Len is the number of events recorded so far.
func (r *Recorder) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.evs)
}

// Count is the number of events recorded so far that satisfy match.
func (r *Recorder) Count(match func(*event.Event) bool) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for i := range r.evs {
		if match(&r.evs[i]) {
			n++
		}
	}
	return n
}

// CountOf is the number of events of type typ recorded so far.
func (r *Recorder) CountOf(typ event.Type) int {
	return r.Count(func(e *event.Event) bool { return e.Type == typ })
}
