package logjob

import (
	"context"
	"io"
	"log/slog"
	"runtime"
	"testing"
	"time"

	"github.com/prismproxy/prism/internal/event"
	"github.com/prismproxy/prism/internal/render"
	"github.com/prismproxy/prism/internal/sink"
)

// discard is a destination that throws batches away.
type discard struct{}

func (discard) Write(*sink.Batch) error { return nil }
func (discard) Close() error            { return nil }

func benchPipeline(b *testing.B, jobs []Config) *Pipeline {
	old := newDestination
	newDestination = func(*Config, *slog.Logger) (sink.Destination, error) { return discard{}, nil }
	b.Cleanup(func() { newDestination = old })
	p, err := newPrepared(b, node, jobs, new(event.Registry), slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	return p
}

var threeJobs = []Config{
	{Name: "spectrum", Dataset: render.Spectrum, QueueSize: 1 << 16},
	{Name: "edgeone", Dataset: render.EdgeOne, Interval: time.Minute, QueueSize: 1 << 16},
	{Name: "cloudconnexa", Dataset: render.CloudConnexa, QueueSize: 1 << 16},
}

// BenchmarkEmit is the data path's cost per event: one connect and one
// disconnect per two ops, offered to three jobs (each copies the event into
// its queue). Drops are possible when the consumers fall behind; they are
// reported as a metric.
func BenchmarkEmit(b *testing.B) {
	for _, bc := range []struct {
		name string
		jobs []Config
	}{{"jobs=0", nil}, {"jobs=1", threeJobs[:1]}, {"jobs=3", threeJobs}} {
		b.Run(bc.name, func(b *testing.B) {
			p := benchPipeline(b, bc.jobs)
			c := session(1, event.Connect)
			d := session(1, event.Disconnect)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if i&1 == 0 {
					p.Emit(&c)
				} else {
					p.Emit(&d)
				}
				i++
			}
			b.StopTimer()
			_ = p.Close(context.Background())
			var dropped uint64
			for _, st := range p.Stats() {
				dropped += st.Dropped
			}
			b.ReportMetric(float64(dropped)/float64(b.N), "dropped/op")
		})
	}
}

// BenchmarkJobThroughput is a job's end-to-end rate (queue, filter, render,
// batch) with a discarding destination: ns per record.
func BenchmarkJobThroughput(b *testing.B) {
	for _, cfg := range []Config{
		threeJobs[0], threeJobs[1], threeJobs[2],
		{Name: "spectrum-filtered", Dataset: render.Spectrum, QueueSize: 1 << 16,
			Filter: `{"where":{"and":[{"key":"Event","operator":"eq","value":"disconnect"},{"key":"ClientIP","operator":"startsWith","value":"10."}]}}`},
	} {
		b.Run(cfg.Name, func(b *testing.B) {
			p := benchPipeline(b, []Config{cfg})
			d := session(1, event.Disconnect)
			j := p.jobs[0]
			b.ReportAllocs()
			for b.Loop() {
				for !j.q.push(&d) { // wait for room: measures the consumer
					runtime.Gosched()
				}
			}
			_ = p.Close(context.Background())
			if st := p.Stats()[0]; st.Written+st.Filtered != uint64(b.N) {
				b.Fatalf("stats %+v, want %d", st, b.N)
			}
		})
	}
}

var _ = io.Discard

// BenchmarkQueuePush is the accepted-event cost of Emit for one job: a CAS
// and a copy of the event into the ring (the consumer drains between
// rounds, outside the timer).
func BenchmarkQueuePush(b *testing.B) {
	q := newQueue(4096)
	e := session(1, event.Disconnect)
	var sink event.Event
	b.ReportAllocs()
	for b.Loop() {
		if !q.push(&e) {
			b.StopTimer()
			for q.pop(&sink) {
			}
			b.StartTimer()
			q.push(&e)
		}
	}
}
