package daemon

import (
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
	"github.com/prismproxy/prism/internal/sink/sinktest"
	"github.com/prismproxy/prism/internal/testpeer"
)

// TestReloadOfSpooledLogJobsWhileConnectionsFlow: a job with a disk spool
// delivers to a loopback HTTP receiver; while connections flow, a reload
// changes that job (same spool directory) and adds a second spooled job.
// The reload succeeds (the new job takes the spool over once the old one
// flushed into it and let go), and every connection's terminal record
// reaches the first receiver exactly once; every connection opened after
// the reload reaches the second one exactly once, and nothing else does.
func TestReloadOfSpooledLogJobsWhileConnectionsFlow(t *testing.T) {
	origin, listen := testpeer.Echo(t), testpeer.ClosedPort(t)
	r1, r2 := sinktest.NewReceiver(t), sinktest.NewReceiver(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "prism.yaml")
	job := func(name, fields, port, spoolDir string) string {
		return fmt.Sprintf(`  - name: %s
    dataset: spectrum_events
    fields: %s
    batch: {max_interval: 20ms}
    destination:
      type: http
      url: "http://127.0.0.1:%s/"
      retry: {initial: 20ms, max: 200ms}
      flush_timeout: 5s
    spool: {dir: %s}
`, name, fields, port, spoolDir)
	}
	write := func(jobs string) {
		t.Helper()
		cfg := fmt.Sprintf("node: {colo: TST}\nshutdown: {drain_timeout: 2s}\napps:\n  - id: app\n    listen: [\"%s\"]\n    origins: {addresses: [\"%s\"]}\nlog_jobs:\n%s", listen, origin, jobs)
		if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	spool1, spool2 := filepath.Join(dir, "spool1"), filepath.Join(dir, "spool2")
	write(job("one", "[Event, ClientPort]", r1.Port(), spool1))
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

	// The client: one connection after another, each echoing a line; it
	// reports each client port. Bounded in count.
	const before, after = 40, 40
	ports := make(chan int, before+after)
	next := make(chan struct{})
	errs := make(chan error, 1)
	go func() {
		defer close(ports)
		for i := range before + after {
			if i == before {
				<-next // the reload has returned
			}
			c, err := net.DialTimeout("tcp", listen, 5*time.Second)
			if err != nil {
				errs <- err
				return
			}
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			_, werr := c.Write([]byte("x"))
			b := make([]byte, 1)
			_, rerr := c.Read(b)
			ports <- c.LocalAddr().(*net.TCPAddr).Port
			c.Close()
			if werr != nil || rerr != nil {
				errs <- fmt.Errorf("echo: %v %v", werr, rerr)
				return
			}
		}
	}()
	var all, late []int
	for range before / 2 {
		all = append(all, <-ports)
	}
	// Reload while the client goes on: job one changed, job two added.
	write(job("one", "[Event, ClientPort, Timestamp]", r1.Port(), spool1) + job("two", "[Event, ClientPort]", r2.Port(), spool2))
	res, err := d.ReloadConfig()
	if err != nil || !res.LogJobs {
		t.Fatalf("reload with spooled jobs: %v (%v)", err, res)
	}
	for range before - before/2 {
		all = append(all, <-ports)
	}
	close(next)
	for p := range ports {
		all = append(all, p)
		late = append(late, p)
	}
	select {
	case err := <-errs:
		t.Fatal(err)
	default:
	}
	if len(all) != before+after {
		t.Fatalf("%d connections made, want %d", len(all), before+after)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := d.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}

	made := map[int]bool{}
	for _, p := range all {
		made[p] = true
	}
	// want: the connections that must have exactly one record there (job
	// two may also have those that ended just after the reload).
	check := func(name string, r *sinktest.Receiver, want []int) {
		t.Helper()
		got := map[int]int{}
		for _, raw := range r.Records() {
			var rec struct {
				Event      string
				ClientPort int
			}
			if err := json.Unmarshal(raw, &rec); err != nil {
				t.Fatalf("%s: record %q: %v", name, raw, err)
			}
			if rec.Event == "disconnect" {
				got[rec.ClientPort]++
			}
		}
		wanted := map[int]bool{}
		for _, p := range want {
			wanted[p] = true
			if got[p] != 1 {
				t.Errorf("%s: connection from port %d has %d disconnect records, want 1", name, p, got[p])
			}
		}
		for p, n := range got {
			if !wanted[p] && (!made[p] || n != 1) {
				t.Errorf("%s: %d disconnect records of port %d (made a connection: %v)", name, n, p, made[p])
			}
		}
		t.Logf("%s: %d sessions, %d disconnect records", name, len(want), len(got))
	}
	check("job one", r1, all)
	check("job two", r2, late)
	if st := d.Stats(); len(st) != 2 {
		t.Errorf("log jobs after the reload: %d, want 2", len(st))
	} else {
		for _, s := range st {
			if s.Dropped != 0 {
				t.Errorf("job %s dropped %d events", s.Job, s.Dropped)
			}
		}
	}
}
