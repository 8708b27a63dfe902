package logjob

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"github.com/prismproxy/prism/internal/deliver"
	"log/slog"
	"sync"
	"testing"

	"github.com/prismproxy/prism/internal/cfgerr"
	"github.com/prismproxy/prism/internal/event"
	"github.com/prismproxy/prism/internal/render"
	"github.com/prismproxy/prism/internal/sink"
)

// memDest records the batches it receives. Write blocks while gate is
// non-nil and open, and fails with fail when set.
type memDest struct {
	mu      sync.Mutex
	batches []sink.Batch
	gate    chan struct{}
	fail    error
	closed  bool
}

func (d *memDest) Write(b *sink.Batch) error {
	if d.gate != nil {
		<-d.gate
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.fail != nil {
		return d.fail
	}
	d.batches = append(d.batches, sink.Batch{
		Header:  append([]byte(nil), b.Header...),
		Data:    append([]byte(nil), b.Data...),
		Records: b.Records,
	})
	return nil
}

func (d *memDest) Close() error {
	d.mu.Lock()
	d.closed = true
	d.mu.Unlock()
	return nil
}

func (d *memDest) snapshot() []sink.Batch {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]sink.Batch(nil), d.batches...)
}

// lines returns every record line written so far.
func (d *memDest) lines() [][]byte {
	var out [][]byte
	for _, b := range d.snapshot() {
		sc := bufio.NewScanner(bytes.NewReader(b.Data))
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			out = append(out, append([]byte(nil), sc.Bytes()...))
		}
	}
	return out
}

func (d *memDest) records(t *testing.T) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range d.lines() {
		var m map[string]any
		if err := json.Unmarshal(l, &m); err != nil {
			t.Fatalf("bad record %q: %v", l, err)
		}
		out = append(out, m)
	}
	return out
}

// useDests makes newPipeline use the given destinations by job name.
func useDests(t *testing.T, dests map[string]*memDest) {
	t.Helper()
	old := newDestination
	newDestination = func(cfg *Config, l *slog.Logger) (sink.Destination, error) {
		if d, ok := dests[cfg.Name]; ok {
			return d, nil
		}
		return old(cfg, l)
	}
	t.Cleanup(func() { newDestination = old })
}

// logCapture is a slog handler that keeps records.
type logCapture struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (h *logCapture) Enabled(context.Context, slog.Level) bool { return true }
func (h *logCapture) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	h.recs = append(h.recs, r.Clone())
	h.mu.Unlock()
	return nil
}
func (h *logCapture) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *logCapture) WithGroup(string) slog.Handler      { return h }

func (h *logCapture) find(msgPrefix string) []map[string]any {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []map[string]any
	for _, r := range h.recs {
		if !bytes.HasPrefix([]byte(r.Message), []byte(msgPrefix)) {
			continue
		}
		m := map[string]any{"level": r.Level}
		r.Attrs(func(a slog.Attr) bool { m[a.Key] = a.Value.Any(); return true })
		out = append(out, m)
	}
	return out
}

// fileDest is a file destination at path.
func fileDest(path string) deliver.Config {
	return deliver.Config{Type: sink.TypeFile, File: sink.Config{Type: sink.TypeFile, Path: path}}
}

// prepared is a copy of jobs, defaulted and validated as New expects them.
func prepared(tb testing.TB, jobs []Config) []Config {
	tb.Helper()
	jobs = append([]Config(nil), jobs...)
	if err := cfgerr.Prepare(Jobs(jobs)); err != nil {
		tb.Fatal(err)
	}
	return jobs
}

// newPrepared is New of jobs prepared with cfgerr.Prepare, whose error it
// returns.
func newPrepared(tb testing.TB, node render.Node, jobs []Config, reg *event.Registry, logger *slog.Logger) (*Pipeline, error) {
	tb.Helper()
	jobs = append([]Config(nil), jobs...)
	if err := cfgerr.Prepare(Jobs(jobs)); err != nil {
		return nil, err
	}
	return New(node, jobs, reg, logger)
}
