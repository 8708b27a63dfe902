package deliver

import (
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/prismproxy/prism/internal/sink/kafkadst"
	"github.com/prismproxy/prism/internal/spool"
)

// TestCloseIsBoundedWithAHungKafkaBroker: a broker that takes produce
// requests and never answers them does not hold Close past the flush
// timeout: with a spool, the batch stays in it and the lock is let go (a
// reload's new job can open it); without one, the batch is counted as
// dropped at shutdown.
func TestCloseIsBoundedWithAHungKafkaBroker(t *testing.T) {
	for _, withSpool := range []bool{true, false} {
		t.Run(map[bool]string{true: "spool", false: "memory"}[withSpool], func(t *testing.T) {
			c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "prism"))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			produced := make(chan struct{})
			var once sync.Once
			c.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
				c.KeepControl()
				once.Do(func() { close(produced) })
				return nil, nil, true // taken, never answered
			})
			var sp spool.Config
			if withSpool {
				sp.Dir = t.TempDir()
			}
			cfg := Config{Type: TypeKafka, Kafka: kafkadst.Config{Brokers: c.ListenAddrs(), Topic: "prism"}, FlushTimeout: 200 * time.Millisecond}
			d := newDel(t, cfg, sp)
			n := writeBatches(t, d, 0, 1)
			<-produced
			closed := make(chan error, 1)
			go func() { closed <- d.Close() }()
			select {
			case err := <-closed:
				if withSpool && err != nil {
					t.Fatal(err)
				}
			case <-time.After(15 * time.Second):
				t.Fatal("Close still waits for the hung broker, long past the flush timeout")
			}
			st := d.DeliveryStats()
			if st.Delivered != 0 {
				t.Fatalf("delivered %d to a broker that never answered", st.Delivered)
			}
			if !withSpool {
				if st.DroppedShutdown != uint64(n) {
					t.Fatalf("dropped at shutdown %d, want %d", st.DroppedShutdown, n)
				}
				return
			}
			s := holdSpool(t, sp.Dir) // the lock was let go
			defer s.Close()
			if got := s.Stats().Records; got != n {
				t.Fatalf("%d records left in the spool, want %d", got, n)
			}
		})
	}
}
