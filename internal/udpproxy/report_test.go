package udpproxy

import (
	"context"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/prismproxy/prism/internal/event"
	"github.com/prismproxy/prism/internal/origin"
	"github.com/prismproxy/prism/internal/slogtest"
	"github.com/prismproxy/prism/internal/testpeer"
)

// TestDropsReported: a flood past the session caps once left one log line
// with a stale count, and the UDP counters were not in the shutdown
// totals. Drops are now reported by cause every period and at shutdown,
// and the reports add up to the counters.
func TestDropsReported(t *testing.T) {
	o := testpeer.StartUDPEcho(t, "")
	logger, logs := slogtest.JSON(t)
	s, err := New(prepared(t, App{ID: "flood", Listen: listenOn(t, "127.0.0.1:0"), Pool: staticPool(t, o.Addr().String()),
		UDP: Config{IdleTimeout: time.Hour, MaxSessions: 2, MaxSessionsPerClient: 2}}), newCollector(), nil, logger)
	if err != nil {
		t.Fatal(err)
	}
	s.reportEvery = 100 * time.Millisecond
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	flood := func(clients, each int) {
		for range clients {
			c := dial(t, addrOf(s, 0))
			for range each {
				_, _ = c.Write([]byte("flood"))
			}
		}
	}
	flood(20, 50)
	eventually(t, "a periodic drop report", func() bool { return len(logs.Records("udp datagrams dropped")) > 0 })
	flood(20, 50) // reported at shutdown at the latest
	eventually(t, "the second flood to arrive", func() bool { return s.Stats().ClientDatagrams >= 1800 })
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	st := s.Stats()
	if st.DropCapApp == 0 {
		t.Fatalf("no cap drops: %+v", st)
	}
	var reported, byCause float64
	for _, l := range logs.Records("udp datagrams dropped") {
		reported += l["dropped"].(float64)
		byCause += l["max_sessions"].(float64)
		if l["app"] != "flood" {
			t.Errorf("drop line without the app: %v", l)
		}
	}
	var all int64
	for _, v := range st.drops() {
		all += v
	}
	if int64(reported) != all || int64(byCause) != st.DropCapApp {
		t.Fatalf("reports add up to %v (%v max_sessions), counters say %d (%d max_sessions)", reported, byCause, all, st.DropCapApp)
	}
	tot := logs.Records("udp app totals")
	if len(tot) != 1 || int64(tot[0]["dropped_max_sessions"].(float64)) != st.DropCapApp ||
		int64(tot[0]["client_datagrams"].(float64)) != st.ClientDatagrams || int64(tot[0]["dropped"].(float64)) != all {
		t.Fatalf("shutdown totals %v, counters %+v", tot, st)
	}
}

// gatedPool holds Candidates until gate is closed: a session stays in
// setup, queueing what its client sends.
type gatedPool struct {
	Origins
	gate chan struct{}
}

func (g gatedPool) Candidates(ctx context.Context, c netip.Addr, off int) ([]origin.Target, *origin.Failure) {
	<-g.gate
	return g.Origins.Candidates(ctx, c, off)
}

// TestDropsCountedWhenNoSessionCanHaveThem: datagrams that would open a
// session while the app drains, and those queued for a session whose
// origin flow never comes up, are dropped and counted (draining,
// setup_failed); they once vanished with no counter.
func TestDropsCountedWhenNoSessionCanHaveThem(t *testing.T) {
	t.Run("setup failed", func(t *testing.T) {
		em := newCollector()
		gate := make(chan struct{})
		pool := gatedPool{&fakePool{targets: []origin.Target{{Path: filepath.Join(t.TempDir(), "no.sock")}}}, gate}
		s := startServer(t, App{Pool: pool}, em, nil)
		c := dial(t, addrOf(s, 0))
		for range 10 {
			if _, err := c.Write([]byte("x")); err != nil {
				t.Fatal(err)
			}
		}
		eventually(t, "10 datagrams received", func() bool { return s.Stats().ClientDatagrams == 10 })
		close(gate)
		em.NextOf(t, event.OriginError)
		eventually(t, "the queued datagrams counted", func() bool { return s.Stats().DropSetup == 10 })
	})
	t.Run("draining", func(t *testing.T) {
		o := testpeer.StartUDPEcho(t, "")
		s := startServer(t, App{Pool: staticPool(t, o.Addr().String()), UDP: Config{IdleTimeout: time.Hour}}, newCollector(), nil)
		roundTrip(t, dial(t, addrOf(s, 0)), "keeps the drain waiting")
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go func() { _ = s.Drain(ctx) }()
		eventually(t, "draining", s.draining.Load)
		c := dial(t, addrOf(s, 0))
		for range 5 {
			if _, err := c.Write([]byte("new flow")); err != nil {
				t.Fatal(err)
			}
		}
		eventually(t, "the new flow's datagrams counted", func() bool { return s.Stats().DropDraining == 5 })
	})
}
