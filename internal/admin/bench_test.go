package admin

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"

	"github.com/prismproxy/prism/internal/event"
	"github.com/prismproxy/prism/internal/logjob"
	"github.com/prismproxy/prism/internal/origin"
)

// BenchmarkTallyEmit is what the admin side adds to every record the data
// path emits (two per short connection: connect and disconnect).
func BenchmarkTallyEmit(b *testing.B) {
	tl := NewTally([]string{"a", "b", "c", "web"})
	e := event.New("web", event.NewID(time.Now()))
	e.Type, e.Status, e.Firewall, e.FirewallMatch = event.Disconnect, 200, true, event.FirewallWhitelistIP
	e.ClientBytes, e.OriginBytes = 64, 64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			tl.Emit(&e)
		}
	})
}

// BenchmarkScrape is one GET /metrics with the given number of open
// sessions (each scrape walks them for the gauges).
func BenchmarkScrape(b *testing.B) {
	for _, open := range []int{0, 1000, 100_000} {
		b.Run(fmt.Sprintf("open=%d", open), func(b *testing.B) {
			reg := new(event.Registry)
			now := time.Now()
			for i := range open {
				e := event.New("web", event.NewID(now))
				e.StartTime = now
				e.ClientAddr = netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), 1000)
				e.OriginAddr = netip.MustParseAddrPort(fmt.Sprintf("127.0.0.%d:80", 1+i%4))
				reg.Add(event.NewLive(e))
			}
			tl := NewTally([]string{"web"})
			for range 1000 {
				e := event.New("web", event.NewID(now))
				e.Type, e.Status = event.Disconnect, 200
				tl.Emit(&e)
			}
			var lat origin.Latency
			lat.Observe(time.Millisecond)
			p := &Parts{Version: "bench", Registry: reg, Tally: tl, Reloads: new(Reloads),
				Apps: []App{{ID: "web", Protocol: "tcp", Dial: &lat}},
				Jobs: func() []logjob.Stats {
					return []logjob.Stats{{Job: "spectrum", Dataset: "spectrum_events"}, {Job: "edgeone", Dataset: "edgeone_l4"}}
				}}
			s, err := New(Config{Listen: "127.0.0.1:0"}, p, nil)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				rr := httptest.NewRecorder()
				s.srv.Handler.ServeHTTP(rr, localRequest("/metrics"))
				if rr.Code != http.StatusOK {
					b.Fatal(rr.Code)
				}
			}
		})
	}
}
