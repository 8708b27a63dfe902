package daemon

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prismproxy/prism/internal/config"
	"github.com/prismproxy/prism/internal/testpeer"
)

// edgeoneRecords are the records in the ndjson file at path.
func edgeoneRecords(t *testing.T, path string) []map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("record %q: %v", sc.Bytes(), err)
		}
		out = append(out, m)
	}
	return out
}

// TestReloadKeepsUnchangedLogJobsRunning: an edgeone_l4 job with an
// interval has reported a connection's first bytes when a reload adds
// another job. Every job was rebuilt then, the unchanged one with no
// totals reported so far, and its records of the connection summed to
// more than the connection's bytes (the first ones counted twice). Now
// the unchanged job keeps running across the reload: its deltas sum to
// the connection's bytes and its counters go on (counted once: the
// replaced pipeline's Stats leave out the jobs taken over).
func TestReloadKeepsUnchangedLogJobsRunning(t *testing.T) {
	origin, listen := testpeer.Echo(t), testpeer.ClosedPort(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "prism.yaml")
	job := func(name string) string {
		return fmt.Sprintf("  - name: %s\n    dataset: edgeone_l4\n    interval: 1s\n    batch: {max_interval: 10ms}\n    destination: {type: file, path: %s}\n",
			name, filepath.Join(dir, name+".log"))
	}
	write := func(jobs string) {
		t.Helper()
		cfg := fmt.Sprintf("node: {colo: TST}\nshutdown: {drain_timeout: 2s}\napps:\n  - id: app\n    listen: [\"%s\"]\n    origins: {addresses: [\"%s\"]}\nlog_jobs:\n%s", listen, origin, jobs)
		if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(job("e"))
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	d, err := New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	shut := false
	shutdown := func() {
		shut = true
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := d.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	}
	t.Cleanup(func() { // a failed test's, before the echo origin's cleanup waits for its connection
		if !shut {
			shutdown()
		}
	})
	c, err := net.DialTimeout("tcp", listen, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	echoOn(t, c, "hello")
	// The job's first periodic record of the connection (1s interval).
	eLog := filepath.Join(dir, "e.log")
	for deadline := time.Now().Add(10 * time.Second); len(edgeoneRecords(t, eLog)) == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no periodic record in 10s")
		}
	}
	before := d.Stats()[0]

	write(job("e") + job("f"))
	res, err := d.ReloadConfig()
	if err != nil || !res.LogJobs {
		t.Fatalf("reload: %v (%v)", err, res)
	}
	if st := d.Stats(); len(st) != 2 || st[0].Job != "e" || st[0].Emitted < before.Emitted {
		t.Errorf("job e's counters after the reload: %+v, before %+v", st, before)
	}
	echoOn(t, c, "world!")
	c.Close()
	shutdown()

	var sum float64
	var deltas []float64
	final := 0
	for _, r := range edgeoneRecords(t, eLog) {
		v := r["ReceivedBytes"].(float64)
		deltas = append(deltas, v)
		sum += v
		if r["DisconnetReason"] != "-" {
			final++
		}
	}
	if sum != float64(len("hello")+len("world!")) || final != 1 {
		t.Fatalf("job e: deltas %v (%d final) sum to %v, want 11 and one final record", deltas, final, sum)
	}
	if st := d.Stats(); st[0].Written != uint64(len(deltas)) {
		t.Errorf("job e counted %d records written, its file has %d", st[0].Written, len(deltas))
	}
	if n := len(edgeoneRecords(t, filepath.Join(dir, "f.log"))); n == 0 {
		t.Fatal("the added job wrote nothing")
	}
}
