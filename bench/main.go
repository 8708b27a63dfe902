// Command bench compares prism with a direct connection, HAProxy (mode tcp),
// nginx stream and the bare relay on loopback, in one run: bulk throughput
// (1 and 8 streams) with proxy CPU per GB, short-connection rate with
// latency and proxy CPU per connection, and proxy memory per idle
// connection. The proxy runs pinned to one CPU and the load generator and
// origin to another (taskset), and each section starts a fresh proxy.
//
// Run it from the repository root: go run ./bench (see bench/README.md).
// Sections are a list (sections.go); a new one (TLS, UDP) is one more entry.
package main

import (
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/prismproxy/prism/bench/internal/proc"
)

// bench is one run's settings and shared state.
type bench struct {
	root     string // repository root
	self     string // this binary, for the origin and relayproxy modes
	tmp      string
	taskset  string
	proxyCPU string
	loadCPU  string
	logPath  string
	logFile  *os.File
	launcher *proc.Launcher // starts proxies and the origin, pinned, logging to logFile

	bulkTime  time.Duration
	bulkBytes int64
	conns     int
	connConc  int
	connWarm  int
	connTime  time.Duration
	idle      int

	kaConns, kaRequests   int
	kaTime                time.Duration
	wakeConns, wakeRounds int
	wakeGap               time.Duration

	rounds  int    // each section runs every target this many times, alternating the order
	baseBin string // the prism-base target's binary

	prismBin, prismErr, prismLog string
	stopExtra                    func() // a peer a prism variant started (the HTTP receiver)
}

func main() {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "origin":
			runOrigin(os.Args[2:])
			return
		case "hold":
			runHold(os.Args[2:])
			return
		case "relayproxy":
			runRelayProxy(os.Args[2:])
			return
		case "load":
			runLoad(os.Args[2:])
			return
		case "receiver":
			runReceiver(os.Args[2:])
			return
		}
	}
	b := &bench{}
	var targetList, sectionList string
	flag.StringVar(&targetList, "targets", "direct,prism,prism-copy,relay,haproxy,nginx", "targets to compare (comma-separated)")
	flag.StringVar(&sectionList, "sections", strings.Join(sectionNames(), ","), "sections to run (comma-separated)")
	flag.StringVar(&b.proxyCPU, "proxy-cpu", "1", "CPU the proxy is pinned to")
	flag.StringVar(&b.loadCPU, "load-cpu", "0", "CPU the load generator and origin are pinned to")
	flag.DurationVar(&b.bulkTime, "bulk-time", 5*time.Second, "bulk: time limit per run")
	flag.Int64Var(&b.bulkBytes, "bulk-bytes", 2<<30, "bulk: byte limit per run")
	flag.IntVar(&b.conns, "conns", 10000, "short connections: count limit per run")
	flag.IntVar(&b.connConc, "conn-concurrency", 16, "short connections: parallel clients")
	flag.IntVar(&b.connWarm, "conn-warmup", 200, "short connections: unmeasured connections first (enough to fill a 5 MB log batch: 3000)")
	flag.DurationVar(&b.connTime, "conn-time", 5*time.Second, "short connections: time limit per run")
	flag.IntVar(&b.kaConns, "ka-conns", 64, "keep-alive: persistent connections")
	flag.IntVar(&b.kaRequests, "ka-requests", 1000000, "keep-alive: request count limit per run")
	flag.DurationVar(&b.kaTime, "ka-time", 5*time.Second, "keep-alive: time limit per run")
	flag.IntVar(&b.wakeConns, "wake-conns", 100, "wake: persistent connections")
	flag.IntVar(&b.wakeRounds, "wake-rounds", 20, "wake: exchanges per connection")
	flag.DurationVar(&b.wakeGap, "wake-gap", 100*time.Millisecond, "wake: quiet time before each exchange (longer than the relay's 50 ms busy wait)")
	flag.IntVar(&b.rounds, "rounds", 1, "run each section this many times per target, alternating the order, and print medians, ranges and median per-round ratios")
	flag.StringVar(&b.baseBin, "base-prism", "", "a prism binary (say, built from an earlier commit) the prism-base target runs with prism's config, for before/after in one run")
	flag.IntVar(&b.idle, "idle", 5000, "idle connections held open for the memory section")
	flag.Parse()

	pinSelf(b)
	if err := b.setup(); err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(b.tmp)

	report(b, pick(targets(), targetList), pickSections(sectionList))
}

// pinSelf re-executes the harness on the load CPU (once).
func pinSelf(b *bench) {
	ts, err := exec.LookPath("taskset")
	if err != nil {
		log.Print("taskset not found: running unpinned")
		return
	}
	b.taskset = ts
	if os.Getenv("PRISM_BENCH_PINNED") != "" {
		return
	}
	exe, err := os.Executable()
	if err != nil {
		log.Fatal(err)
	}
	argv := append([]string{ts, "-c", b.loadCPU, exe}, os.Args[1:]...)
	env := append(os.Environ(), "PRISM_BENCH_PINNED=1")
	log.Fatal(syscall.Exec(ts, argv, env))
}

func (b *bench) setup() error {
	var err error
	if b.root, err = proc.RepoRoot(); err != nil {
		return err
	}
	if b.self, err = os.Executable(); err != nil {
		return err
	}
	if b.tmp, err = os.MkdirTemp("", "prism-bench-"); err != nil {
		return err
	}
	b.logPath = filepath.Join(b.tmp, "proxies.log")
	if b.logFile, err = os.Create(b.logPath); err != nil {
		return err
	}
	b.launcher = &proc.Launcher{Taskset: b.taskset, Log: b.logFile, Tail: b.logTail}
	return nil
}

func (b *bench) tempDir(name string) string {
	d, err := os.MkdirTemp(b.tmp, name+"-")
	if err != nil {
		log.Fatal(err)
	}
	return d
}

func pick(all []*target, list string) []*target {
	var out []*target
	for _, name := range strings.Split(list, ",") {
		for _, t := range all {
			if t.name == strings.TrimSpace(name) {
				out = append(out, t)
			}
		}
	}
	return out
}

// machine describes where the numbers come from.
func machine(w io.Writer) {
	model := "unknown"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "model name") {
				model = strings.TrimSpace(l[strings.IndexByte(l, ':')+1:])
				break
			}
		}
	}
	ncpu := strings.Count(string(must(os.ReadFile("/proc/cpuinfo"))), "\nprocessor") + 1
	kernel := kernelRelease()
	load, _ := os.ReadFile("/proc/loadavg")
	fmt.Fprintf(w, "date: %s\nmachine: %d CPUs, %s, Linux %s, %s\nload average at start: %s\n",
		time.Now().UTC().Format(time.RFC3339), ncpu, model, kernel, runtime.Version(), strings.TrimSpace(string(load)))
}

func must(b []byte, _ error) []byte { return b }

// runLoad drives one load against an address and prints the result, for
// profiling a proxy started by hand: "bench load -addr a -kind conn".
func runLoad(args []string) {
	fs := flag.NewFlagSet("load", flag.ExitOnError)
	addr := fs.String("addr", "", "proxy address")
	kind := fs.String("kind", "conn", "conn, keepalive (with -c connections), or bulk (with -streams)")
	n := fs.Int("n", 20000, "conn: connections")
	conc := fs.Int("c", 16, "conn: parallel clients")
	streams := fs.Int("streams", 1, "bulk: streams")
	dur := fs.Duration("d", 5*time.Second, "time limit")
	_ = fs.Parse(args)
	switch *kind {
	case "conn":
		r := connRate(*addr, *n, *conc, *dur)
		fmt.Printf("%d conns in %v (%.0f/s), %d errors, p50 %v p99 %v\n", r.n, r.elapsed, float64(r.n)/r.elapsed.Seconds(), r.errors, r.p50, r.p99)
	case "keepalive":
		r := keepAlive(*addr, *conc, *n, 64, *dur, 0)
		fmt.Printf("%d requests in %v (%.0f/s) on %d conns, %d errors, p50 %v p99 %v\n", r.n, r.elapsed, float64(r.n)/r.elapsed.Seconds(), *conc, r.errors, r.p50, r.p99)
	case "bulk":
		r, err := bulk(*addr, *streams, *dur, 1<<40)
		fmt.Printf("%.2f Gbit/s (%d bytes in %v) err=%v\n", r.gbps(), r.bytes, r.elapsed, err)
	default:
		log.Fatalf("unknown -kind %q", *kind)
	}
}

// runHold opens idle connections and holds them until stdin closes:
// "bench hold -addr a -n 1000", for looking at a proxy by hand.
func runHold(args []string) {
	fs := flag.NewFlagSet("hold", flag.ExitOnError)
	addr := fs.String("addr", "", "proxy address")
	n := fs.Int("n", 1000, "connections")
	_ = fs.Parse(args)
	conns, err := openIdle(*addr, *n)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("holding %d connections\n", len(conns))
	_, _ = io.Copy(io.Discard, os.Stdin)
	closeAll(conns)
}
