package sinktest

import (
	"bytes"
	"compress/gzip"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"
)

// Receiver is an HTTP log receiver on loopback, as an operator's endpoint
// would be: it takes POSTed batches of ndjson lines (gzip or plain) and
// keeps every record. Tests turn it down (the port closed: connections
// refused), make it answer with an error status, or read slowly.
type Receiver struct {
	t    testing.TB
	addr string
	URL  string

	mu       sync.Mutex
	srv      *http.Server
	records  [][]byte
	requests int
	status   int    // answer with this instead of 200 when non-zero
	retryAft string // Retry-After sent with status
	rate     int    // bytes per second read from each body; 0 = no limit
	changed  chan struct{}
}

// NewReceiver starts a receiver on a free loopback port.
func NewReceiver(t testing.TB) *Receiver {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &Receiver{t: t, addr: ln.Addr().String(), changed: make(chan struct{})}
	r.URL = "http://" + r.addr + "/logs"
	r.serve(ln)
	t.Cleanup(r.Down)
	return r
}

func (r *Receiver) serve(ln net.Listener) {
	srv := &http.Server{Handler: http.HandlerFunc(r.handle), ReadHeaderTimeout: 10 * time.Second}
	r.mu.Lock()
	r.srv = srv
	r.mu.Unlock()
	go srv.Serve(ln)
}

// Down closes the port: new connections are refused, open ones cut.
func (r *Receiver) Down() {
	r.mu.Lock()
	srv := r.srv
	r.srv = nil
	r.mu.Unlock()
	if srv != nil {
		srv.Close()
	}
}

// Up listens again on the same address.
func (r *Receiver) Up() {
	r.t.Helper()
	var ln net.Listener
	var err error
	for i := 0; i < 50; i++ {
		if ln, err = net.Listen("tcp", r.addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond) // the closed socket may linger a moment
	}
	if err != nil {
		r.t.Fatalf("receiver up again on %s: %v", r.addr, err)
	}
	r.serve(ln)
}

// Fail makes every request answer status (0: back to 200), with a
// Retry-After header when retryAfter is not empty.
func (r *Receiver) Fail(status int, retryAfter string) {
	r.mu.Lock()
	r.status, r.retryAft = status, retryAfter
	r.mu.Unlock()
}

// Throttle reads request bodies at bytesPerSec (0: no limit).
func (r *Receiver) Throttle(bytesPerSec int) {
	r.mu.Lock()
	r.rate = bytesPerSec
	r.mu.Unlock()
}

func (r *Receiver) handle(w http.ResponseWriter, req *http.Request) {
	r.mu.Lock()
	status, ra, rate := r.status, r.retryAft, r.rate
	r.requests++
	r.mu.Unlock()
	var body io.Reader = req.Body
	if rate > 0 {
		body = &slowReader{r: req.Body, rate: rate}
	}
	raw, err := io.ReadAll(body)
	if err != nil {
		return
	}
	if status != 0 {
		if ra != "" {
			w.Header().Set("Retry-After", ra)
		}
		w.WriteHeader(status)
		return
	}
	if req.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(bytes.NewReader(raw))
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		if raw, err = io.ReadAll(zr); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
	}
	var recs [][]byte
	for _, l := range bytes.Split(raw, []byte("\n")) {
		if len(l) > 0 {
			recs = append(recs, l)
		}
	}
	r.mu.Lock()
	r.records = append(r.records, recs...)
	close(r.changed)
	r.changed = make(chan struct{})
	r.mu.Unlock()
}

type slowReader struct {
	r    io.Reader
	rate int
}

func (s *slowReader) Read(p []byte) (int, error) {
	chunk := max(s.rate/20, 1) // 50 ms worth
	if len(p) > chunk {
		p = p[:chunk]
	}
	n, err := s.r.Read(p)
	time.Sleep(time.Duration(n) * time.Second / time.Duration(s.rate))
	return n, err
}

// Records returns a copy of every record received so far.
func (r *Receiver) Records() [][]byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([][]byte(nil), r.records...)
}

// Requests is the number of requests received (answered or not).
func (r *Receiver) Requests() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.requests
}

// WaitRecords waits until at least n records arrived; false on timeout.
func (r *Receiver) WaitRecords(n int, timeout time.Duration) bool {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		r.mu.Lock()
		have, ch := len(r.records), r.changed
		r.mu.Unlock()
		if have >= n {
			return true
		}
		select {
		case <-ch:
		case <-deadline.C:
			return false
		}
	}
}

// Port is the receiver's port, as text.
func (r *Receiver) Port() string {
	_, p, _ := net.SplitHostPort(r.addr)
	if _, err := strconv.Atoi(p); err != nil {
		return ""
	}
	return p
}
