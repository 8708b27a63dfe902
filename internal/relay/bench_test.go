//go:build linux

package relay

import (
	"io"
	"sort"
	"testing"
	"time"
)

// BenchmarkPingPong is one request/response exchange of 64 bytes each way
// through a relay between two loopback TCP connections, per mode; it
// reports the p50 and p99 latency of an exchange next to ns/op. The
// keep-alive and wake sections of bench/ measure the same against other
// proxies, with the proxy in its own process.
func BenchmarkPingPong(b *testing.B) {
	for _, mode := range allModes {
		b.Run(mode.String(), func(b *testing.B) {
			g := newRig(b, legTCP, legTCP, Options{Mode: mode})
			msg, got := make([]byte, 64), make([]byte, 64)
			lat := make([]time.Duration, 0, b.N)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				t0 := time.Now()
				if _, err := g.client.Write(msg); err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(g.origin, got); err != nil {
					b.Fatal(err)
				}
				if _, err := g.origin.Write(got); err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(g.client, got); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(t0))
			}
			b.StopTimer()
			sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
			b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds()), "p50-ns")
			b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds()), "p99-ns")
			g.relay.Stop()
			g.result(b)
		})
	}
}
