package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prismproxy/prism/internal/admin"
	"github.com/prismproxy/prism/internal/config"
	"github.com/prismproxy/prism/internal/logjob"
	"github.com/prismproxy/prism/internal/slogtest"
	"github.com/prismproxy/prism/internal/testpeer"
)

// holdingReceiver is an HTTP log receiver on loopback that holds every
// request until the test releases it: a destination that is slow or down
// while a reload flushes the replaced job.
type holdingReceiver struct {
	url     string
	arrived chan struct{} // one per request, as it arrives
	release func()        // lets every request held, and every later one, through

	mu      sync.Mutex
	records int
}

func newHoldingReceiver(t *testing.T) *holdingReceiver {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	released := make(chan struct{})
	var once sync.Once
	r := &holdingReceiver{url: "http://" + ln.Addr().String() + "/logs", arrived: make(chan struct{}, 64)}
	r.release = func() { once.Do(func() { close(released) }) }
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, err := io.ReadAll(req.Body)
		if err != nil {
			return
		}
		select {
		case r.arrived <- struct{}{}:
		default:
		}
		select {
		case <-released:
		case <-req.Context().Done(): // the sender gave up: not delivered
			return
		}
		r.mu.Lock()
		r.records += bytes.Count(body, []byte("\n"))
		r.mu.Unlock()
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { r.release(); srv.Close() })
	return r
}

func (r *holdingReceiver) received() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.records
}

// signalHandler closes logged when a message starting with prefix is
// logged.
type signalHandler struct {
	slog.Handler
	prefix string
	once   *sync.Once
	logged chan struct{}
}

func (h signalHandler) Handle(ctx context.Context, r slog.Record) error {
	if strings.HasPrefix(r.Message, h.prefix) {
		h.once.Do(func() { close(h.logged) })
	}
	return h.Handler.Handle(ctx, r)
}

func (h signalHandler) WithAttrs(as []slog.Attr) slog.Handler {
	h.Handler = h.Handler.WithAttrs(as)
	return h
}

func (h signalHandler) WithGroup(name string) slog.Handler {
	h.Handler = h.Handler.WithGroup(name)
	return h
}

// adminRead is one GET of the admin listener, made off the test's
// goroutine.
type adminRead struct {
	code int
	body []byte
	err  error
}

func getAdmin(addr, path string) adminRead {
	c := &http.Client{Timeout: time.Minute}
	resp, err := c.Get("http://" + addr + path)
	if err != nil {
		return adminRead{err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return adminRead{code: resp.StatusCode, body: b, err: err}
}

func jobNamed(jobs []logjob.Stats, name string) (logjob.Stats, bool) {
	for _, st := range jobs {
		if st.Job == name {
			return st, true
		}
	}
	return logjob.Stats{}, false
}

// TestAdminReadsAnswerWhileAReloadFlushesTheReplacedJob: a reload changes
// log job h, whose http destination holds every request. The replaced
// job's flush (up to 15 s) ran under the daemon's lock, and GET
// /api/v1/summary and /metrics waited for it: they answered only once the
// flush had given up. Now the flush runs after the swap, outside the lock:
// both answer while the receiver still holds the old job's batch, and the
// old job's counts are in them (read live while it flushes, not left out
// until it is done). A second reload meanwhile waits for the first one's
// flush; once released, each record is delivered and counted once.
func TestAdminReadsAnswerWhileAReloadFlushesTheReplacedJob(t *testing.T) {
	rcv := newHoldingReceiver(t)
	origin, listen := testpeer.Echo(t), testpeer.ClosedPort(t)
	path := filepath.Join(t.TempDir(), "prism.yaml")
	write := func(gen int) {
		t.Helper()
		// A batch goes out only when the job is closed (max_interval 1h):
		// the receiver's first request is the replaced job's flush.
		y := fmt.Sprintf(`admin: {listen: "127.0.0.1:0"}
node: {colo: TST}
shutdown: {drain_timeout: 300ms}
apps:
  - id: web
    listen: [%q]
    origins: {addresses: [%q]}
log_jobs:
  - name: h
    dataset: spectrum_events
    batch: {max_interval: 1h}
    destination: {type: http, url: %q, compression: none, flush_timeout: 10s, headers: {X-Gen: "%d"}}
`, listen, origin, rcv.url, gen)
		if err := os.WriteFile(path, []byte(y), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(1)
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	logger, _ := slogtest.Text(t)
	flushFailed := make(chan struct{})
	logger = slog.New(signalHandler{Handler: logger.Handler(), prefix: "reload: the replaced log jobs", once: new(sync.Once), logged: flushFailed})
	rec := newRecords()
	d, err := New(cfg, logger, WithEmitter(rec))
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		rcv.release() // before the drain: the daemon's flush must not wait for the test's end
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := d.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	adm := d.AdminAddr().String()

	c := roundTrip(t, listen, "hello\n")
	c.Close()
	rec.terminal(t, 1) // h has its connect and disconnect (the pipeline gets events first)

	type reloaded struct {
		res ReloadResult
		err error
	}
	reload := func() <-chan reloaded {
		ch := make(chan reloaded, 1)
		go func() {
			res, err := d.ReloadConfig()
			ch <- reloaded{res, err}
		}()
		return ch
	}
	write(2)
	first := reload()
	select {
	case <-rcv.arrived: // the replaced job flushes; the receiver holds it
	case r := <-first:
		t.Fatalf("the reload ended before the replaced job flushed: %v %v", r.res, r.err)
	case <-time.After(waitFor):
		t.Fatal("the replaced job sent nothing")
	}

	reads := make(chan [2]adminRead, 1)
	go func() { reads <- [2]adminRead{getAdmin(adm, "/api/v1/summary"), getAdmin(adm, "/metrics")} }()
	var got [2]adminRead
	select {
	case got = <-reads:
		select {
		case <-flushFailed:
			t.Fatal("the admin reads answered only after the replaced job's flush gave up")
		default:
		}
	case <-flushFailed:
		t.Fatal("the admin reads waited for the replaced job's flush (it gave up at its flush_timeout while they waited)")
	}
	for i, r := range got {
		if r.err != nil || r.code != http.StatusOK {
			t.Fatalf("admin read %d during the flush: %d %v %s", i, r.code, r.err, r.body)
		}
	}
	var sum admin.SummaryJSON
	if err := json.Unmarshal(got[0].body, &sum); err != nil {
		t.Fatal(err)
	}
	if h, ok := jobNamed(sum.Jobs, "h"); !ok || h.Emitted != 2 {
		t.Errorf("job h during the flush: %+v (found %v); want its 2 events, counted once", h, ok)
	}
	if !bytes.Contains(got[1].body, []byte(`prism_logjob_events_total{dataset="spectrum_events",log_job="h"} 2`)) {
		t.Errorf("/metrics during the flush has not job h's 2 events:\n%s", got[1].body)
	}

	// A second reload while the first flushes: it waits for it, then
	// replaces the job the first one built.
	write(3)
	second := reload()
	rcv.release()
	for i, ch := range []<-chan reloaded{first, second} {
		select {
		case r := <-ch:
			if r.err != nil || !r.res.LogJobs {
				t.Fatalf("reload %d: %v %v", i+1, r.res, r.err)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("reload %d did not end", i+1)
		}
	}
	select {
	case <-flushFailed:
		t.Error("a replaced job could not write everything it held")
	default:
	}
	if n := rcv.received(); n != 2 {
		t.Errorf("the receiver got %d records, want 2", n)
	}
	h, ok := jobNamed(d.Stats(), "h")
	if !ok || h.Emitted != 2 || h.Written != 2 || h.Delivery == nil || h.Delivery.Accepted != 2 || h.Delivery.Delivered != 2 {
		t.Errorf("job h after the reloads: %+v %+v; want 2 emitted, written, accepted and delivered", h, h.Delivery)
	}
	if st := d.ReloadStats(); st.OK != 2 || st.Failed != 0 {
		t.Errorf("reload stats %+v", st)
	}
}
