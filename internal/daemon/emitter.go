package daemon

import (
	"runtime"
	"sync/atomic"

	"github.com/prismproxy/prism/internal/event"
)

// swapEmitter is the emitter every server holds: it forwards to the
// current log pipeline, which a reload may replace. swap returns only when
// no event is still being handed to the old one, so closing the old
// pipeline after it loses nothing.
type swapEmitter struct {
	cur atomic.Pointer[emitGen]
}

type emitGen struct {
	em       event.Emitter
	inflight atomic.Int64
}

func newSwapEmitter(em event.Emitter) *swapEmitter {
	s := &swapEmitter{}
	s.cur.Store(&emitGen{em: em})
	return s
}

func (s *swapEmitter) Emit(e *event.Event) {
	for {
		g := s.cur.Load()
		g.inflight.Add(1)
		if s.cur.Load() == g {
			g.em.Emit(e)
			g.inflight.Add(-1)
			return
		}
		g.inflight.Add(-1) // swapped meanwhile: use the new one
	}
}

// swap makes em current and waits until every Emit into the old one
// returned.
func (s *swapEmitter) swap(em event.Emitter) {
	old := s.cur.Swap(&emitGen{em: em})
	for old.inflight.Load() > 0 {
		runtime.Gosched() // an Emit is a queue push: this is short
	}
}
