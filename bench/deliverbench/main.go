// Command deliverbench measures how many records one log job delivers per
// CPU core to each remote destination: http (gzip, with and without a disk
// spool), s3 (gzip objects) and kafka (one message per record, zstd). The
// records are spectrum_events records rendered once up front (about 700
// bytes each); the job side (the delivery layer and the destination's
// sender, this process) runs pinned to one CPU and the receiver (an HTTP
// server, an in-memory S3 server, an in-process Kafka cluster, each a
// child process of this binary) to the other. The figure is records
// delivered divided by this process's CPU time (user+system), so the
// receiver's own cost is not in it.
//
//	go run ./bench/deliverbench [-records 200000] [-time 10s] [-batch 1000] [-targets http,http-spool,s3,kafka]
package main

import (
	"bytes"
	"compress/gzip"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/prismproxy/prism/bench/internal/proc"
	"github.com/prismproxy/prism/internal/cfgerr"
	"github.com/prismproxy/prism/internal/deliver"
	"github.com/prismproxy/prism/internal/event"
	"github.com/prismproxy/prism/internal/render"
	"github.com/prismproxy/prism/internal/sink"
	"github.com/prismproxy/prism/internal/sink/httpdst"
	"github.com/prismproxy/prism/internal/sink/kafkadst"
	"github.com/prismproxy/prism/internal/sink/s3dst"
	"github.com/prismproxy/prism/internal/spool"
)

func main() {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "serve-http":
			serveHTTP()
			return
		case "serve-s3":
			serveS3()
			return
		case "serve-kafka":
			serveKafka()
			return
		}
	}
	records := flag.Int("records", 200000, "records per target (upper bound)")
	limit := flag.Duration("time", 10*time.Second, "time limit per target")
	batchSize := flag.Int("batch", 1000, "records per batch (the job's batch.max_records)")
	targetList := flag.String("targets", "http,http-spool,s3,kafka", "destinations to measure")
	jobCPU := flag.String("job-cpu", "1", "CPU the job side runs on")
	peerCPU := flag.String("peer-cpu", "0", "CPU the receivers run on")
	flag.Parse()
	ts, _ := proc.LookPath("taskset")
	if ts != "" && os.Getenv("PRISM_DELIVERBENCH_PINNED") == "" {
		exe, _ := os.Executable()
		argv := append([]string{ts, "-c", *jobCPU, exe}, os.Args[1:]...)
		log.Fatal(syscall.Exec(ts, argv, append(os.Environ(), "PRISM_DELIVERBENCH_PINNED=1")))
	}
	fmt.Printf("date: %s\n", time.Now().UTC().Format(time.RFC3339))
	la, _ := os.ReadFile("/proc/loadavg")
	cpuinfo, _ := os.ReadFile("/proc/cpuinfo")
	fmt.Printf("machine: %d CPUs, %s; load average at start: %s", bytes.Count(cpuinfo, []byte("processor\t:")), runtime.Version(), la)
	fmt.Printf("job side pinned to CPU %s, receivers to CPU %s; %d-record batches of spectrum_events ndjson\n\n", *jobCPU, *peerCPU, *batchSize)
	batches := renderBatches(*batchSize, 16)
	recBytes := len(batches[0].Data) / batches[0].Records
	launcher := &proc.Launcher{Taskset: ts, Log: os.Stderr}
	self, _ := os.Executable()
	fmt.Printf("| destination | records | record bytes | wall s | records/s | job CPU s | records per CPU-second |\n|---|---:|---:|---:|---:|---:|---:|\n")
	for _, t := range strings.Split(*targetList, ",") {
		var mode string
		switch t {
		case "http", "http-spool":
			mode = "serve-http"
		case "s3":
			mode = "serve-s3"
		case "kafka":
			mode = "serve-kafka"
		default:
			log.Fatalf("unknown target %q", t)
		}
		peer, err := launcher.SpawnAddr(*peerCPU, mode, self, mode)
		if err != nil {
			log.Fatal(err)
		}
		res, err := run(t, peer.Addr, batches, *records, *limit)
		peer.Stop()
		if err != nil {
			log.Fatalf("%s: %v", t, err)
		}
		fmt.Printf("| %s | %d | %d | %.2f | %.0f | %.2f | %.0f |\n", t, res.records, recBytes, res.wall.Seconds(),
			float64(res.records)/res.wall.Seconds(), res.cpu.Seconds(), float64(res.records)/res.cpu.Seconds())
	}
	la, _ = os.ReadFile("/proc/loadavg")
	fmt.Printf("\nload average at end: %s", la)
}

type result struct {
	records   int
	wall, cpu time.Duration
}

// run delivers batches (cycled) to one destination until records or limit,
// keeping at most a few batches pending, and waits until all are delivered.
func run(target, addr string, batches []*sink.Batch, records int, limit time.Duration) (result, error) {
	c := deliver.Config{Retry: deliver.RetryConfig{Initial: 100 * time.Millisecond}, FlushTimeout: deliver.MaxFlushTimeout}
	var sp spool.Config
	switch target {
	case "http", "http-spool":
		c.Type, c.HTTP = deliver.TypeHTTP, httpdst.Config{URL: "http://" + addr + "/logs"}
		if target == "http-spool" {
			dir, err := os.MkdirTemp("", "deliverbench-spool-")
			if err != nil {
				return result{}, err
			}
			defer os.RemoveAll(dir)
			sp.Dir = dir
		}
	case "s3":
		c.Type, c.S3 = deliver.TypeS3, s3dst.Config{Bucket: "prism", Endpoint: "http://" + addr, PathStyle: true, AccessKeyID: "AK", SecretAccessKey: "SK"}
	case "kafka":
		c.Type, c.Kafka = deliver.TypeKafka, kafkadst.Config{Brokers: []string{addr}, Topic: "prism"}
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	for _, s := range []cfgerr.Section{&c, &sp} {
		if err := cfgerr.Prepare(s); err != nil {
			return result{}, err
		}
	}
	d, err := deliver.New("bench", c, sp, false, logger)
	if err != nil {
		return result{}, err
	}
	dl := d.(*deliver.Deliverer)
	cpu0, wall0 := cpuTime(), time.Now()
	sent := 0
	for i := 0; sent < records && time.Since(wall0) < limit; i++ {
		b := batches[i%len(batches)]
		for dl.DeliveryStats().Pending > 4*b.Records {
			time.Sleep(200 * time.Microsecond) // back-pressure: no signal to wait on
		}
		if err := d.Write(b); err != nil {
			return result{}, err
		}
		sent += b.Records
	}
	for st := dl.DeliveryStats(); st.Delivered+st.Rejected+st.Dropped() < uint64(sent); st = dl.DeliveryStats() {
		if time.Since(wall0) > limit+60*time.Second {
			return result{}, fmt.Errorf("only %d of %d delivered (last error %v)", st.Delivered, sent, dl.LastError())
		}
		time.Sleep(time.Millisecond)
	}
	wall, cpu := time.Since(wall0), cpuTime()-cpu0
	st := dl.DeliveryStats()
	if err := d.Close(); err != nil {
		return result{}, err
	}
	if st.Delivered != uint64(sent) {
		return result{}, fmt.Errorf("%d of %d delivered, %d rejected, %d dropped, last error %v", st.Delivered, sent, st.Rejected, st.Dropped(), dl.LastError())
	}
	return result{records: sent, wall: wall, cpu: cpu}, nil
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// renderBatches renders n batches of size spectrum_events records
// (disconnects with every field set, distinct sessions).
func renderBatches(size, n int) []*sink.Batch {
	enc, err := render.NewEncoder(render.Spectrum, render.Node{Colo: "BEN", ID: "bench-1", RegionName: "bench"}, render.Options{})
	if err != nil {
		log.Fatal(err)
	}
	now := time.Now()
	var out []*sink.Batch
	k := 0
	for i := 0; i < n; i++ {
		b := &sink.Batch{}
		for j := 0; j < size; j++ {
			k++
			e := event.New("bench-app", event.NewID(now))
			e.Type, e.Time, e.StartTime, e.ConnectTime, e.DisconnectTime = event.Disconnect, now, now, now, now
			e.ClientProto, e.OriginProto = event.ProtoTCP, event.ProtoTCP
			e.ClientAddr = netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 51, byte(k >> 8), byte(k)}), uint16(1024+k%60000))
			e.LocalAddr = netip.MustParseAddrPort("127.0.0.1:443")
			e.OriginAddr = netip.MustParseAddrPort("127.0.0.1:8443")
			e.ClientBytes, e.OriginBytes, e.Status = int64(1000+k), int64(50000+k), 200
			b.Data = enc.Append(b.Data, &e)
			b.Ends = append(b.Ends, uint32(len(b.Data)))
			b.Keys = append(b.Keys, e.SessionID)
			b.Records++
		}
		b.First, b.Last = now, now
		out = append(out, b)
	}
	return out
}

// Receivers: each prints its address on stdout and runs until killed.

func listen() net.Listener {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(ln.Addr().String())
	return ln
}

func serveHTTP() {
	ln := listen()
	log.Fatal(http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body io.Reader = r.Body
		if r.Header.Get("Content-Encoding") == "gzip" {
			zr, err := gzip.NewReader(r.Body)
			if err != nil {
				w.WriteHeader(http.StatusBadRequest)
				return
			}
			body = zr
		}
		if _, err := io.Copy(io.Discard, body); err != nil {
			w.WriteHeader(http.StatusBadRequest)
		}
	})))
}

func serveS3() {
	backend := s3mem.New()
	if err := backend.CreateBucket("prism"); err != nil {
		log.Fatal(err)
	}
	ln := listen()
	log.Fatal(http.Serve(ln, gofakes3.New(backend).Server()))
}

func serveKafka() {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(8, "prism"))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(c.ListenAddrs()[0])
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
	c.Close()
}
