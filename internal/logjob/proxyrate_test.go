//go:build proxybench

package logjob_test

// The proxy's connection rate with three log jobs on versus none (issue 6:
// within 10 %). It needs internal/proxy, so it sits behind a build tag to
// keep this package's tests independent of the proxy's pace of change:
//
//	go test -tags proxybench -run '^$' -bench ConnRate -benchtime 20000x ./internal/logjob/

import (
	"context"
	"io"
	"net"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prismproxy/prism/internal/cfgerr"
	"github.com/prismproxy/prism/internal/config"
	"github.com/prismproxy/prism/internal/daemon/appbuild"
	"github.com/prismproxy/prism/internal/event"
	"github.com/prismproxy/prism/internal/logjob"
	"github.com/prismproxy/prism/internal/proxy"
	"github.com/prismproxy/prism/internal/render"
	"github.com/prismproxy/prism/internal/testpeer"
)

func BenchmarkConnRate(b *testing.B) {
	origin := testpeer.Echo(b)
	for _, jobs := range []int{0, 3} {
		b.Run(map[int]string{0: "jobs=0", 3: "jobs=3"}[jobs], func(b *testing.B) {
			cfg, err := config.Parse("bench.yaml", []byte(`node: {colo: SJC, id: n1}
apps:
  - id: app
    listen: ["127.0.0.1:0"]
    origins: {addresses: ["`+origin+`"]}
`))
			if err != nil {
				b.Fatal(err)
			}
			reg := new(event.Registry)
			var em event.Emitter = event.EmitterFunc(func(*event.Event) {})
			var p *logjob.Pipeline
			if jobs > 0 {
				dir := b.TempDir()
				lj := logjob.Jobs{
					{Name: "spectrum", Dataset: render.Spectrum, Destination: logjob.FileDest(filepath.Join(dir, "s.log"))},
					{Name: "edgeone", Dataset: render.EdgeOne, Interval: time.Second, Destination: logjob.FileDest(filepath.Join(dir, "e.log"))},
					{Name: "cc", Dataset: render.CloudConnexa, Destination: logjob.FileDest(filepath.Join(dir, "c.log"))},
				}
				if err := cfgerr.Prepare(lj); err != nil {
					b.Fatal(err)
				}
				p, err = logjob.New(render.Node{Colo: "SJC", ID: "n1"}, lj, reg, nil)
				if err != nil {
					b.Fatal(err)
				}
				em = p
			}
			parts, err := appbuild.Build(&cfg.Apps[0], appbuild.Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer parts.Close()
			s, err := proxy.New(parts.TCP(), em, reg, nil)
			if err != nil {
				b.Fatal(err)
			}
			if err := s.Start(); err != nil {
				b.Fatal(err)
			}
			addr := s.Addrs()[0].String()
			var next atomic.Int64
			const clients = 8
			b.ResetTimer()
			var wg sync.WaitGroup
			for range clients {
				wg.Go(func() {
					buf := make([]byte, 1)
					for next.Add(1) <= int64(b.N) {
						c, err := net.Dial("tcp", addr)
						if err != nil {
							b.Error(err)
							return
						}
						if _, err := c.Write([]byte{'x'}); err != nil {
							b.Error(err)
						}
						if _, err := io.ReadFull(c, buf); err != nil {
							b.Error(err)
						}
						c.Close()
					}
				})
			}
			wg.Wait()
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "conn/s")
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = s.Shutdown(ctx)
			if p != nil {
				if err := p.Close(ctx); err != nil {
					b.Fatal(err)
				}
				var dropped, written uint64
				for _, st := range p.Stats() {
					dropped += st.Dropped
					written += st.Written
				}
				b.ReportMetric(float64(dropped), "dropped")
				b.ReportMetric(float64(written)/float64(b.N), "records/conn")
			}
		})
	}
}
