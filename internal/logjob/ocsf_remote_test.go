package logjob

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/prismproxy/prism/internal/deliver"
	"github.com/prismproxy/prism/internal/render"
	"github.com/prismproxy/prism/internal/render/ocsftest"
	"github.com/prismproxy/prism/internal/sink/httpdst"
	"github.com/prismproxy/prism/internal/sink/kafkadst"
	"github.com/prismproxy/prism/internal/sink/sinktest"
	"github.com/prismproxy/prism/internal/spool"
)

// ocsfRecord checks one delivered OCSF record against the schema and
// returns its session uid and activity_id.
func ocsfRecord(t *testing.T, s *ocsftest.Schema, rec []byte) (string, float64) {
	t.Helper()
	if probs := s.Validate(rec); len(probs) > 0 {
		t.Fatalf("record %s: %v", rec, probs)
	}
	var v struct {
		ActivityID     float64 `json:"activity_id"`
		ConnectionInfo struct {
			UID string `json:"uid"`
		} `json:"connection_info"`
	}
	if err := json.Unmarshal(rec, &v); err != nil {
		t.Fatalf("record %q: %v", rec, err)
	}
	return v.ConnectionInfo.UID, v.ActivityID
}

// TestOCSFJobRemoteDestinations: the ocsf dataset goes through the remote
// destinations like the vendor datasets: over HTTP (gzip, through a spool)
// and to Kafka (keyed by session), every record delivered and valid
// against the OCSF 1.8.0 schema, each session's Open before its Close.
func TestOCSFJobRemoteDestinations(t *testing.T) {
	schema, err := ocsftest.Load()
	if err != nil {
		t.Fatal(err)
	}
	const n = 120
	recv := sinktest.NewReceiver(t)
	kc, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, "ocsf"))
	if err != nil {
		t.Fatal(err)
	}
	defer kc.Close()
	p, err := newPrepared(t, node, []Config{
		{Name: "h", Dataset: render.OCSF, Batch: BatchConfig{MaxRecords: 50},
			Destination: deliver.Config{Type: deliver.TypeHTTP, HTTP: httpdst.Config{URL: recv.URL}},
			Spool:       spool.Config{Dir: t.TempDir()}},
		{Name: "k", Dataset: render.OCSF, Batch: BatchConfig{MaxRecords: 50},
			Destination: deliver.Config{Type: deliver.TypeKafka, Kafka: kafkadst.Config{Brokers: kc.ListenAddrs(), Topic: "ocsf"}}},
	}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	conns := emitSessions(p, n)
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, st := range p.Stats() {
		if st.Dataset != render.OCSF || st.Delivery == nil || st.Delivery.Delivered != 2*n || st.Delivery.Pending != 0 {
			t.Fatalf("job %s: dataset %s, delivery %+v", st.Job, st.Dataset, st.Delivery)
		}
	}

	want := map[string]bool{}
	for _, e := range conns {
		want[e.SessionID.String()] = true
	}
	// HTTP: every record once, per session Open (1) then Close (2).
	if !recv.WaitRecords(2*n, 10*time.Second) {
		t.Fatalf("http receiver has %d records, want %d", len(recv.Records()), 2*n)
	}
	acts := map[string][]float64{}
	for _, r := range recv.Records() {
		uid, act := ocsfRecord(t, schema, r)
		acts[uid] = append(acts[uid], act)
	}
	for uid := range want {
		if a := acts[uid]; len(a) != 2 || a[0] != 1 || a[1] != 2 {
			t.Errorf("http: session %s activities %v, want [1 2]", uid, a)
		}
	}

	// Kafka: keyed by the session id, which is the record's connection uid.
	cl, err := kgo.NewClient(kgo.SeedBrokers(kc.ListenAddrs()...), kgo.ConsumeTopics("ocsf"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	kacts := map[string][]float64{}
	for got := 0; got < 2*n; {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consumed %d of %d", got, 2*n)
		}
		fs.EachRecord(func(r *kgo.Record) {
			got++
			uid, act := ocsfRecord(t, schema, r.Value)
			if uid != string(r.Key) {
				t.Fatalf("kafka key %q, connection_info.uid %q", r.Key, uid)
			}
			kacts[uid] = append(kacts[uid], act)
		})
	}
	for uid := range want {
		if a := kacts[uid]; len(a) != 2 || a[0] != 1 || a[1] != 2 {
			t.Errorf("kafka: session %s activities %v, want [1 2]", uid, a)
		}
	}
}
