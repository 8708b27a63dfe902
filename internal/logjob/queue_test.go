package logjob

import (
	"sync"
	"testing"

	"github.com/prismproxy/prism/internal/event"
)

// TestQueueMPSC: concurrent producers, one consumer parking on wake: every
// accepted event arrives exactly once, in each producer's order, and a
// refused push means the ring was full.
func TestQueueMPSC(t *testing.T) {
	q := newQueue(64)
	if q.cap() != 64 {
		t.Fatalf("cap %d", q.cap())
	}
	const producers, each = 4, 20000
	var accepted [producers]int
	var wg sync.WaitGroup
	for p := range producers {
		wg.Go(func() {
			var e event.Event
			e.ASN = uint32(p)
			for i := range each {
				e.Status = i
				if q.push(&e) {
					accepted[p]++
				}
			}
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	last := [producers]int{-1, -1, -1, -1}
	var got [producers]int
	var e event.Event
	finished := false
	for {
		for q.pop(&e) {
			p := e.ASN
			if e.Status <= last[p] {
				t.Fatalf("producer %d: %d after %d", p, e.Status, last[p])
			}
			last[p] = e.Status
			got[p]++
		}
		if finished {
			break
		}
		if q.prepareSleep() {
			select {
			case <-q.wake:
			case <-done:
				finished = true
			}
		}
		q.sleeping.Store(false)
	}
	for p := range producers {
		if got[p] != accepted[p] {
			t.Errorf("producer %d: accepted %d, received %d", p, accepted[p], got[p])
		}
	}
	if q.len() != 0 {
		t.Errorf("len %d after draining", q.len())
	}
	// A full ring refuses.
	var x event.Event
	for range 64 {
		if !q.push(&x) {
			t.Fatal("refused before full")
		}
	}
	if q.push(&x) {
		t.Error("accepted past capacity")
	}
}
