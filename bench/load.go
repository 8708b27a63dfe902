package main

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prismproxy/prism/bench/internal/echo"
)

// bulkResult is one bulk transfer run.
type bulkResult struct {
	bytes   int64
	elapsed time.Duration
}

func (r bulkResult) gbps() float64 { return float64(r.bytes) * 8 / r.elapsed.Seconds() / 1e9 }

// bulk uploads through addr on `streams` connections until maxBytes in
// total were sent or dur elapsed, and waits until the origin confirmed
// every byte.
func bulk(addr string, streams int, dur time.Duration, maxBytes int64) (bulkResult, error) {
	var (
		sent     atomic.Int64
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
	)
	fail := func(err error) { errOnce.Do(func() { firstErr = err }) }
	start := time.Now()
	stopAt := start.Add(dur)
	for i := 0; i < streams; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.Dial("tcp", addr)
			if err != nil {
				fail(err)
				return
			}
			defer c.Close()
			buf := make([]byte, 256<<10)
			buf[0] = echo.ModeSink
			var mine int64
			first := true
			for time.Now().Before(stopAt) && sent.Load() < maxBytes {
				n, err := c.Write(buf)
				mine += int64(n)
				sent.Add(int64(n))
				if err != nil {
					fail(err)
					return
				}
				if first {
					buf[0], first = 0, false
				}
			}
			_ = c.(*net.TCPConn).CloseWrite()
			var b [8]byte
			if _, err := io.ReadFull(c, b[:]); err != nil {
				fail(fmt.Errorf("read sink count: %w", err))
				return
			}
			if got := int64(binary.BigEndian.Uint64(b[:])); got != mine-1 {
				fail(fmt.Errorf("origin got %d bytes, sent %d", got, mine-1))
			}
		}()
	}
	wg.Wait()
	return bulkResult{bytes: sent.Load(), elapsed: time.Since(start)}, firstErr
}

// connResult is one short-connection run.
type connResult struct {
	n, errors int
	elapsed   time.Duration
	p50, p99  time.Duration
}

// connRate opens short connections through addr from conc workers: connect,
// send 64 bytes, read the echo, close; until total connections were made or
// dur elapsed.
func connRate(addr string, total, conc int, dur time.Duration) connResult {
	var (
		next  atomic.Int64
		errs  atomic.Int64
		mu    sync.Mutex
		lat   = make([]time.Duration, 0, total)
		wg    sync.WaitGroup
		start = time.Now()
	)
	stopAt := start.Add(dur)
	for w := 0; w < conc; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			msg := make([]byte, 64)
			msg[0] = echo.ModeEcho
			back := make([]byte, len(msg)-1) // the mode byte is not echoed
			mine := make([]time.Duration, 0, total/conc+1)
			for next.Add(1) <= int64(total) && time.Now().Before(stopAt) {
				t0 := time.Now()
				c, err := net.Dial("tcp", addr)
				if err != nil {
					errs.Add(1)
					continue
				}
				_ = c.SetDeadline(t0.Add(5 * time.Second))
				if _, err := c.Write(msg); err != nil {
					errs.Add(1)
					c.Close()
					continue
				}
				if _, err := io.ReadFull(c, back); err != nil {
					errs.Add(1)
					c.Close()
					continue
				}
				c.Close()
				mine = append(mine, time.Since(t0))
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	r := connResult{n: len(lat), errors: int(errs.Load()), elapsed: time.Since(start)}
	if len(lat) > 0 {
		sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
		r.p50 = lat[len(lat)/2]
		r.p99 = lat[len(lat)*99/100]
	}
	return r
}

// openIdle opens n connections through addr, moves 2 bytes each way on each
// (so both legs exist and have carried data), and returns them open.
func openIdle(addr string, n int) ([]net.Conn, error) {
	conns := make([]net.Conn, n)
	var (
		next     atomic.Int64
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
	)
	for w := 0; w < 32; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			msg := []byte{echo.ModeEcho, 'x'}
			back := make([]byte, 1)
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				c, err := net.Dial("tcp", addr)
				if err == nil {
					_ = c.SetDeadline(time.Now().Add(10 * time.Second))
					if _, err = c.Write(msg); err == nil {
						_, err = io.ReadFull(c, back)
					}
					_ = c.SetDeadline(time.Time{})
				}
				if err != nil {
					errOnce.Do(func() { firstErr = fmt.Errorf("idle conn %d: %w", i, err) })
					if c != nil {
						c.Close()
					}
					return
				}
				conns[i] = c
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		closeAll(conns)
		return nil, firstErr
	}
	return conns, nil
}

func closeAll(conns []net.Conn) {
	for _, c := range conns {
		if c != nil {
			c.Close()
		}
	}
}

// keepAliveResult is one keep-alive request/response run.
type keepAliveResult struct {
	n, errors int
	elapsed   time.Duration
	p50, p99  time.Duration
	max       time.Duration
}

// keepAlive drives request/response traffic over conns persistent
// connections through addr: each sends a size-byte request, reads the
// size-byte answer (the echo origin frames by length: it sends back what
// it got), and at once sends the next, until total requests were made or
// dur elapsed. With gap > 0 each connection waits gap before every
// request instead (an interactive session that goes quiet between
// exchanges: the latency then includes waking a parked direction).
func keepAlive(addr string, conns, total, size int, dur, gap time.Duration) keepAliveResult {
	var (
		next  atomic.Int64
		errs  atomic.Int64
		mu    sync.Mutex
		lat   = make([]time.Duration, 0, total)
		wg    sync.WaitGroup
		ready sync.WaitGroup
		start = make(chan struct{})
	)
	cs := make([]net.Conn, conns)
	for i := range cs {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			errs.Add(1)
			continue
		}
		if _, err := c.Write([]byte{echo.ModeEcho}); err != nil {
			errs.Add(1)
			c.Close()
			continue
		}
		cs[i] = c
	}
	defer closeAll(cs)
	var stopAt time.Time
	for _, c := range cs {
		if c == nil {
			continue
		}
		wg.Add(1)
		ready.Add(1)
		go func(c net.Conn) {
			defer wg.Done()
			req, back := make([]byte, size), make([]byte, size)
			mine := make([]time.Duration, 0, total/conns+1)
			ready.Done()
			<-start
			_ = c.SetDeadline(stopAt.Add(5 * time.Second))
			for time.Now().Before(stopAt) {
				if gap > 0 {
					time.Sleep(gap)
				}
				if next.Add(1) > int64(total) {
					break
				}
				t0 := time.Now()
				if _, err := c.Write(req); err != nil {
					errs.Add(1)
					break
				}
				if _, err := io.ReadFull(c, back); err != nil {
					errs.Add(1)
					break
				}
				mine = append(mine, time.Since(t0))
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		}(c)
	}
	ready.Wait()
	t0 := time.Now()
	stopAt = t0.Add(dur)
	close(start)
	wg.Wait()
	r := keepAliveResult{n: len(lat), errors: int(errs.Load()), elapsed: time.Since(t0)}
	if len(lat) > 0 {
		sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
		r.p50 = lat[len(lat)/2]
		r.p99 = lat[len(lat)*99/100]
		r.max = lat[len(lat)-1]
	}
	return r
}
