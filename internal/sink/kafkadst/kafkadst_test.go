package kafkadst

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/prismproxy/prism/internal/cfgerr"
	"github.com/prismproxy/prism/internal/sink/sinktest"
)

// cluster starts an in-process Kafka cluster on loopback with topic
// "prism" of 4 partitions.
func cluster(t *testing.T) []string {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(4, "prism")) // kfake listens on 127.0.0.1
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c.ListenAddrs()
}

// consumeAll reads n records of topic from the start.
func consumeAll(t *testing.T, brokers []string, n int) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics("prism"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out []*kgo.Record
	for len(out) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consumed %d of %d records", len(out), n)
		}
		fs.EachRecord(func(r *kgo.Record) { out = append(out, r) })
	}
	return out
}

func TestRecordsKeyedBySessionInOrder(t *testing.T) {
	brokers := cluster(t)
	s, err := New(prepared(t, Config{Brokers: brokers, Topic: "prism"}))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	t0 := time.Now()
	// 3 batches interleaving 20 sessions, 5 records each.
	var sent int
	for b := 0; b < 3; b++ {
		var sess []uint32
		for i := 0; i < 40; i++ {
			sess = append(sess, uint32(i%20))
		}
		batch := sinktest.Batch(t0, sess...)
		// Tag each record with a global sequence so per-session order can be checked.
		if err := s.Send(context.Background(), batch); err != nil {
			t.Fatal(err)
		}
		sent += batch.Records
	}
	recs := consumeAll(t, brokers, sent)
	if len(recs) != sent {
		t.Fatalf("consumed %d, sent %d", len(recs), sent)
	}
	partOf := map[string]int32{}
	perSession := map[string]int{}
	for _, r := range recs {
		var v struct {
			S string `json:"s"`
			N int    `json:"n"`
		}
		if err := json.Unmarshal(r.Value, &v); err != nil {
			t.Fatalf("value %q: %v", r.Value, err)
		}
		if string(r.Key) != v.S {
			t.Fatalf("key %q, record of session %q", r.Key, v.S)
		}
		if p, ok := partOf[v.S]; ok && p != r.Partition {
			t.Fatalf("session %s on partitions %d and %d", v.S, p, r.Partition)
		}
		partOf[v.S] = r.Partition
		perSession[v.S]++
	}
	if len(perSession) != 20 {
		t.Fatalf("%d sessions", len(perSession))
	}
	parts := map[int32]bool{}
	for _, p := range partOf {
		parts[p] = true
	}
	if len(parts) < 2 {
		t.Errorf("20 sessions all on one partition: keys are not spread")
	}
	// Order: within a partition, records of one session come in the order sent
	// (n grows within each batch; batches are sent one after another).
	seen := map[string][]int{}
	for _, r := range recs {
		var v struct {
			S string `json:"s"`
			N int    `json:"n"`
		}
		json.Unmarshal(r.Value, &v)
		seen[v.S] = append(seen[v.S], v.N)
	}
	for s, ns := range seen {
		// Each batch gives a session two records, n and n+20; three batches.
		if len(ns) != 6 {
			t.Fatalf("session %s: %d records", s, len(ns))
		}
		for i := 0; i < 6; i += 2 {
			if ns[i+1] != ns[i]+20 {
				t.Fatalf("session %s out of order: %v", s, ns)
			}
		}
	}
}

func TestBrokerDownIsATemporaryError(t *testing.T) {
	s, err := New(prepared(t, Config{Brokers: []string{"127.0.0.1:1"}, Topic: "prism", Timeout: time.Second}))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err = s.Send(ctx, sinktest.Batch(time.Now(), 1))
	if err == nil {
		t.Fatal("no error with no broker")
	}
	// The records only time out; the error says why (connHook).
	if want := "broker 127.0.0.1:1: connection failed: "; !strings.Contains(err.Error(), want) {
		t.Errorf("error does not name the cause %q:\n%v", want, err)
	}
}

// TestSendGivesUpOnAHungBroker: a broker that takes produce requests and
// never answers them holds the records in franz-go's idempotent producer,
// whatever the context says. Send returns once its ctx is done (Close of
// the delivery layer) or its timeout has passed, and the next Send, on a
// new client, delivers once the broker answers again.
func TestSendGivesUpOnAHungBroker(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "prism"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	var hang atomic.Bool
	hang.Store(true)
	produced := make(chan struct{})
	var once sync.Once
	c.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		if !hang.Load() {
			return nil, nil, false // answered as usual
		}
		once.Do(func() { close(produced) })
		return nil, nil, true // taken, never answered
	})
	for _, tc := range []struct {
		name    string
		timeout time.Duration
		cancel  bool
	}{
		{"ctx done", time.Minute, true},
		{"timeout", time.Second, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := New(prepared(t, Config{Brokers: c.ListenAddrs(), Topic: "prism", Timeout: tc.timeout}))
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tc.cancel {
				go func() { <-produced; cancel() }() // once the request is in flight
			}
			sent := make(chan error, 1)
			go func() { sent <- s.Send(ctx, sinktest.Batch(time.Now(), 1, 2, 3)) }()
			select {
			case err := <-sent:
				if err == nil {
					t.Fatal("Send succeeded against a broker that never answered")
				}
				t.Log(err)
			case <-time.After(15 * time.Second):
				t.Fatal("Send still waits for a hung broker after its ctx was done or its timeout passed")
			}
		})
	}
	hang.Store(false)
	s, err := New(prepared(t, Config{Brokers: c.ListenAddrs(), Topic: "prism", Timeout: time.Second}))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Send(ctx, sinktest.Batch(time.Now(), 7)); err == nil {
		t.Fatal("Send with a done ctx succeeded")
	}
	// The client the done ctx closed is replaced: this Send delivers.
	if err := s.Send(context.Background(), sinktest.Batch(time.Now(), 8)); err != nil {
		t.Fatalf("Send after a cancelled one: %v", err)
	}
}

// prepared is c defaulted and validated, as New expects it.
func prepared(t testing.TB, c Config) Config {
	t.Helper()
	if err := cfgerr.Prepare(&c); err != nil {
		t.Fatal(err)
	}
	return c
}
