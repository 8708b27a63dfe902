package logjob

import (
	"sync/atomic"

	"github.com/prismproxy/prism/internal/event"
)

// queue is a bounded multi-producer, single-consumer ring of events (the
// sequence-numbered slot design of Dmitry Vyukov's bounded queue). Push
// copies the event into a slot with one CAS and never blocks or allocates;
// a full ring refuses the event (the caller counts it as dropped). It
// replaces a buffered channel because a channel of ~650-byte events costs
// the data path a lock shared with the consumer on every send.
type queue struct {
	mask  uint64
	slots []qslot
	_     [64]byte
	head  atomic.Uint64 // next position to claim (producers)
	_     [56]byte
	tail  atomic.Uint64 // next position to read (the consumer)
	_     [56]byte
	// sleeping is set by the consumer before it parks; a producer that sees
	// it after publishing an event sends one token on wake.
	sleeping atomic.Bool
	wake     chan struct{}
}

type qslot struct {
	seq atomic.Uint64
	ev  event.Event
}

// newQueue returns a queue holding at least size events (rounded up to a
// power of two).
func newQueue(size int) *queue {
	n := 1
	for n < size {
		n <<= 1
	}
	q := &queue{mask: uint64(n - 1), slots: make([]qslot, n), wake: make(chan struct{}, 1)}
	for i := range q.slots {
		q.slots[i].seq.Store(uint64(i))
	}
	return q
}

// push copies e into the queue; false when it is full.
func (q *queue) push(e *event.Event) bool {
	pos := q.head.Load()
	for {
		s := &q.slots[pos&q.mask]
		seq := s.seq.Load()
		switch dif := int64(seq - pos); {
		case dif == 0:
			if q.head.CompareAndSwap(pos, pos+1) {
				s.ev = *e
				s.seq.Store(pos + 1)
				if q.sleeping.Load() && q.sleeping.CompareAndSwap(true, false) {
					select {
					case q.wake <- struct{}{}:
					default:
					}
				}
				return true
			}
			pos = q.head.Load()
		case dif < 0:
			return false // the slot still holds an unread event: full
		default:
			pos = q.head.Load() // another producer took pos
		}
	}
}

// pop moves the oldest event into dst; false when none is ready. Only the
// consumer calls it.
func (q *queue) pop(dst *event.Event) bool {
	pos := q.tail.Load()
	s := &q.slots[pos&q.mask]
	if s.seq.Load() != pos+1 {
		return false
	}
	*dst = s.ev
	s.seq.Store(pos + q.mask + 1)
	q.tail.Store(pos + 1)
	return true
}

// prepareSleep tells producers that the consumer is about to park and
// reports whether it may: false when an event arrived meanwhile (the
// consumer must pop again). After true, the consumer waits on q.wake.
func (q *queue) prepareSleep() bool {
	q.sleeping.Store(true)
	pos := q.tail.Load()
	if q.slots[pos&q.mask].seq.Load() == pos+1 {
		q.sleeping.Store(false)
		return false
	}
	return true
}

// len is the number of events claimed and not yet read.
func (q *queue) len() int {
	n := int64(q.head.Load() - q.tail.Load())
	if n < 0 {
		return 0
	}
	return int(n)
}

func (q *queue) cap() int { return len(q.slots) }
