package main

import (
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"
)

// adminScrapeEvery is how often the prism-admin target's scraper reads
// /metrics: the 1 s the bar sets (Prometheus usually scrapes every
// 15 to 60 s).
const adminScrapeEvery = time.Second

// scraper reads http://addr/metrics every adminScrapeEvery until stopped,
// as a Prometheus server would. It runs in the harness, on the load CPU;
// what answering costs is prism's.
type scraper struct {
	stop     chan struct{}
	wg       sync.WaitGroup
	mu       sync.Mutex
	n, errs  int
	lastSize int
}

func startScraper(addr string) *scraper {
	s := &scraper{stop: make(chan struct{})}
	client := &http.Client{Timeout: 5 * time.Second}
	s.wg.Go(func() {
		t := time.NewTicker(adminScrapeEvery)
		defer t.Stop()
		for {
			select {
			case <-s.stop:
				return
			case <-t.C:
			}
			resp, err := client.Get("http://" + addr + "/metrics")
			size := 0
			if err == nil {
				b, rerr := io.ReadAll(resp.Body)
				resp.Body.Close()
				size, err = len(b), rerr
				if err == nil && resp.StatusCode != http.StatusOK {
					err = fmt.Errorf("status %s", resp.Status)
				}
			}
			s.mu.Lock()
			s.n++
			if err != nil {
				s.errs++
			}
			s.lastSize = size
			s.mu.Unlock()
		}
	})
	return s
}

// close stops the scraper and says how it went.
func (s *scraper) close() string {
	close(s.stop)
	s.wg.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	return fmt.Sprintf("%d scrapes of /metrics, %d failed, last %d bytes", s.n, s.errs, s.lastSize)
}
