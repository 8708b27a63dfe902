package logjob

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prismproxy/prism/internal/deliver"
	"github.com/prismproxy/prism/internal/event"
	"github.com/prismproxy/prism/internal/render"
	"github.com/prismproxy/prism/internal/sink"
)

// TestCloseNamesOnlyTheStuckJob: one job writes to a FIFO nobody reads
// (the kernel blocks its writes once the pipe is full), another to a
// file. Close's message named the healthy job "not flushed" too, about
// half the time, once the deadline had passed for the stuck one.
func TestCloseNamesOnlyTheStuckJob(t *testing.T) {
	for round := range 6 {
		dir := t.TempDir()
		fifo := filepath.Join(dir, "stuck.fifo")
		if err := syscall.Mkfifo(fifo, 0o600); err != nil {
			t.Skipf("mkfifo: %v", err)
		}
		reader, err := os.OpenFile(fifo, os.O_RDONLY|syscall.O_NONBLOCK, 0)
		if err != nil {
			t.Fatal(err)
		}
		p, err := newPrepared(t, node, []Config{
			{Name: "stuck", Dataset: render.Spectrum, Batch: BatchConfig{MaxInterval: 10 * time.Millisecond},
				Destination: deliver.Config{Type: sink.TypeFile, File: sink.Config{Type: sink.TypeFile, Path: fifo, MaxSizeMB: -1}}},
			{Name: "healthy", Dataset: render.Spectrum, Batch: BatchConfig{MaxInterval: 10 * time.Millisecond},
				Destination: fileDest(filepath.Join(dir, "ok.log"))},
		}, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		for i := range 2000 { // about 1 MB of records: far past the pipe's 64 KiB
			e := session(i, event.Disconnect)
			p.Emit(&e)
		}
		// The healthy job has written everything (so that a loaded machine
		// cannot make it miss the deadline too); the stuck one never will.
		for deadline := time.Now().Add(20 * time.Second); p.Stats()[1].Written < 2000; time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("round %d: the healthy job wrote %d of 2000 records in 20s", round, p.Stats()[1].Written)
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		err = p.Close(ctx)
		cancel()
		if err == nil || !strings.Contains(err.Error(), `log job "stuck": not flushed`) || strings.Contains(err.Error(), "healthy") {
			t.Fatalf("round %d: Close: %v; want only the stuck job named", round, err)
		}
		reader.Close() // the stuck writer now fails (EPIPE) and ends
		b, _ := os.ReadFile(filepath.Join(dir, "ok.log"))
		if n := strings.Count(string(b), "\n"); n != 2000 {
			t.Fatalf("round %d: the healthy job wrote %d records, want 2000", round, n)
		}
	}
}
