// Package slogtest captures prism's own diagnostics (log/slog) in tests, so
// that a test can assert what an operator would read in the log and see
// the whole log when it fails. It is imported only by tests (tlsedge,
// udpproxy). Not to be confused with the standard library's
// testing/slogtest, which checks slog.Handler implementations.
package slogtest

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"
)

// Buffer is the log output of one test, safe for concurrent writes.
type Buffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write appends p.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String is everything logged so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Records decodes the JSON lines (from a JSON logger) whose message is msg,
// in order. Numbers decode as float64.
func (b *Buffer) Records(msg string) []map[string]any {
	var out []map[string]any
	for _, l := range strings.Split(b.String(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) == nil && m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

// Text returns a logger writing text lines at debug level into a Buffer;
// the test's output shows the Buffer if the test fails.
func Text(t testing.TB) (*slog.Logger, *Buffer) {
	b := dumpOnFailure(t)
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug})), b
}

// JSON returns a logger writing JSON lines at info level (slog's default)
// into a Buffer, for Records; the test's output shows the Buffer if the
// test fails.
func JSON(t testing.TB) (*slog.Logger, *Buffer) {
	b := dumpOnFailure(t)
	return slog.New(slog.NewJSONHandler(b, nil)), b
}

func dumpOnFailure(t testing.TB) *Buffer {
	b := &Buffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("log:\n%s", b.String())
		}
	})
	return b
}
