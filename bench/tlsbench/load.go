package main

import (
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prismproxy/prism/bench/internal/echo"
)

// clientConfig makes every connection a full handshake with X25519.
func clientConfig() *tls.Config {
	return &tls.Config{
		InsecureSkipVerify: true, // the proxy's certificate is not what is measured
		ServerName:         "bench.example",
		CurvePreferences:   []tls.CurveID{tls.X25519},
	}
}

// connRate: full TLS handshake, 64-byte echo through the proxy, close; from
// c.conc workers for c.dur. Returns conn/s, p50 ms, p99 ms, proxy CPU
// µs/conn, errors.
func connRate(c *config, p *proxy) ([]float64, error) {
	run := func(dur time.Duration) (n, errs int, elapsed time.Duration, lat []time.Duration) {
		var (
			mu     sync.Mutex
			wg     sync.WaitGroup
			nerr   atomic.Int64
			start  = time.Now()
			stopAt = start.Add(dur)
		)
		for w := 0; w < c.conc; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				cfg := clientConfig()
				msg := make([]byte, 64)
				msg[0] = echo.ModeEcho
				back := make([]byte, 63)
				var mine []time.Duration
				for time.Now().Before(stopAt) {
					t0 := time.Now()
					raw, err := net.Dial("tcp", p.addr)
					if err != nil {
						nerr.Add(1)
						continue
					}
					_ = raw.SetDeadline(t0.Add(5 * time.Second))
					tc := tls.Client(raw, cfg)
					_, err = tc.Write(msg) // runs the handshake first
					if err == nil {
						_, err = io.ReadFull(tc, back)
					}
					raw.Close()
					if err != nil {
						nerr.Add(1)
						continue
					}
					mine = append(mine, time.Since(t0))
				}
				mu.Lock()
				lat = append(lat, mine...)
				mu.Unlock()
			}()
		}
		wg.Wait()
		return len(lat), int(nerr.Load()), time.Since(start), lat
	}
	run(500 * time.Millisecond) // warm up
	c0 := cpuTime(p.pid)
	n, errs, elapsed, lat := run(c.dur)
	cpu := cpuTime(p.pid) - c0
	if n == 0 {
		return nil, fmt.Errorf("no connection succeeded (%d errors)", errs)
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	return []float64{float64(n) / elapsed.Seconds(), ms(lat[n/2]), ms(lat[n*99/100]),
		float64(cpu.Microseconds()) / float64(n), float64(errs)}, nil
}

// bulkRate uploads over one TLS stream for c.dur. Returns Gbit/s and proxy
// CPU s/GB. The count is of bytes the client wrote; what sits in socket
// buffers at the end (a few MB) is well under 1% of a run.
func bulkRate(c *config, p *proxy) ([]float64, error) {
	run := func(dur time.Duration) (int64, time.Duration, error) {
		raw, err := net.Dial("tcp", p.addr)
		if err != nil {
			return 0, 0, err
		}
		defer raw.Close()
		tc := tls.Client(raw, clientConfig())
		if err := tc.Handshake(); err != nil {
			return 0, 0, err
		}
		buf := make([]byte, 256<<10)
		buf[0] = echo.ModeSink
		var sent int64
		start := time.Now()
		stopAt := start.Add(dur)
		for time.Now().Before(stopAt) {
			n, err := tc.Write(buf)
			sent += int64(n)
			if err != nil {
				return sent, time.Since(start), err
			}
			buf[0] = 0
		}
		return sent, time.Since(start), nil
	}
	if _, _, err := run(300 * time.Millisecond); err != nil {
		return nil, fmt.Errorf("warm-up: %w", err)
	}
	c0 := cpuTime(p.pid)
	sent, elapsed, err := run(c.dur)
	cpu := cpuTime(p.pid) - c0
	if err != nil {
		return nil, err
	}
	return []float64{float64(sent) * 8 / elapsed.Seconds() / 1e9, cpu.Seconds() / (float64(sent) / 1e9)}, nil
}
