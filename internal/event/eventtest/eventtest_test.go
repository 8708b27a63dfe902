package eventtest

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/prismproxy/prism/internal/event"
)

// fatalTB records a Fatalf instead of stopping the test.
type fatalTB struct {
	testing.TB
	msg string
}

func (f *fatalTB) Helper()                        {}
func (f *fatalTB) Fatalf(format string, a ...any) { f.msg = fmt.Sprintf(format, a...) }

func emit(r *Recorder, typ event.Type, status int) {
	e := event.New("app", event.NewID(time.Now()))
	e.Type, e.Status = typ, status
	r.Emit(&e)
}

func TestReadsInOrderAndConsumes(t *testing.T) {
	r := New()
	emit(r, event.Connect, event.StatusConnect)
	emit(r, event.Interim, event.StatusConnect)
	emit(r, event.Disconnect, event.StatusOK)
	emit(r, event.Connect, event.StatusConnect)
	r.Expect(t, event.Connect, event.StatusConnect)
	if e := r.Terminal(t); e.Type != event.Disconnect {
		t.Fatalf("Terminal = %s", e.Type)
	}
	if e := r.Next(t); e.Type != event.Connect {
		t.Fatalf("Next = %s", e.Type)
	}
	if r.Len() != 4 || r.CountOf(event.Connect) != 2 || len(r.All()) != 4 {
		t.Fatalf("Len %d, connects %d", r.Len(), r.CountOf(event.Connect))
	}
}

func TestWaitsForEventsFromOtherGoroutines(t *testing.T) {
	r := New()
	var wg sync.WaitGroup
	for range 100 {
		wg.Go(func() { emit(r, event.Connect, event.StatusConnect) })
	}
	for i := range 100 {
		if e := r.NextOf(t, event.Connect); e.Type != event.Connect {
			t.Fatalf("event %d is %s", i, e.Type)
		}
	}
	wg.Wait()
}

func TestTimesOutAndSaysWhat(t *testing.T) {
	r := New()
	r.Timeout = 20 * time.Millisecond
	emit(r, event.Connect, event.StatusConnect)
	f := &fatalTB{TB: t}
	r.NextOf(f, event.Disconnect)
	if f.msg == "" {
		t.Fatal("no failure after the timeout")
	}
	if want := "no disconnect event within 20ms; 1 events recorded"; f.msg != want {
		t.Fatalf("message %q, want %q", f.msg, want)
	}
}

func TestExpectFailsOnAnotherStatus(t *testing.T) {
	r := New()
	emit(r, event.Disconnect, event.StatusOK)
	f := &fatalTB{TB: t}
	r.Expect(f, event.Disconnect, 502)
	if f.msg == "" {
		t.Fatal("Expect accepted the wrong status")
	}
}

func TestTakeCountsWithinOneTimeout(t *testing.T) {
	r := New()
	r.Timeout = 20 * time.Millisecond
	emit(r, event.Connect, event.StatusConnect)
	emit(r, event.Disconnect, event.StatusOK)
	emit(r, event.Connect, event.StatusConnect)
	isConnect := func(e *event.Event) bool { return e.Type == event.Connect }
	if got := r.Take(t, 2, "connect", isConnect); len(got) != 2 || got[1].Type != event.Connect {
		t.Fatalf("Take = %v", got)
	}
	emit(r, event.Connect, event.StatusConnect)
	f := &fatalTB{TB: t}
	if got := r.Take(f, 2, "connect", isConnect); len(got) != 1 {
		t.Fatalf("Take returned %d events", len(got))
	}
	if want := "got 1 connect events within 20ms, want 2"; f.msg != want {
		t.Fatalf("message %q, want %q", f.msg, want)
	}
}

func TestNextWithinReportsAbsenceAndPresence(t *testing.T) {
	r := New()
	if e, ok := r.NextWithin(0); ok {
		t.Fatalf("NextWithin(0) on an empty recorder = %s", e.Type)
	}
	if e, ok := r.NextWithin(20 * time.Millisecond); ok {
		t.Fatalf("NextWithin(20ms) on a quiet recorder = %s", e.Type)
	}
	emit(r, event.Connect, event.StatusConnect)
	if e, ok := r.NextWithin(0); !ok || e.Type != event.Connect {
		t.Fatalf("NextWithin(0) = %s %v, want the recorded connect", e.Type, ok)
	}
	go emit(r, event.Disconnect, event.StatusOK)
	if e, ok := r.NextWithin(10 * time.Second); !ok || e.Type != event.Disconnect {
		t.Fatalf("NextWithin(10s) = %s %v, want the disconnect emitted meanwhile", e.Type, ok)
	}
	if _, ok := r.NextWithin(0); ok {
		t.Fatal("NextWithin consumed nothing")
	}
}
