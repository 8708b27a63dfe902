package logjob

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"github.com/prismproxy/prism/internal/deliver"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/prismproxy/prism/internal/cfgerr"
	"github.com/prismproxy/prism/internal/event"
	"github.com/prismproxy/prism/internal/render"
)

var node = render.Node{Colo: "SJC", ID: "sjc-edge-1", RegionName: "San Jose (CA)"}

func session(i int, typ event.Type) event.Event {
	e := event.New("app", event.NewID(time.Now()))
	e.Type = typ
	e.Time = time.Now()
	e.StartTime = e.Time
	e.ClientProto = event.ProtoTCP
	e.ClientAddr = netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}), uint16(1024+i))
	e.LocalAddr = netip.MustParseAddrPort("127.0.0.1:2222")
	if typ.Terminal() {
		e.DisconnectTime = e.Time
		e.Status = 200
	}
	return e
}

// TestEmitNeverBlocks: a destination that does not return stalls only its
// job; Emit keeps returning, counts drops, and the drops are reported in
// the proxy's log.
func TestEmitNeverBlocks(t *testing.T) {
	stuck := &memDest{gate: make(chan struct{})}
	fine := &memDest{}
	useDests(t, map[string]*memDest{"stuck": stuck, "fine": fine})
	logs := &logCapture{}
	p, err := newPipeline(node, prepared(t, []Config{
		{Name: "stuck", Dataset: render.Spectrum, QueueSize: 16, Batch: BatchConfig{MaxRecords: 1}},
		{Name: "fine", Dataset: render.Spectrum, QueueSize: 20000},
	}), nil, slog.New(logs), 20*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	const n = 10000
	start := time.Now()
	for i := range n {
		e := session(i, event.Disconnect)
		p.Emit(&e)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Emit of %d events took %v with a stuck destination", n, d)
	}
	st := p.Stats()
	if st[0].Emitted != n || st[0].Dropped == 0 || st[0].Dropped > n-16 {
		t.Errorf("stuck job stats: %+v", st[0])
	}
	if st[1].Dropped != 0 {
		t.Errorf("the healthy job dropped %d", st[1].Dropped)
	}
	// The drop is reported (rate-limited) in the proxy's own log.
	deadline := time.Now().Add(5 * time.Second)
	for len(logs.find("log job dropped records")) == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	reps := logs.find("log job dropped records")
	if len(reps) == 0 || reps[0]["job"] != "stuck" || reps[0]["dropped"].(uint64) == 0 {
		t.Fatalf("no drop report: %v", reps)
	}
	close(stuck.gate)
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	st = p.Stats()
	// Nothing is lost without being counted.
	if got := st[0].Written + st[0].Dropped; got != n {
		t.Errorf("stuck job: written %d + dropped %d != %d", st[0].Written, st[0].Dropped, n)
	}
	if st[1].Written != n || len(fine.lines()) != n {
		t.Errorf("fine job wrote %d (%d lines), want %d", st[1].Written, len(fine.lines()), n)
	}
	var total uint64
	for _, r := range logs.find("log job dropped records") {
		total += r["dropped"].(uint64)
	}
	if total != st[0].Dropped {
		t.Errorf("reported drops %d, counted %d", total, st[0].Dropped)
	}
	if !stuck.closed || !fine.closed {
		t.Error("destinations not closed")
	}
}

// TestCloseFlushes: at a graceful shutdown every queued terminal event is
// written, even with batch limits far away.
func TestCloseFlushes(t *testing.T) {
	d := &memDest{}
	useDests(t, map[string]*memDest{"s": d})
	p, err := newPrepared(t, node, []Config{{Name: "s", Dataset: render.Spectrum, QueueSize: 5000,
		Batch: BatchConfig{MaxRecords: 1 << 20, MaxBytes: 1 << 30, MaxInterval: time.Hour}}}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3000 {
		e := session(i, event.Disconnect)
		p.Emit(&e)
	}
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := len(d.lines()); got != 3000 {
		t.Errorf("wrote %d records, want 3000", got)
	}
	// After Close, Emit drops and counts.
	e := session(0, event.Disconnect)
	p.Emit(&e)
	if st := p.Stats()[0]; st.Dropped != 1 || st.Written != 3000 {
		t.Errorf("after close: %+v", st)
	}
}

func TestCloseDeadline(t *testing.T) {
	d := &memDest{gate: make(chan struct{})}
	useDests(t, map[string]*memDest{"s": d})
	p, err := newPrepared(t, node, []Config{{Name: "s", Dataset: render.Spectrum}}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	e := session(0, event.Disconnect)
	p.Emit(&e)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := p.Close(ctx); err == nil || !strings.Contains(err.Error(), `log job "s": not flushed`) {
		t.Errorf("Close with a stuck destination: %v", err)
	}
	close(d.gate)
}

func TestBatchLimits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		byRecords, byBytes, byTime := &memDest{}, &memDest{}, &memDest{}
		useDests(t, map[string]*memDest{"records": byRecords, "bytes": byBytes, "time": byTime})
		p, err := newPrepared(t, node, []Config{
			{Name: "records", Dataset: render.Spectrum, Batch: BatchConfig{MaxRecords: 10, MaxInterval: time.Hour}},
			{Name: "bytes", Dataset: render.Spectrum, Batch: BatchConfig{MaxBytes: 2000, MaxInterval: time.Hour}},
			{Name: "time", Dataset: render.Spectrum, Batch: BatchConfig{MaxInterval: 5 * time.Second}},
		}, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		for i := range 95 {
			e := session(i, event.Disconnect)
			p.Emit(&e)
		}
		synctest.Wait()
		if n := len(byRecords.snapshot()); n != 9 {
			t.Errorf("max_records 10: %d batches before the deadline, want 9", n)
		}
		for _, b := range byRecords.snapshot() {
			if b.Records != 10 || bytes.Count(b.Data, []byte("\n")) != 10 {
				t.Errorf("max_records batch of %d", b.Records)
			}
		}
		for _, b := range byBytes.snapshot() {
			if len(b.Data) > 2000 {
				t.Errorf("max_bytes 2000: batch of %d bytes", len(b.Data))
			}
		}
		if len(byBytes.snapshot()) < 10 {
			t.Errorf("max_bytes: only %d batches", len(byBytes.snapshot()))
		}
		if n := len(byTime.snapshot()); n != 0 {
			t.Errorf("max_interval: %d batches before the interval", n)
		}
		time.Sleep(5 * time.Second)
		synctest.Wait()
		if b := byTime.snapshot(); len(b) != 1 || b[0].Records != 95 {
			t.Errorf("max_interval: %d batches after the interval", len(b))
		}
		if err := p.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
		for name, d := range map[string]*memDest{"records": byRecords, "bytes": byBytes, "time": byTime} {
			if n := len(d.lines()); n != 95 {
				t.Errorf("%s: %d records after Close", name, n)
			}
		}
	})
}

// TestSampling keeps about rate of the sessions, and each kept session
// whole (connect and disconnect together).
func TestSampling(t *testing.T) {
	d := &memDest{}
	useDests(t, map[string]*memDest{"s": d})
	rate := 0.3
	p, err := newPrepared(t, node, []Config{{Name: "s", Dataset: render.Spectrum, SampleRate: &rate, QueueSize: 10000,
		Filter: FilterSpec(where(leaf("ClientPort", "lt", "3024")))}}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	const n = 3000 // ports 1024..4023: the filter keeps 2000 sessions
	for i := range n {
		c := session(i, event.Connect)
		e := c
		e.Type, e.Status, e.DisconnectTime = event.Disconnect, 200, e.Time
		p.Emit(&c)
		p.Emit(&e)
	}
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	per := map[string]int{}
	for _, r := range d.records(t) {
		per[fmt.Sprint(r["ClientPort"])]++
		if r["ClientPort"].(float64) >= 3024 {
			t.Fatalf("filtered record written: %v", r)
		}
	}
	for port, c := range per {
		if c != 2 {
			t.Errorf("session %s: %d of its 2 records", port, c)
		}
	}
	if k := len(per); k < 500 || k > 700 {
		t.Errorf("kept %d of 2000 sessions at rate 0.3", k)
	}
	st := p.Stats()[0]
	if st.Filtered != 2000 || st.SampledOut+st.Written != 4000 {
		t.Errorf("stats %+v", st)
	}
}

func TestWriteErrorsCounted(t *testing.T) {
	d := &memDest{fail: errors.New("disk full")}
	useDests(t, map[string]*memDest{"s": d})
	logs := &logCapture{}
	p, err := newPipeline(node, prepared(t, []Config{{Name: "s", Dataset: render.Spectrum}}), nil, slog.New(logs), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 7 {
		e := session(i, event.Disconnect)
		p.Emit(&e)
	}
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if st := p.Stats()[0]; st.WriteErrors != 7 || st.Written != 0 {
		t.Errorf("stats %+v", st)
	}
	reps := logs.find("log job lost records")
	if len(reps) != 1 || reps[0]["lost"].(uint64) != 7 {
		t.Errorf("write errors not reported: %v", reps)
	}
}

// TestPipelineFileCSV runs a real file destination with csv output: the
// header row comes first, then one row per record.
func TestPipelineFileCSV(t *testing.T) {
	path := filepath.Join(t.TempDir(), "edge.csv")
	p, err := newPrepared(t, node, []Config{{Name: "e", Dataset: render.EdgeOne, OutputType: "csv",
		Fields:      []string{"SessionID", "DisconnetReason", "ReceivedBytes"},
		Destination: fileDest(path)}}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	e := session(1, event.Disconnect)
	e.ClientBytes = 77
	p.Emit(&e)
	c := session(2, event.Connect) // edgeone writes nothing at connect
	p.Emit(&c)
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want := "SessionID,DisconnetReason,ReceivedBytes\n" + e.SessionID.String() + ",down:net_exception_peer_close,77\n"
	if string(b) != want {
		t.Errorf("file:\n%s\nwant:\n%s", b, want)
	}
}

func TestConfigYAML(t *testing.T) {
	src := `
- name: spectrum
  dataset: spectrum_events
  fields: [ClientIP, Status]
  timestamp_format: rfc3339
  sample_rate: 0.5
  filter: '{"where":{"and":[{"key":"Event","operator":"eq","value":"disconnect"}]}}'
  output_type: ndjson
  batch: {max_records: 10, max_bytes: 4096, max_interval: 2s}
  queue_size: 100
  destination: {type: stdout}
- name: edge
  dataset: edgeone_l4
  interval: 60s
  filter:
    where:
      or:
        - {key: ReceivedBytes, operator: gt, value: 0}
        - {key: DisconnetReason, operator: "!eq", value: "-"}
  destination: {type: file, path: /tmp/prism-edge.log, max_size_mb: 10, max_backups: 3, max_age_days: 7, compress: true}
- name: cc
  dataset: cloudconnexa
  cloudconnexa: {cloud_id: acme, service: CloudConnexa, region_name: West, categories: {flow_established: Activity.AV}}
`
	var jobs []Config
	dec := yaml.NewDecoder(strings.NewReader(src))
	dec.KnownFields(true)
	if err := dec.Decode(&jobs); err != nil {
		t.Fatal(err)
	}
	if errs := ValidateAll(jobs); len(errs) != 0 {
		t.Fatalf("valid config rejected: %v", errs)
	}
	if jobs[1].Interval != time.Minute || !strings.Contains(string(jobs[1].Filter), `"or"`) || jobs[2].CloudConnexa.CloudID != "acme" {
		t.Errorf("decoded: %+v", jobs)
	}
	// Unknown keys are rejected by the strict decoder.
	dec = yaml.NewDecoder(strings.NewReader("- name: x\n  dataset: spectrum_events\n  fields_typo: [a]\n"))
	dec.KnownFields(true)
	if err := dec.Decode(&jobs); err == nil {
		t.Error("unknown key accepted")
	}
}

func TestConfigValidate(t *testing.T) {
	half, zero := 0.5, 0.0
	tests := []struct {
		cfg  Config
		want []string // "key: substring"
	}{
		{Config{Name: "a", Dataset: render.Spectrum}, nil},
		{Config{Name: "a", Dataset: render.EdgeOne, Interval: time.Second, SampleRate: &half}, nil},
		{Config{}, []string{"name: is required", "dataset: is required"}},
		{Config{Name: "a", Dataset: "http_requests"}, []string{`dataset: unknown dataset "http_requests"`}},
		{Config{Name: "a", Dataset: render.Spectrum, Fields: []string{"Status", "Nope", "Status"}},
			[]string{`fields[1]: unknown field "Nope"`, `fields[2]: field "Status" is listed twice`}},
		{Config{Name: "a", Dataset: render.Spectrum, TimestampFormat: "iso"}, []string{"timestamp_format: unknown timestamp format"}},
		{Config{Name: "a", Dataset: render.EdgeOne, TimestampFormat: "rfc3339"}, []string{"timestamp_format: dataset edgeone_l4 has fixed"}},
		{Config{Name: "a", Dataset: render.Spectrum, SampleRate: &zero}, []string{"sample_rate: must be greater than 0"}},
		{Config{Name: "a", Dataset: render.Spectrum, OutputType: "json"}, []string{"output_type: unknown output type"}},
		{Config{Name: "a", Dataset: render.Spectrum, Interval: time.Minute}, []string{"interval: dataset spectrum_events has no periodic records"}},
		{Config{Name: "a", Dataset: render.EdgeOne, Interval: 500 * time.Millisecond}, []string{"interval: must be at least 1s"}},
		{Config{Name: "a", Dataset: render.Spectrum, Filter: `{"where":{"key":"Status","operator":"eq","value":"x"}}`},
			[]string{"filter: where.value: field Status is an int"}},
		{Config{Name: "a", Dataset: render.Spectrum, Filter: `{"where":`}, []string{"filter: malformed filter JSON"}},
		{Config{Name: "a", Dataset: render.Spectrum, Batch: BatchConfig{MaxRecords: -1}, QueueSize: -2},
			[]string{"batch.max_records: must not be negative", "queue_size: must be between"}},
		{Config{Name: "a", Dataset: render.Spectrum, CloudConnexa: &render.CloudConnexaConfig{}}, []string{"cloudconnexa: is only valid"}},
		{Config{Name: "a", Dataset: render.Spectrum, Destination: deliver.Config{Type: "file"}}, []string{"destination.path: is required"}},
		{Config{Name: "a", Dataset: render.Spectrum, Destination: deliver.Config{Type: "ftp"}}, []string{`destination.type: unknown destination type "ftp"`}},
		{Config{Name: "a", Dataset: render.Spectrum, Destination: deliver.Config{Type: "s3"}}, []string{`destination.bucket: is required for type s3`}},
	}
	for i, tc := range tests {
		errs := tc.cfg.Validate()
		var got []string
		for _, e := range errs {
			got = append(got, e.Error())
		}
		if len(got) != len(tc.want) {
			t.Errorf("case %d: errors %q, want %q", i, got, tc.want)
			continue
		}
		for j, w := range tc.want {
			if !strings.HasPrefix(got[j], w[:strings.Index(w, ":")+1]) || !strings.Contains(got[j], w[strings.Index(w, ":")+2:]) {
				t.Errorf("case %d: error %q, want %q", i, got[j], w)
			}
		}
	}
	errs := ValidateAll([]Config{{Name: "a", Dataset: render.Spectrum}, {Name: "a", Dataset: render.EdgeOne}})
	if len(errs) != 1 || errs[0].Key != "[1].name" {
		t.Errorf("duplicate names: %v", errs)
	}
	if err := cfgerr.Prepare(Jobs{{Name: "a", Dataset: "nope"}}); err == nil || !strings.Contains(err.Error(), "[0].dataset: ") {
		t.Errorf("Prepare with a bad job: %v", err)
	}
}
