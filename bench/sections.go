package main

import (
	"bytes"
	"fmt"
	"math"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/prismproxy/prism/bench/internal/proc"
)

// metric is one column of a section's table.
type metric struct {
	name  string // column header, with its unit
	ratio bool   // also print ×direct, ×haproxy and ×nginx for it
}

// section is one measurement, run once per target on a fresh proxy.
type section struct {
	name    string
	title   string
	metrics []metric
	// proxyOnly sections make no sense without a proxy (skip direct).
	proxyOnly bool
	run       func(b *bench, srv *server) ([]float64, error)
}

var na = math.NaN()

func sections() []*section {
	return []*section{
		{
			name:      "idle",
			title:     "memory per idle connection",
			metrics:   []metric{{"PSS KiB/conn", true}, {"fds/conn", false}, {"PSS before MiB", false}},
			proxyOnly: true,
			run:       runIdle,
		},
		{
			name:    "bulk1",
			title:   "bulk upload, 1 stream",
			metrics: []metric{{"Gbit/s", true}, {"proxy CPU s/GB", false}},
			run:     func(b *bench, srv *server) ([]float64, error) { return runBulk(b, srv, 1) },
		},
		{
			name:    "bulk8",
			title:   "bulk upload, 8 streams",
			metrics: []metric{{"Gbit/s", true}, {"proxy CPU s/GB", false}},
			run:     func(b *bench, srv *server) ([]float64, error) { return runBulk(b, srv, 8) },
		},
		{
			name:    "keepalive",
			title:   "keep-alive request/response (64 B each way, persistent connections)",
			metrics: []metric{{"req/s", true}, {"p50 ms", false}, {"p99 ms", false}, {"proxy CPU µs/req", true}, {"errors", false}},
			run:     runKeepAlive,
		},
		{
			name:    "wake",
			title:   "request/response after a quiet period (each connection waits between exchanges)",
			metrics: []metric{{"req/s", false}, {"p50 ms", false}, {"p99 ms", true}, {"max ms", false}, {"errors", false}},
			run:     runWake,
		},
		{
			name:    "conn",
			title:   "short connections (connect, 64 B echo, close)",
			metrics: []metric{{"conn/s", true}, {"p50 ms", false}, {"p99 ms", false}, {"proxy CPU µs/conn", true}, {"errors", false}},
			run:     runConn,
		},
	}
}

func sectionNames() []string {
	var n []string
	for _, s := range sections() {
		n = append(n, s.name)
	}
	return n
}

func pickSections(list string) []*section {
	var out []*section
	for _, name := range strings.Split(list, ",") {
		for _, s := range sections() {
			if s.name == strings.TrimSpace(name) {
				out = append(out, s)
			}
		}
	}
	return out
}

// cpuOf returns the CPU time of the proxy process (0 for direct).
func cpuOf(srv *server) time.Duration {
	if srv.pid == 0 {
		return 0
	}
	d, _ := proc.CPUTime(srv.pid)
	return d
}

func runBulk(b *bench, srv *server, streams int) ([]float64, error) {
	// Warm up (connection setup, buffers) before measuring.
	if _, err := bulk(srv.addr, streams, 300*time.Millisecond, 64<<20); err != nil {
		return nil, err
	}
	c0 := cpuOf(srv)
	r, err := bulk(srv.addr, streams, b.bulkTime, b.bulkBytes)
	if err != nil {
		return nil, err
	}
	cpuPerGB := na
	if srv.pid != 0 {
		cpuPerGB = (cpuOf(srv) - c0).Seconds() / (float64(r.bytes) / 1e9)
	}
	return []float64{r.gbps(), cpuPerGB}, nil
}

func runConn(b *bench, srv *server) ([]float64, error) {
	connRate(srv.addr, b.connWarm, b.connConc, 5*time.Second) // warm-up
	c0 := cpuOf(srv)
	r := connRate(srv.addr, b.conns, b.connConc, b.connTime)
	if r.n == 0 {
		return nil, fmt.Errorf("no connection succeeded (%d errors)", r.errors)
	}
	cpu := na
	if srv.pid != 0 {
		cpu = float64((cpuOf(srv) - c0).Microseconds()) / float64(r.n)
	}
	return []float64{float64(r.n) / r.elapsed.Seconds(), ms(r.p50), ms(r.p99), cpu, float64(r.errors)}, nil
}

func runKeepAlive(b *bench, srv *server) ([]float64, error) {
	keepAlive(srv.addr, b.kaConns, 5000, 64, time.Second, 0) // warm-up
	c0 := cpuOf(srv)
	r := keepAlive(srv.addr, b.kaConns, b.kaRequests, 64, b.kaTime, 0)
	if r.n == 0 {
		return nil, fmt.Errorf("no request succeeded (%d errors)", r.errors)
	}
	cpu := na
	if srv.pid != 0 {
		cpu = float64((cpuOf(srv) - c0).Nanoseconds()) / 1000 / float64(r.n)
	}
	return []float64{float64(r.n) / r.elapsed.Seconds(), ms(r.p50), ms(r.p99), cpu, float64(r.errors)}, nil
}

// runWake measures exchanges that each follow a quiet period longer
// than the relay's busy wait (50 ms), so that both directions have parked
// and every request first wakes them.
func runWake(b *bench, srv *server) ([]float64, error) {
	r := keepAlive(srv.addr, b.wakeConns, b.wakeConns*b.wakeRounds, 64, time.Duration(b.wakeRounds+2)*b.wakeGap, b.wakeGap)
	if r.n == 0 {
		return nil, fmt.Errorf("no request succeeded (%d errors)", r.errors)
	}
	return []float64{float64(r.n) / r.elapsed.Seconds(), ms(r.p50), ms(r.p99), ms(r.max), float64(r.errors)}, nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func runIdle(b *bench, srv *server) ([]float64, error) {
	// Warm up: a few connections opened and closed, so that the baseline
	// includes what any proxy allocates on first use.
	w, err := openIdle(srv.addr, 50)
	if err != nil {
		return nil, err
	}
	closeAll(w)
	time.Sleep(500 * time.Millisecond)
	p0, err := proc.PSS(srv.pid)
	if err != nil {
		return nil, err
	}
	f0 := proc.FDCount(srv.pid)
	conns, err := openIdle(srv.addr, b.idle)
	if err != nil {
		return nil, err
	}
	defer closeAll(conns)
	time.Sleep(2 * time.Second) // let the proxy settle (GC, lazy frees)
	p1, err := proc.PSS(srv.pid)
	if err != nil {
		return nil, err
	}
	f1 := proc.FDCount(srv.pid)
	n := float64(len(conns))
	return []float64{float64(p1-p0) / 1024 / n, float64(f1-f0) / n, float64(p0) / (1 << 20)}, nil
}

// report runs every section on every target and prints the tables.
func report(b *bench, ts []*target, ss []*section) {
	machine(os.Stdout)
	fmt.Printf("proxy pinned to CPU %s, load generator and origin to CPU %s; each section starts a fresh proxy\n", b.proxyCPU, b.loadCPU)
	origin, err := b.spawnAddrOn(b.loadCPU, "origin", b.self, "origin", "-listen", "127.0.0.1:0")
	if err != nil {
		fmt.Println("origin:", err)
		return
	}
	defer origin.stop()

	var usable []*target
	for _, t := range ts {
		if why := t.check(b); why != "" {
			fmt.Printf("skipping %s: %s\n", t.name, why)
			continue
		}
		usable = append(usable, t)
	}
	for _, s := range ss {
		runs := map[string][][]float64{} // target → one row per round
		var order []string
		for round := range max(b.rounds, 1) {
			ts := usable
			if round%2 == 1 { // alternate the order: no target always runs right after the same one
				ts = slices.Clone(usable)
				slices.Reverse(ts)
			}
			for _, t := range ts {
				if s.proxyOnly && t.name == "direct" {
					continue
				}
				fmt.Fprintf(os.Stderr, "%s: %s (round %d of %d) ...\n", s.name, t.name, round+1, max(b.rounds, 1))
				srv, err := t.start(b, origin.addr)
				if err != nil {
					fmt.Printf("%s/%s: %v\n", s.name, t.name, err)
					continue
				}
				vals, err := s.run(b, srv)
				srv.stop()
				if err != nil {
					fmt.Printf("%s/%s: %v\n", s.name, t.name, err)
					continue
				}
				if strings.HasPrefix(t.name, "prism") {
					b.noteRecords(t.name, s.name)
				}
				if runs[t.name] == nil {
					order = append(order, t.name)
				}
				runs[t.name] = append(runs[t.name], vals)
			}
		}
		slices.SortStableFunc(order, func(x, y string) int { return index(usable, x) - index(usable, y) })
		printTable(s, order, runs)
	}
	load, _ := os.ReadFile("/proc/loadavg")
	fmt.Printf("\nload average at end: %s\n", strings.TrimSpace(string(load)))
}

// noteRecords says how many records prism's spectrum_events job wrote
// during a section (logging must be on during the run).
func (b *bench) noteRecords(target, section string) {
	if b.prismLog == "" {
		return // a variant without log jobs
	}
	data, err := os.ReadFile(b.prismLog)
	if err != nil {
		fmt.Printf("%s (%s): no log records: %v\n", target, section, err)
		return
	}
	fmt.Printf("%s (%s): %d spectrum_events records written to its log file\n", target, section, bytes.Count(data, []byte("\n")))
}

// index is the position of the target named name in ts.
func index(ts []*target, name string) int {
	return slices.IndexFunc(ts, func(t *target) bool { return t.name == name })
}

// printTable prints one row per target. With one round a cell is that
// run's value; with several it is the median and, in brackets, the range,
// and a ratio is the median of the per-round ratios (each round's runs are
// next to each other in time, so a ratio within a round is what the noise
// of a shared machine disturbs least).
func printTable(s *section, order []string, runs map[string][][]float64) {
	rounds := 0
	for _, r := range runs {
		rounds = max(rounds, len(r))
	}
	fmt.Printf("\n### %s\n\n", s.title)
	if rounds > 1 {
		fmt.Printf("medians of %d rounds (range in brackets); ratios are medians of the per-round ratios\n\n", rounds)
	}
	fmt.Print("| target |")
	sep := "|---|"
	for _, m := range s.metrics {
		fmt.Printf(" %s |", m.name)
		sep += "---:|"
		if m.ratio {
			fmt.Printf(" ×direct | ×haproxy | ×nginx |")
			sep += "---:|---:|---:|"
		}
	}
	fmt.Println("\n" + sep)
	for _, name := range order {
		fmt.Printf("| %s |", name)
		for i, m := range s.metrics {
			fmt.Printf(" %s |", cell(runs[name], i))
			if m.ratio {
				fmt.Printf(" %s | %s | %s |", ratio(runs[name], runs["direct"], i), ratio(runs[name], runs["haproxy"], i), ratio(runs[name], runs["nginx"], i))
			}
		}
		fmt.Println()
	}
}

// column is metric i of every round, NaNs left out.
func column(rows [][]float64, i int) []float64 {
	var c []float64
	for _, r := range rows {
		if !math.IsNaN(r[i]) {
			c = append(c, r[i])
		}
	}
	return c
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	v = slices.Clone(v)
	slices.Sort(v)
	if n := len(v); n%2 == 0 {
		return (v[n/2-1] + v[n/2]) / 2
	}
	return v[len(v)/2]
}

// cell is one run's value, or the median and range of several.
func cell(rows [][]float64, i int) string {
	c := column(rows, i)
	switch len(c) {
	case 0:
		return "-"
	case 1:
		return num(c[0])
	}
	return fmt.Sprintf("%s (%s–%s)", num(median(c)), num(slices.Min(c)), num(slices.Max(c)))
}

// ratio is v/base for metric i, the median over the rounds both ran.
func ratio(v, base [][]float64, i int) string {
	var rs []float64
	for r := 0; r < len(v) && r < len(base); r++ {
		if x, y := v[r][i], base[r][i]; !math.IsNaN(x) && !math.IsNaN(y) && y != 0 {
			rs = append(rs, x/y)
		}
	}
	if len(rs) == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f×", median(rs))
}

func num(v float64) string {
	switch {
	case math.IsNaN(v):
		return "-"
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.2f", v)
}
