package daemon

import (
	"sync"
	"sync/atomic"
	"testing"

	"github.com/prismproxy/prism/internal/event"
)

type countEm struct {
	n      atomic.Int64
	closed atomic.Bool
	late   atomic.Int64 // events that arrived after the swap returned
}

func (c *countEm) Emit(*event.Event) {
	if c.closed.Load() {
		c.late.Add(1)
	}
	c.n.Add(1)
}

// TestSwapEmitterLosesNothing: emitters racing with swaps deliver every
// event to exactly one pipeline, and none reaches a pipeline after swap
// returned (so closing it then loses nothing).
func TestSwapEmitterLosesNothing(t *testing.T) {
	gens := []*countEm{{}}
	s := newSwapEmitter(gens[0])
	const workers, each = 8, 20000
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var e event.Event
			for range each {
				s.Emit(&e)
			}
		}()
	}
	for range 50 {
		next := &countEm{}
		prev := gens[len(gens)-1]
		s.swap(next)
		prev.closed.Store(true)
		gens = append(gens, next)
	}
	wg.Wait()
	var total, late int64
	for _, g := range gens {
		total += g.n.Load()
		late += g.late.Load()
	}
	if total != workers*each || late != 0 {
		t.Fatalf("%d events delivered (want %d), %d after their pipeline was swapped out", total, workers*each, late)
	}
}

func BenchmarkSwapEmitter(b *testing.B) {
	s := newSwapEmitter(&countEm{})
	b.RunParallel(func(pb *testing.PB) {
		var e event.Event
		for pb.Next() {
			s.Emit(&e)
		}
	})
}

func BenchmarkDirectEmitter(b *testing.B) {
	var em event.Emitter = &countEm{}
	b.RunParallel(func(pb *testing.PB) {
		var e event.Event
		for pb.Next() {
			em.Emit(&e)
		}
	})
}
