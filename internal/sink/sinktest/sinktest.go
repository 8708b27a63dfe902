// Package sinktest builds batches for the tests of destinations and of the
// delivery layer: records with session keys and times, as a log job fills
// them.
package sinktest

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/prismproxy/prism/internal/event"
	"github.com/prismproxy/prism/internal/sink"
)

// Session returns a session id made from n.
func Session(n uint32) event.ID {
	var id event.ID
	binary.BigEndian.PutUint32(id[8:], n)
	id[0] = 0xab
	return id
}

// Batch returns a batch of ndjson records {"s":"<session hex>","n":<i>}
// for sessions[i], timed from t0 one second apart.
func Batch(t0 time.Time, sessions ...uint32) *sink.Batch {
	b := &sink.Batch{}
	for i, s := range sessions {
		id := Session(s)
		b.Data = fmt.Appendf(b.Data, `{"s":"%s","n":%d}`+"\n", id, i)
		b.Ends = append(b.Ends, uint32(len(b.Data)))
		b.Keys = append(b.Keys, id)
		b.Records++
		at := t0.Add(time.Duration(i) * time.Second)
		if i == 0 {
			b.First = at
		}
		b.Last = at
	}
	return b
}
