package logjob

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/prismproxy/prism/internal/deliver"
	"github.com/prismproxy/prism/internal/event"
	"github.com/prismproxy/prism/internal/render"
	"github.com/prismproxy/prism/internal/sink/kafkadst"
	"github.com/prismproxy/prism/internal/sink/s3dst"
	"github.com/prismproxy/prism/internal/spool"
)

// emitSessions emits a connect and a disconnect for n sessions, the
// connects of all sessions first (so that batches interleave sessions).
func emitSessions(p *Pipeline, n int) []event.Event {
	var conns []event.Event
	for i := 0; i < n; i++ {
		conns = append(conns, session(i, event.Connect))
		p.Emit(&conns[i])
	}
	for i := range conns {
		d := conns[i]
		d.Type, d.Status, d.DisconnectTime = event.Disconnect, 200, time.Now()
		p.Emit(&d)
	}
	return conns
}

// TestKafkaJobEndToEnd: a spectrum_events job delivers to an in-process
// Kafka cluster; every record comes back, keyed by its session, each
// session on one partition with its connect before its disconnect.
func TestKafkaJobEndToEnd(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, "spectrum"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	p, err := newPrepared(t, node, []Config{{Name: "k", Dataset: render.Spectrum, Fields: []string{"Event", "ClientPort"},
		Batch:       BatchConfig{MaxRecords: 64},
		Destination: deliver.Config{Type: deliver.TypeKafka, Kafka: kafkadst.Config{Brokers: c.ListenAddrs(), Topic: "spectrum"}},
		Spool:       spool.Config{Dir: t.TempDir()}}}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	const n = 300
	conns := emitSessions(p, n)
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	st := p.Stats()[0].Delivery
	if st == nil || st.Delivered != 2*n || st.Pending != 0 {
		t.Fatalf("delivery stats %+v", st)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ConsumeTopics("spectrum"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	type seen struct {
		part   int32
		events []string
	}
	bySession := map[string]*seen{}
	for got := 0; got < 2*n; {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consumed %d of %d", got, 2*n)
		}
		fs.EachRecord(func(r *kgo.Record) {
			got++
			var v struct{ Event string }
			if err := json.Unmarshal(r.Value, &v); err != nil {
				t.Fatalf("value %q", r.Value)
			}
			s := bySession[string(r.Key)]
			if s == nil {
				s = &seen{part: r.Partition}
				bySession[string(r.Key)] = s
			}
			if s.part != r.Partition {
				t.Fatalf("session %s on partitions %d and %d", r.Key, s.part, r.Partition)
			}
			s.events = append(s.events, v.Event)
		})
	}
	for _, e := range conns {
		s := bySession[e.SessionID.String()]
		if s == nil || len(s.events) != 2 || s.events[0] != "connect" || s.events[1] != "disconnect" {
			t.Fatalf("session %s: %+v", e.SessionID, s)
		}
	}
}

// TestS3JobEndToEnd: a job delivers gzip objects to an S3 server; every
// record is in one of the objects, whose names carry the batch's times.
func TestS3JobEndToEnd(t *testing.T) {
	srv := httptest.NewServer(gofakes3.New(s3mem.New()).Server())
	defer srv.Close()
	cl, err := minio.New(srv.Listener.Addr().String(), &minio.Options{Creds: credentials.NewStaticV4("AK", "SK", ""), BucketLookup: minio.BucketLookupPath})
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.MakeBucket(context.Background(), "logs", minio.MakeBucketOptions{}); err != nil {
		t.Fatal(err)
	}
	p, err := newPrepared(t, node, []Config{{Name: "s", Dataset: render.Spectrum, Fields: []string{"Event", "ClientPort"},
		Batch: BatchConfig{MaxRecords: 100},
		Destination: deliver.Config{Type: deliver.TypeS3, S3: s3dst.Config{Bucket: "logs", Prefix: "spectrum/{DATE}", Endpoint: srv.URL,
			PathStyle: true, AccessKeyID: "AK", SecretAccessKey: "SK"}}}}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	emitSessions(p, 150)
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	records, objects := 0, 0
	day := time.Now().UTC().Format("20060102")
	for o := range cl.ListObjects(context.Background(), "logs", minio.ListObjectsOptions{Recursive: true}) {
		if o.Err != nil {
			t.Fatal(o.Err)
		}
		objects++
		if want := "spectrum/" + day + "/" + day + "T"; len(o.Key) < len(want) || o.Key[:len(want)] != want {
			t.Errorf("key %q", o.Key)
		}
		obj, _ := cl.GetObject(context.Background(), "logs", o.Key, minio.GetObjectOptions{})
		raw, _ := io.ReadAll(obj)
		zr, err := gzip.NewReader(bytes.NewReader(raw))
		if err != nil {
			t.Fatalf("%s: %v", o.Key, err)
		}
		body, _ := io.ReadAll(zr)
		records += bytes.Count(body, []byte("\n"))
	}
	if objects != 3 || records != 300 {
		t.Fatalf("%d objects, %d records; want 3 and 300", objects, records)
	}
}
