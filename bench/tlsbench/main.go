// Command tlsbench compares edge TLS termination in prism (the tlsedge
// package, and cmd/prism itself once it terminates TLS) with nginx stream
// `ssl` on the same certificate, for RSA-2048 and ECDSA P-256:
//
//   - TLS connections per second: full handshake (no resumption), then a
//     64-byte echo through the proxy to a plaintext origin, then close;
//     with the proxy's CPU time per connection;
//   - bulk upload throughput over one TLS stream, with proxy CPU per GB.
//
// The proxy runs pinned to one CPU, the load generator and origin (this
// process) to another, and each measurement starts a fresh proxy. Both
// sides use X25519 key exchange so that the comparison is of the same work
// (crypto/tls would otherwise pick X25519MLKEM768, which OpenSSL 3.0 lacks).
//
// Run from the repository root: go run ./bench/tlsbench [-time 5s].
package main

import (
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/prismproxy/prism/bench/internal/echo"
	"github.com/prismproxy/prism/bench/internal/proc"
)

type config struct {
	proxyCPU, loadCPU string
	taskset           string
	dur               time.Duration
	conc              int
	targets           string
	keys              string
	tmp               string
	self              string
	root              string
	logFile           *os.File
	launcher          *proc.Launcher // starts the proxies on proxyCPU, logging to logFile
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "edgeproxy" {
		runEdgeProxy(os.Args[2:])
		return
	}
	c := &config{}
	flag.StringVar(&c.proxyCPU, "proxy-cpu", "1", "CPU the proxy is pinned to")
	flag.StringVar(&c.loadCPU, "load-cpu", "0", "CPU the load generator and origin are pinned to")
	flag.DurationVar(&c.dur, "time", 5*time.Second, "duration of each measurement")
	flag.IntVar(&c.conc, "concurrency", 16, "parallel clients for the connection rate")
	flag.StringVar(&c.targets, "targets", "tlsedge,prism,nginx", "targets to compare")
	flag.StringVar(&c.keys, "keys", "rsa2048,p256", "certificate key types")
	flag.Parse()

	if ts, err := exec.LookPath("taskset"); err == nil {
		c.taskset = ts
		if os.Getenv("PRISM_TLSBENCH_PINNED") == "" {
			exe, _ := os.Executable()
			argv := append([]string{ts, "-c", c.loadCPU, exe}, os.Args[1:]...)
			log.Fatal(syscall.Exec(ts, argv, append(os.Environ(), "PRISM_TLSBENCH_PINNED=1")))
		}
	} else {
		log.Print("taskset not found: running unpinned")
	}
	var err error
	if c.self, err = os.Executable(); err != nil {
		log.Fatal(err)
	}
	if c.root, err = proc.RepoRoot(); err != nil {
		log.Fatal(err)
	}
	if c.tmp, err = os.MkdirTemp("", "prism-tlsbench-"); err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(c.tmp)
	if c.logFile, err = os.Create(filepath.Join(c.tmp, "proxies.log")); err != nil {
		log.Fatal(err)
	}
	c.launcher = &proc.Launcher{Taskset: c.taskset, Log: c.logFile}
	run(c)
}

func run(c *config) {
	machine()
	fmt.Printf("proxy pinned to CPU %s, load generator and origin to CPU %s; %v per measurement, %d parallel clients\n",
		c.proxyCPU, c.loadCPU, c.dur, c.conc)
	origin, err := echo.Listen("127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	defer origin.Close()

	type row struct {
		target, key string
		vals        []float64
	}
	var rows []row
	for _, key := range split(c.keys) {
		cert, err := makeCert(c.tmp, key)
		if err != nil {
			log.Fatal(err)
		}
		for _, name := range split(c.targets) {
			t, ok := targets[name]
			if !ok {
				fmt.Printf("unknown target %s\n", name)
				continue
			}
			if why := t.check(c); why != "" {
				fmt.Printf("skipping %s: %s\n", name, why)
				continue
			}
			fmt.Fprintf(os.Stderr, "%s/%s: connections ...\n", name, key)
			rate, err := measure(c, t, cert, origin.Addr().String(), func(p *proxy) ([]float64, error) { return connRate(c, p) })
			if err != nil {
				fmt.Printf("%s/%s conn: %v\n", name, key, err)
				continue
			}
			fmt.Fprintf(os.Stderr, "%s/%s: bulk ...\n", name, key)
			bulk, err := measure(c, t, cert, origin.Addr().String(), func(p *proxy) ([]float64, error) { return bulkRate(c, p) })
			if err != nil {
				fmt.Printf("%s/%s bulk: %v\n", name, key, err)
				continue
			}
			rows = append(rows, row{name, key, append(rate, bulk...)})
		}
	}
	fmt.Printf("\n### TLS termination (edge TLS → plaintext origin)\n\n")
	fmt.Println("| target | key | TLS conn/s | ×nginx | p50 ms | p99 ms | proxy CPU µs/conn | errors | bulk Gbit/s | ×nginx | proxy CPU s/GB |")
	fmt.Println("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	base := func(key string, i int) float64 {
		for _, r := range rows {
			if r.target == "nginx" && r.key == key {
				return r.vals[i]
			}
		}
		return 0
	}
	for _, r := range rows {
		v := r.vals
		fmt.Printf("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", r.target, r.key,
			num(v[0]), ratio(v[0], base(r.key, 0)), num(v[1]), num(v[2]), num(v[3]), num(v[4]),
			num(v[5]), ratio(v[5], base(r.key, 5)), num(v[6]))
	}
	load, _ := os.ReadFile("/proc/loadavg")
	fmt.Printf("\nload average at end: %s\n", strings.TrimSpace(string(load)))
}

// measure starts a fresh proxy, runs f against it and stops it.
func measure(c *config, t target, cert certPair, origin string, f func(*proxy) ([]float64, error)) ([]float64, error) {
	p, err := t.start(c, cert, origin)
	if err != nil {
		return nil, err
	}
	defer p.stop()
	return f(p)
}

func split(s string) []string {
	var out []string
	for _, x := range strings.Split(s, ",") {
		if x = strings.TrimSpace(x); x != "" {
			out = append(out, x)
		}
	}
	return out
}

func num(v float64) string {
	switch {
	case v != v:
		return "-"
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.2f", v)
}

func ratio(v, base float64) string {
	if base == 0 || v != v || base != base {
		return "-"
	}
	return fmt.Sprintf("%.2f×", v/base)
}

func machine() {
	model := "unknown"
	info, _ := os.ReadFile("/proc/cpuinfo")
	for _, l := range strings.Split(string(info), "\n") {
		if strings.HasPrefix(l, "model name") {
			model = strings.TrimSpace(l[strings.IndexByte(l, ':')+1:])
			break
		}
	}
	load, _ := os.ReadFile("/proc/loadavg")
	fmt.Printf("date: %s\nmachine: %d CPUs, %s\nload average at start: %s\n", time.Now().UTC().Format(time.RFC3339),
		strings.Count(string(info), "\nprocessor")+1, model, strings.TrimSpace(string(load)))
	if out, err := exec.Command("openssl", "version").Output(); err == nil {
		fmt.Printf("openssl: %s", out)
	}
}
