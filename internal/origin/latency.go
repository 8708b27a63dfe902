package origin

import (
	"sync/atomic"
	"time"
)

// LatencyBuckets are the upper bounds of the dial-latency histogram, in
// seconds: from a loopback dial (well under a millisecond) to a connect
// timeout.
var LatencyBuckets = [...]float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// Latency is a histogram of origin dial times, one per app. Observe is a
// few atomic adds: no lock, no allocation, safe from every connection.
type Latency struct {
	counts [len(LatencyBuckets) + 1]atomic.Uint64 // the last is +Inf
	sum    atomic.Int64                           // nanoseconds
}

// Observe records one dial that took d.
func (l *Latency) Observe(d time.Duration) {
	if l == nil {
		return
	}
	s := d.Seconds()
	i := 0
	for i < len(LatencyBuckets) && s > LatencyBuckets[i] {
		i++
	}
	l.counts[i].Add(1)
	l.sum.Add(int64(d))
}

// Snapshot returns the cumulative count at each bound of LatencyBuckets,
// the total count and the sum of all observations.
func (l *Latency) Snapshot() (cumulative [len(LatencyBuckets)]uint64, count uint64, sum time.Duration) {
	if l == nil {
		return
	}
	for i := range LatencyBuckets {
		count += l.counts[i].Load()
		cumulative[i] = count
	}
	count += l.counts[len(LatencyBuckets)].Load()
	return cumulative, count, time.Duration(l.sum.Load())
}
