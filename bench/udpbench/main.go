// Command udpbench is the UDP section of prism's benchmarks: echo
// packets/s and loss at rising offered rates through prism's UDP proxy
// and through nginx stream (udp), the proxy's CPU time per echoed packet,
// and its memory per idle session.
//
// The proxy under test runs in its own process pinned to one CPU; the load
// generator and the echo origin run pinned to the other (taskset).
//
//	go run ./bench/udpbench [-rates 10000,25000,50000,100000] [-dur 3s] [-flows 32] [-size 512] [-targets prism,prism-bare,nginx]
//
// Targets:
//
//   - direct: the load generator talks to the echo origin itself (the
//     baseline; no proxy CPU to measure).
//   - prism: cmd/prism (built from this checkout) running a generated
//     config with one udp app and a spectrum_events job writing every
//     record to a file: the daemon as an operator runs it.
//   - prism-bare: this binary's "prism" mode, internal/udpproxy with a
//     static origin and a counting emitter instead of log jobs: the UDP
//     proxy alone.
//   - nginx: nginx stream (udp), one worker.
//
// -sockets N gives prism's listener N SO_REUSEPORT sockets (udp.sockets)
// and nginx N workers on a `reuseport` listener; with -proxy-cpu 0,1 the
// proxy may use both cores (the load generator and origin share CPU 0
// with it), for the across-cores comparison:
//
//	go run ./bench/udpbench -proxy-cpu 0,1 -sockets 2 -rates 50000,100000 -targets prism,nginx
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"math"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/net/ipv4"

	"github.com/prismproxy/prism/bench/internal/proc"
	"github.com/prismproxy/prism/internal/cfgerr"
	"github.com/prismproxy/prism/internal/event"
	"github.com/prismproxy/prism/internal/netspec"
	"github.com/prismproxy/prism/internal/origin"
	"github.com/prismproxy/prism/internal/udpproxy"
)

func main() {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "origin":
			runOrigin()
			return
		case "prism":
			runPrism(os.Args[2])
			return
		}
	}
	rates := flag.String("rates", "10000,25000,50000,100000", "offered rates, packets/s (comma-separated)")
	dur := flag.Duration("dur", 3*time.Second, "time per offered rate")
	flows := flag.Int("flows", 32, "client flows (sessions) sharing the offered rate")
	size := flag.Int("size", 512, "payload bytes per datagram")
	idle := flag.Int("idle", 5000, "idle sessions for the memory measurement")
	targets := flag.String("targets", "direct,prism,prism-bare,nginx", "targets to compare: direct (no proxy), prism (cmd/prism), prism-bare (internal/udpproxy alone), nginx")
	proxyCPU := flag.String("proxy-cpu", "1", "CPU the proxy is pinned to")
	loadCPU := flag.String("load-cpu", "0", "CPU the load generator and origin are pinned to")
	flag.IntVar(&sockets, "sockets", 1, "prism: SO_REUSEPORT sockets per listener (udp.sockets); nginx: workers on a reuseport listener")
	flag.Parse()

	if ts, err := proc.LookPath("taskset"); err == nil {
		launcher.Taskset = ts
	}
	pin(*loadCPU, os.Getpid())
	self, err := os.Executable()
	if err != nil {
		log.Fatal(err)
	}
	org, err := launcher.SpawnAddr(*loadCPU, "origin", self, "origin")
	if err != nil {
		log.Fatal(err)
	}
	defer org.Stop()
	originAddr := netip.MustParseAddrPort(org.Addr)

	var rs []int
	for _, r := range strings.Split(*rates, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(r))
		if err != nil {
			log.Fatalf("bad rate %q", r)
		}
		rs = append(rs, n)
	}
	fmt.Printf("UDP echo through the proxy: %d flows, %d-byte payloads, %v per rate; proxy pinned to CPU %s, load generator and origin to CPU %s; %d socket(s) per prism listener, %d nginx worker(s)\n\n",
		*flows, *size, *dur, *proxyCPU, *loadCPU, sockets, sockets)
	fmt.Printf("| proxy | offered pkt/s | echoed pkt/s | loss | proxy CPU µs/pkt |\n|---|---:|---:|---:|---:|\n")
	mem := map[string]float64{}
	results := map[string]map[int]result{}
	names := strings.Split(*targets, ",")
	for _, name := range names {
		for _, rate := range rs {
			p, err := startProxy(name, self, *proxyCPU, originAddr)
			if err != nil {
				log.Printf("%s: %v (skipped)", name, err)
				break
			}
			res := load(p.addr, rate, *flows, *size, *dur, p.pid)
			fmt.Printf("| %s | %d | %.0f | %.3f%% | %s |\n", name, rate, res.echoed, res.loss*100, cpuCell(res))
			if results[name] == nil {
				results[name] = map[int]result{}
			}
			results[name][rate] = res
			p.stop()
		}
		if *idle > 0 && name != "direct" {
			p, err := startProxy(name, self, *proxyCPU, originAddr)
			if err == nil {
				mem[name] = idleMemory(p.addr, p.pid, *idle)
				p.stop()
			}
		}
	}
	if prismBinDir != "" {
		os.RemoveAll(prismBinDir)
	}
	printSummary(names, rs, results)
	fmt.Printf("\n| proxy | memory per idle session (PSS, userspace) | ×nginx |\n|---|---:|---:|\n")
	for _, name := range names {
		if v, ok := mem[name]; ok {
			fmt.Printf("| %s | %.0f B | %s |\n", name, v, ratio(v, mem["nginx"]))
		}
	}
}

// printSummary prints every target's result per offered rate with its
// ratios to nginx (echoed packets/s and proxy CPU per packet; for CPU a
// ratio below 1 means cheaper than nginx).
func printSummary(names []string, rates []int, results map[string]map[int]result) {
	fmt.Printf("\n### UDP echo, ratios to nginx\n\n")
	fmt.Printf("| offered pkt/s | target | echoed pkt/s | ×nginx | loss | proxy CPU µs/pkt | ×nginx |\n|---:|---|---:|---:|---:|---:|---:|\n")
	for _, rate := range rates {
		ref, haveRef := results["nginx"][rate]
		for _, name := range names {
			r, ok := results[name][rate]
			if !ok {
				continue
			}
			echoRatio, cpuRatio := "-", "-"
			if haveRef {
				echoRatio = ratio(r.echoed, ref.echoed)
				if !math.IsNaN(r.cpuPerPkt) && !math.IsNaN(ref.cpuPerPkt) {
					cpuRatio = ratio(r.cpuPerPkt, ref.cpuPerPkt)
				}
			}
			fmt.Printf("| %d | %s | %.0f | %s | %.3f%% | %s | %s |\n", rate, name, r.echoed, echoRatio, r.loss*100, cpuCell(r), cpuRatio)
		}
	}
}

func ratio(v, ref float64) string {
	if ref <= 0 || math.IsNaN(ref) || math.IsNaN(v) {
		return "-"
	}
	return fmt.Sprintf("%.2f×", v/ref)
}

// cpuCell is the CPU column: "-" for the direct target, which has no
// proxy process.
func cpuCell(r result) string {
	if math.IsNaN(r.cpuPerPkt) {
		return "-"
	}
	return fmt.Sprintf("%.1f", r.cpuPerPkt)
}

// launcher starts the origin and the proxies pinned to their CPU (taskset
// before the program starts, so a Go child's GOMAXPROCS and nginx's worker
// see one CPU), their output going to our stderr.
var launcher = &proc.Launcher{Log: os.Stderr}

// pin moves every thread of pid (this harness) to cpu.
func pin(cpu string, pid int) {
	if launcher.Taskset != "" && cpu != "" {
		_ = exec.Command(launcher.Taskset, "-a", "-p", "-c", cpu, strconv.Itoa(pid)).Run()
	}
}

// freeUDPAddr returns a UDP address on 127.0.0.1 that was free a moment
// ago, for a proxy to listen on.
func freeUDPAddr() (netip.AddrPort, error) {
	l, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return netip.AddrPort{}, err
	}
	defer l.Close()
	return l.LocalAddr().(*net.UDPAddr).AddrPort(), nil
}

// sockets is -sockets: prism's udp.sockets and nginx's worker count.
var sockets = 1

type proxy struct {
	addr netip.AddrPort
	pid  int
	stop func()
}

func startProxy(name, self, cpu string, org netip.AddrPort) (*proxy, error) {
	switch name {
	case "direct":
		// The load generator talks to the origin itself: the baseline
		// packets/s, with no proxy process to measure.
		return &proxy{addr: org, stop: func() {}}, nil
	case "prism":
		return startDaemon(cpu, org)
	case "prism-bare":
		_ = os.Setenv("PRISM_UDPBENCH_SOCKETS", strconv.Itoa(sockets))
		c, err := launcher.SpawnAddr(cpu, "prism-bare", self, "prism", org.String())
		if err != nil {
			return nil, err
		}
		addr, err := netip.ParseAddrPort(c.Addr)
		if err != nil {
			c.Stop()
			return nil, fmt.Errorf("prism-bare printed %q: %w", c.Addr, err)
		}
		p := &proxy{addr: addr, pid: c.PID, stop: c.Stop}
		if err := waitEcho(p.addr); err != nil {
			p.stop()
			return nil, err
		}
		return p, nil
	case "nginx":
		bin, err := proc.LookPath("nginx")
		if err != nil {
			return nil, err
		}
		mod := "/usr/lib/nginx/modules/ngx_stream_module.so"
		if !proc.IsFile(mod) {
			return nil, fmt.Errorf("no nginx stream module (%s)", mod)
		}
		addr, err := freeUDPAddr()
		if err != nil {
			return nil, err
		}
		dir, err := os.MkdirTemp("", "udpbench-nginx")
		if err != nil {
			return nil, err
		}
		// One worker, like prism's one pinned CPU, unless -sockets asks
		// for more (then a master and reuseport); sessions live 10s.
		master, reuse := "off", ""
		if sockets > 1 {
			master, reuse = "on", " reuseport"
		}
		conf := fmt.Sprintf(`load_module %s;
daemon off;
master_process %s;
worker_processes %d;
worker_rlimit_nofile 20000;
pid %s/nginx.pid;
error_log stderr warn;
events { worker_connections 16384; }
stream {
    server {
        listen %s udp%s;
        proxy_pass %s;
        proxy_timeout 10s;
    }
}
`, mod, master, sockets, dir, addr, reuse, org)
		cf := filepath.Join(dir, "nginx.conf")
		_ = os.WriteFile(cf, []byte(conf), 0o644)
		c, err := launcher.Start(cpu, "nginx", bin, "-c", cf, "-p", dir, "-e", "stderr")
		if err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		p := &proxy{addr: addr, pid: c.PID, stop: func() { c.Stop(); os.RemoveAll(dir) }}
		if err := waitEcho(addr); err != nil {
			p.stop()
			return nil, err
		}
		return p, nil
	}
	return nil, fmt.Errorf("unknown target %q", name)
}

// prismBin is cmd/prism built once per run from the module this bench
// belongs to ("" and prismErr set when it cannot be built), in
// prismBinDir, which main removes at the end.
var prismBin, prismErr, prismBinDir string

// startDaemon runs cmd/prism pinned to cpu with one udp app in front of
// org and a spectrum_events job writing every record to a file.
func startDaemon(cpu string, org netip.AddrPort) (*proxy, error) {
	if prismBin == "" && prismErr == "" {
		dir, err := os.MkdirTemp("", "udpbench-prism-bin")
		if err != nil {
			return nil, err
		}
		prismBinDir = dir
		root, err := proc.RepoRoot()
		if err == nil {
			prismBin, err = proc.BuildPrism(root, dir)
		}
		if err != nil {
			prismErr = err.Error()
		}
	}
	if prismErr != "" {
		return nil, errors.New(prismErr)
	}
	addr, err := freeUDPAddr()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "udpbench-prism")
	if err != nil {
		return nil, err
	}
	conf := fmt.Sprintf(`node: {colo: BEN, id: bench-1, region_name: bench}
apps:
  - id: bench
    protocol: udp
    listen: ["%s"]
    origins: {addresses: ["%s"]}
    udp: {idle_timeout: 10s, max_sessions_per_client: 100000, sockets: %d}
log_jobs:
  - name: spectrum
    dataset: spectrum_events
    destination: {type: file, path: %s}
`, addr, org, sockets, filepath.Join(dir, "spectrum.log"))
	cf := filepath.Join(dir, "prism.yaml")
	if err := os.WriteFile(cf, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	// prism's own log is kept to pick out the jobs' totals at exit.
	var stderr strings.Builder
	l := &proc.Launcher{Taskset: launcher.Taskset, Log: &stderr}
	c, err := l.Start(cpu, "prism", prismBin, "run", "-config", cf)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	p := &proxy{addr: addr, pid: c.PID, stop: func() {
		c.Stop()
		os.RemoveAll(dir)
		// prism logs its jobs' totals (records written, dropped) at exit.
		for _, line := range strings.Split(stderr.String(), "\n") {
			if strings.Contains(line, "log job totals") {
				fmt.Fprintf(os.Stderr, "prism: %s\n", line)
			}
		}
	}}
	if err := waitEcho(addr); err != nil {
		p.stop()
		return nil, fmt.Errorf("%v; prism said: %s", err, strings.TrimSpace(stderr.String()))
	}
	return p, nil
}

// waitEcho retries one datagram until the proxy answers: a UDP listener
// gives no other readiness signal.
func waitEcho(addr netip.AddrPort) error {
	c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(addr))
	if err != nil {
		return err
	}
	defer c.Close()
	buf := make([]byte, 64)
	// Until the proxy binds, each probe draws an ICMP port unreachable that
	// fails the next Read at once (ECONNREFUSED): pace by the clock.
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
		_, _ = c.Write([]byte("ready?"))
		_ = c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		if _, err := c.Read(buf); err == nil {
			return nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	return fmt.Errorf("proxy at %v does not answer", addr)
}

type result struct {
	echoed, loss, cpuPerPkt float64
}

// procCPU is the CPU time of every thread of pid and of its children
// (nginx's workers under its master), from schedstat (ns).
func procCPU(pid int) time.Duration {
	ents, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	var total int64
	for _, e := range ents {
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/children", pid, e.Name())); err == nil {
			for _, f := range strings.Fields(string(b)) {
				if child, err := strconv.Atoi(f); err == nil {
					total += int64(procCPU(child))
				}
			}
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/schedstat", pid, e.Name()))
		if err != nil {
			continue
		}
		f := strings.Fields(string(b))
		if len(f) > 0 {
			n, _ := strconv.ParseInt(f[0], 10, 64)
			total += n
		}
	}
	return time.Duration(total)
}

// load offers rate packets/s spread over flows for dur and counts echoes.
func load(addr netip.AddrPort, rate, flows, size int, dur time.Duration, pid int) result {
	conns := make([]*net.UDPConn, flows)
	var got atomic.Int64
	for i := range conns {
		c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(addr))
		if err != nil {
			log.Fatal(err)
		}
		_ = c.SetReadBuffer(4 << 20)
		conns[i] = c
		go func() {
			pc := ipv4.NewPacketConn(c)
			ms := make([]ipv4.Message, 32)
			for j := range ms {
				ms[j].Buffers = [][]byte{make([]byte, 2048)}
			}
			for {
				n, err := pc.ReadBatch(ms, 0)
				if err != nil {
					return
				}
				got.Add(int64(n))
			}
		}()
	}
	// Session setup outside the measurement.
	for _, c := range conns {
		_, _ = c.Write(make([]byte, size))
	}
	time.Sleep(200 * time.Millisecond)
	got.Store(0)
	msg := make([]byte, size)
	var cpu0 time.Duration
	if pid != 0 {
		cpu0 = procCPU(pid)
	}
	start := time.Now()
	sent := 0
	tick := time.NewTicker(time.Millisecond)
	for now := range tick.C {
		el := now.Sub(start)
		if el >= dur {
			break
		}
		due := int(float64(rate)*el.Seconds()) - sent
		for ; due > 0; due-- {
			_, _ = conns[sent%flows].Write(msg)
			sent++
		}
	}
	tick.Stop()
	time.Sleep(300 * time.Millisecond) // replies in flight
	var cpu time.Duration
	if pid != 0 {
		cpu = procCPU(pid) - cpu0
	}
	echoed := got.Load()
	for _, c := range conns {
		c.Close()
	}
	r := result{echoed: float64(echoed) / dur.Seconds(), loss: 1 - float64(echoed)/float64(sent)}
	if r.loss < 0 {
		r.loss = 0
	}
	switch {
	case pid == 0:
		r.cpuPerPkt = math.NaN()
	case echoed > 0:
		r.cpuPerPkt = float64(cpu.Microseconds()) / float64(echoed)
	}
	return r
}

// idleMemory opens n sessions (one round trip each) and returns the
// proxy's PSS growth per session.
func idleMemory(addr netip.AddrPort, pid, n int) float64 {
	before := pssOf(pid)
	conns := make([]*net.UDPConn, 0, n)
	buf := make([]byte, 64)
	for range n {
		c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(addr))
		if err != nil {
			break
		}
		conns = append(conns, c)
		for try := 0; try < 5; try++ {
			_, _ = c.Write([]byte("hold"))
			_ = c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
			if _, err := c.Read(buf); err == nil {
				break
			}
		}
	}
	time.Sleep(200 * time.Millisecond)
	after := pssOf(pid)
	for _, c := range conns {
		c.Close()
	}
	return float64(after-before) / float64(len(conns))
}

func pssOf(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "Pss:") {
			kb, _ := strconv.ParseInt(strings.Fields(line)[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}

// runOrigin is a batched UDP echo server; it prints its address.
func runOrigin() {
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		log.Fatal(err)
	}
	_ = c.SetReadBuffer(4 << 20)
	fmt.Println(c.LocalAddr())
	pc := ipv4.NewPacketConn(c)
	ms := make([]ipv4.Message, 64)
	for i := range ms {
		ms[i].Buffers = [][]byte{make([]byte, 65536)}
	}
	for {
		n, err := pc.ReadBatch(ms, 0)
		if err != nil {
			return
		}
		for i := range n {
			ms[i].Buffers[0] = ms[i].Buffers[0][:ms[i].N]
		}
		for off := 0; off < n; {
			k, err := pc.WriteBatch(ms[off:n], 0)
			if err != nil {
				break
			}
			off += k
		}
		for i := range n {
			ms[i].Buffers[0] = ms[i].Buffers[0][:cap(ms[i].Buffers[0])]
		}
	}
}

// runPrism runs prism's UDP proxy for one app with a static origin and
// prints the bound address; SIGTERM shuts it down.
func runPrism(originAddr string) {
	oc := origin.Config{Addresses: []string{originAddr}}
	if err := cfgerr.Prepare(&oc); err != nil {
		log.Fatal(err)
	}
	pool, err := origin.NewPool(oc, nil, nil)
	if err != nil {
		log.Fatal(err)
	}
	var events atomic.Int64
	em := event.EmitterFunc(func(*event.Event) { events.Add(1) })
	app := udpproxy.App{ID: "bench", Listen: []netspec.Listen{{Raw: "127.0.0.1:0", Host: "127.0.0.1"}}, Pool: pool,
		UDP: udpproxy.Config{IdleTimeout: 10 * time.Second, MaxSessionsPerClient: 100000, Sockets: socketsEnv()}}
	for _, sec := range []cfgerr.Section{&app.UDP, &app.Limits} {
		if err := cfgerr.Prepare(sec); err != nil {
			log.Fatal(err)
		}
	}
	s, err := udpproxy.New(app, em, nil, nil)
	if err != nil {
		log.Fatal(err)
	}
	if err := s.Start(); err != nil {
		log.Fatal(err)
	}
	if path := os.Getenv("PRISM_UDPBENCH_CPUPROFILE"); path != "" {
		f, err := os.Create(path)
		if err != nil {
			log.Fatal(err)
		}
		_ = pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	fmt.Println(s.Addrs()[0])
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	<-ctx.Done()
	stop()
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = s.Shutdown(sctx)
	st := s.Stats()
	fmt.Fprintf(os.Stderr, "prism: %d events, stats %+v\n", events.Load(), st)
}

// socketsEnv is -sockets passed to the prism-bare child.
func socketsEnv() int {
	n, _ := strconv.Atoi(os.Getenv("PRISM_UDPBENCH_SOCKETS"))
	return n
}
