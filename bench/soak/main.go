// Command soak runs prism under mixed TCP, TLS and UDP load for a chosen
// duration, with origin restarts and blocked clients, sampling prism's RSS,
// descriptors and goroutines, and at the end compares the sessions the load
// made with the terminal records written in every dataset (spectrum_events,
// edgeone_l4, cloudconnexa). It exits 1 when a count does not match or when
// prism does not stop cleanly.
//
//	go run ./bench/soak -duration 10m
//
// Everything is on loopback: prism (built with -tags prismdebug so that it
// serves pprof on a loopback port, for the goroutine count) pinned to CPU 1,
// and the load generator and the echo origins in this process on CPU 0.
// Blocked clients connect from 127.66.0.0/16 (every app blocks it); UDP
// clients each use their own source address in 127.10.0.0/16, so that no
// two client sockets can ever map to one prism session. The load is paced
// (-rate attempts per second) and bounded by -duration.
package main

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prismproxy/prism/bench/internal/proc"
)

func main() {
	dur := flag.Duration("duration", 10*time.Minute, "how long the load runs")
	rate := flag.Int("rate", 100, "session attempts per second (all kinds together)")
	workers := flag.Int("workers", 16, "concurrent clients")
	restartEvery := flag.Duration("restart-every", time.Minute, "stop both origins this often")
	down := flag.Duration("down", 3*time.Second, "how long the origins stay down at each restart")
	every := flag.Duration("sample", 30*time.Second, "sampling interval")
	keep := flag.Bool("keep", false, "keep the work directory (config, logs, prism stderr)")
	flag.Parse()
	if err := run(*dur, *rate, *workers, *restartEvery, *down, *every, *keep); err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		os.Exit(1)
	}
}

// kinds of session the load makes.
const (
	kTCP = iota
	kTLS
	kUDP
	kBlockedTCP
	kBlockedUDP
	nKinds
)

var kindNames = [nKinds]string{"tcp", "tls", "udp", "blocked tcp", "blocked udp"}

// mix is the share of each kind in every 20 attempts.
var mix = [20]int{kTCP, kTLS, kUDP, kTCP, kUDP, kTCP, kTLS, kBlockedTCP, kUDP, kTCP,
	kTLS, kUDP, kTCP, kBlockedUDP, kTCP, kTLS, kUDP, kBlockedTCP, kTCP, kUDP}

type counts struct {
	made [nKinds]atomic.Int64 // sessions prism must have seen (TCP connected / datagram sent)
	ok   [nKinds]atomic.Int64 // answered as expected (echo back, or closed when blocked)
}

func run(dur time.Duration, rate, workers int, restartEvery, down, every time.Duration, keep bool) error {
	root, err := proc.RepoRoot()
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "prism-soak-")
	if err != nil {
		return err
	}
	if keep {
		fmt.Println("work directory:", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	bin := filepath.Join(dir, "prism")
	build := exec.Command("go", "build", "-tags", "prismdebug", "-o", bin, "./cmd/prism")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("go build ./cmd/prism: %v\n%s", err, out)
	}
	taskset, _ := proc.LookPath("taskset")
	if taskset != "" {
		// This process (load and origins) on CPU 0, prism on CPU 1.
		_ = exec.Command(taskset, "-a", "-p", "-c", "0", strconv.Itoa(os.Getpid())).Run()
	}

	ports := make([]int, 6)
	for i := range ports {
		if ports[i], err = proc.FreePort(); err != nil {
			return err
		}
	}
	tcpOrigin := &tcpEcho{addr: fmt.Sprintf("127.0.0.1:%d", ports[0])}
	udpOrigin := &udpEcho{addr: fmt.Sprintf("127.0.0.1:%d", ports[1])}
	if err := tcpOrigin.start(); err != nil {
		return err
	}
	if err := udpOrigin.start(); err != nil {
		return err
	}
	defer tcpOrigin.stop()
	defer udpOrigin.stop()

	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := writeCert(certFile, keyFile); err != nil {
		return err
	}
	addr := func(i int) string { return fmt.Sprintf("127.0.0.1:%d", ports[i]) }
	logs := map[string]string{}
	for _, ds := range []string{"spectrum_events", "edgeone_l4", "cloudconnexa"} {
		logs[ds] = filepath.Join(dir, ds+".log")
	}
	cfgPath := filepath.Join(dir, "prism.yaml")
	if err := os.WriteFile(cfgPath, []byte(config(addr, certFile, keyFile, logs)), 0o644); err != nil {
		return err
	}

	stderrPath := filepath.Join(dir, "prism.stderr")
	stderr, err := os.Create(stderrPath)
	if err != nil {
		return err
	}
	defer stderr.Close()
	argv := []string{bin, "run", "-config", cfgPath}
	if taskset != "" {
		argv = append([]string{taskset, "-c", "1"}, argv...)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = stderr, stderr
	cmd.Env = append(os.Environ(), "PRISM_DEBUG_ADDR="+addr(5))
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() { _ = cmd.Process.Kill() }()
	if err := waitListening(addr(2), exited); err != nil {
		return fmt.Errorf("prism did not start: %w\n%s", err, tail(stderrPath))
	}
	pid := cmd.Process.Pid

	fmt.Printf("# prism soak: %v, %d attempts/s, %d workers, origins down %v every %v\n\n", dur, rate, workers, down, restartEvery)
	fmt.Printf("Go %s, %d CPUs, started %s, load average at start %s\n\n", runtime.Version(), runtime.NumCPU(), time.Now().UTC().Format(time.RFC3339), loadavg())
	fmt.Println("| elapsed | sessions made | RSS MB | fds | goroutines | load avg |")
	fmt.Println("|---:|---:|---:|---:|---:|---|")

	var c counts
	c.made[kTCP].Add(1) // waitListening's probe was a session too
	c.ok[kTCP].Add(1)
	tlsConf := &tls.Config{InsecureSkipVerify: true, ServerName: "soak.example"}
	stopLoad := make(chan struct{})
	tokens := make(chan int, workers)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := range tokens {
				kind := mix[n%len(mix)]
				made, ok := attempt(kind, n, addr, tlsConf)
				if made {
					c.made[kind].Add(1)
				}
				if ok {
					c.ok[kind].Add(1)
				}
			}
		}()
	}
	go func() { // pacer
		defer close(tokens)
		tick := time.NewTicker(time.Second / time.Duration(rate))
		defer tick.Stop()
		for n := 0; ; n++ {
			select {
			case <-stopLoad:
				return
			case <-tick.C:
			}
			select {
			case tokens <- n:
			case <-stopLoad:
				return
			}
		}
	}()
	restarts := 0
	restartStop := make(chan struct{})
	restartDone := make(chan struct{})
	go func() {
		defer close(restartDone)
		t := time.NewTicker(restartEvery)
		defer t.Stop()
		for {
			select {
			case <-restartStop:
				return
			case <-t.C:
			}
			tcpOrigin.stop()
			udpOrigin.stop()
			select {
			case <-restartStop:
			case <-time.After(down):
			}
			if err := tcpOrigin.start(); err != nil {
				fmt.Fprintln(os.Stderr, "restart tcp origin:", err)
			}
			if err := udpOrigin.start(); err != nil {
				fmt.Fprintln(os.Stderr, "restart udp origin:", err)
			}
			restarts++
		}
	}()

	start := time.Now()
	sample := func() sampleRow {
		s := sampleRow{elapsed: time.Since(start).Round(time.Second), rss: rss(pid), fds: proc.FDCount(pid), goroutines: goroutines(addr(5)), load: loadavg()}
		for k := range c.made {
			s.made += c.made[k].Load()
		}
		fmt.Printf("| %v | %d | %.1f | %d | %d | %s |\n", s.elapsed, s.made, float64(s.rss)/(1<<20), s.fds, s.goroutines, s.load)
		return s
	}
	rows := []sampleRow{sample()}
	deadline := time.After(dur)
	tick := time.NewTicker(every)
loop:
	for {
		select {
		case <-tick.C:
			rows = append(rows, sample())
		case <-deadline:
			break loop
		case err := <-exited:
			return fmt.Errorf("prism exited during the soak: %v\n%s", err, tail(stderrPath))
		}
	}
	tick.Stop()
	close(stopLoad)
	wg.Wait()
	close(restartStop)
	<-restartDone
	rows = append(rows, sample())

	// Stop: SIGTERM, prism drains, closes UDP sessions and flushes every job.
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return err
	}
	select {
	case err = <-exited:
	case <-time.After(60 * time.Second):
		return fmt.Errorf("prism did not exit within 60s of SIGTERM\n%s", tail(stderrPath))
	}
	if err != nil {
		return fmt.Errorf("prism exited with %v after SIGTERM\n%s", err, tail(stderrPath))
	}

	var made int64
	fmt.Printf("\n%d origin restarts. Sessions made by kind (answered as expected):\n\n", restarts)
	fmt.Println("| kind | made | answered |")
	fmt.Println("|---|---:|---:|")
	for k := range c.made {
		made += c.made[k].Load()
		fmt.Printf("| %s | %d | %d |\n", kindNames[k], c.made[k].Load(), c.ok[k].Load())
	}
	fmt.Printf("| all | %d | |\n\n", made)
	fmt.Println("| dataset | terminal records | records in all | match |")
	fmt.Println("|---|---:|---:|---|")
	failed := false
	for _, ds := range []string{"spectrum_events", "edgeone_l4", "cloudconnexa"} {
		term, all, err := countTerminal(ds, logs[ds])
		if err != nil {
			return err
		}
		m := "yes"
		if term != made {
			m, failed = fmt.Sprintf("NO (%+d)", term-made), true
		}
		fmt.Printf("| %s | %d | %d | %s |\n", ds, term, all, m)
	}
	first, last := rows[0], rows[len(rows)-1]
	peak := first
	for _, r := range rows {
		if r.rss > peak.rss {
			peak = r
		}
	}
	fmt.Printf("\nRSS %.1f MB at start, %.1f MB at the end, peak %.1f MB at %v; fds %d → %d; goroutines %d → %d.\n",
		mb(first.rss), mb(last.rss), mb(peak.rss), peak.elapsed, first.fds, last.fds, first.goroutines, last.goroutines)
	fmt.Println("\nprism's own totals at shutdown:")
	fmt.Println()
	for _, l := range grepLines(stderrPath, "totals") {
		fmt.Println("    " + l)
	}
	if failed {
		return errors.New("terminal records do not match the sessions made")
	}
	return nil
}

type sampleRow struct {
	elapsed    time.Duration
	made       int64
	rss        int64
	fds        int
	goroutines int
	load       string
}

func mb(b int64) float64 { return float64(b) / (1 << 20) }

func config(addr func(int) string, cert, key string, logs map[string]string) string {
	fw := `    ip_firewall:
      rules: [{action: block, cidr: 127.66.0.0/16}]
`
	var b strings.Builder
	fmt.Fprintf(&b, `node: {colo: SOAK, id: soak-1}
shutdown: {drain_timeout: 5s}
apps:
  - id: tcp
    listen: [%q]
    origins: {addresses: [%q]}
    timeouts: {connect: 1s, idle: 30s}
%s  - id: tls
    listen: [%q]
    origins: {addresses: [%q]}
    timeouts: {connect: 1s, idle: 30s}
    tls:
      mode: flexible
      certificates: [{cert: %q, key: %q}]
%s  - id: udp
    protocol: udp
    listen: [%q]
    origins: {addresses: [%q]}
    udp: {idle_timeout: 2s}
%slog_jobs:
`, addr(2), addr(0), fw, addr(3), addr(0), cert, key, fw, addr(4), addr(1), fw)
	for _, ds := range []string{"spectrum_events", "edgeone_l4", "cloudconnexa"} {
		fmt.Fprintf(&b, `  - name: %s
    dataset: %s
    destination: {type: file, path: %q, max_size_mb: -1}
`, ds, ds, logs[ds])
	}
	return b.String()
}

// attempt makes one session of kind; n picks the source address of UDP
// and blocked clients.
func attempt(kind, n int, addr func(int) string, tlsConf *tls.Config) (made, ok bool) {
	src := netip.AddrFrom4([4]byte{127, 10, byte(n >> 8), byte(n)})
	if kind == kBlockedTCP || kind == kBlockedUDP {
		src = netip.AddrFrom4([4]byte{127, 66, byte(n >> 8), byte(n)})
	}
	msg := []byte("soak " + strconv.Itoa(n) + " ............................................")
	buf := make([]byte, len(msg))
	switch kind {
	case kTCP, kTLS, kBlockedTCP:
		d := net.Dialer{Timeout: 2 * time.Second}
		target := addr(2)
		if kind == kTLS {
			target = addr(3)
		}
		if kind == kBlockedTCP {
			d.LocalAddr = &net.TCPAddr{IP: src.AsSlice()}
		}
		c, err := d.Dial("tcp", target)
		if err != nil {
			return false, false
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		if kind == kBlockedTCP {
			_, err := c.Read(buf) // prism closes a blocked connection
			return true, err == io.EOF || errors.Is(err, syscall.ECONNRESET)
		}
		var rw net.Conn = c
		if kind == kTLS {
			tc := tls.Client(c, tlsConf)
			if err := tc.Handshake(); err != nil {
				return true, false
			}
			rw = tc
		}
		if _, err := rw.Write(msg); err != nil {
			return true, false
		}
		_, err = io.ReadFull(rw, buf)
		return true, err == nil && string(buf) == string(msg)
	default: // kUDP, kBlockedUDP
		c, err := net.DialUDP("udp", &net.UDPAddr{IP: src.AsSlice()}, net.UDPAddrFromAddrPort(netip.MustParseAddrPort(addr(4))))
		if err != nil {
			return false, false
		}
		defer c.Close()
		if _, err := c.Write(msg); err != nil {
			return false, false
		}
		_ = c.SetReadDeadline(time.Now().Add(time.Second))
		nr, err := c.Read(buf)
		if kind == kBlockedUDP {
			return true, err != nil // nothing comes back
		}
		return true, err == nil && string(buf[:nr]) == string(msg)
	}
}

// countTerminal counts the terminal records of one dataset's file (and all
// its records).
func countTerminal(ds, path string) (term, all int64, err error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		all++
		var r map[string]any
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			return 0, 0, fmt.Errorf("%s: record %d is not JSON: %v", path, all, err)
		}
		switch ds {
		case "spectrum_events":
			if r["Event"] != "connect" {
				term++
			}
		case "edgeone_l4":
			if r["DisconnetTimeStamp"] != "-" {
				term++
			}
		case "cloudconnexa":
			line := sc.Text()
			if strings.Contains(line, `"client-disconnected"`) || strings.Contains(line, `"allowed":false`) {
				term++
			}
		}
	}
	return term, all, sc.Err()
}

func waitListening(addr string, exited chan error) error {
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); {
		select {
		case err := <-exited:
			return fmt.Errorf("exited: %v", err)
		case <-time.After(50 * time.Millisecond):
		}
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return nil
		}
	}
	return errors.New("not listening after 20s")
}

func rss(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return -1
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.Fields(v)[0], 10, 64)
			return kb << 10
		}
	}
	return -1
}

func goroutines(debugAddr string) int {
	cl := http.Client{Timeout: 5 * time.Second}
	resp, err := cl.Get("http://" + debugAddr + "/debug/pprof/goroutine?debug=1")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	line, _ := bufio.NewReader(resp.Body).ReadString('\n')
	// "goroutine profile: total 17"
	n, err := strconv.Atoi(strings.TrimSpace(line[strings.LastIndexByte(line, ' ')+1:]))
	if err != nil {
		return -1
	}
	return n
}

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func tail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

func grepLines(path, s string) []string {
	b, _ := os.ReadFile(path)
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, s) {
			out = append(out, l)
		}
	}
	return out
}

func writeCert(certFile, keyFile string) error {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "soak.example"},
		DNSNames:     []string{"soak.example"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		return err
	}
	kb, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		return err
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		return err
	}
	return os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
}

// tcpEcho is an echo origin that can be stopped (listener and every
// connection closed) and started again on the same address.
type tcpEcho struct {
	addr  string
	mu    sync.Mutex
	ln    net.Listener
	conns map[net.Conn]struct{}
}

func (o *tcpEcho) start() error {
	ln, err := net.Listen("tcp", o.addr)
	if err != nil {
		return err
	}
	o.mu.Lock()
	o.ln, o.conns = ln, map[net.Conn]struct{}{}
	o.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			o.mu.Lock()
			if o.ln != ln {
				o.mu.Unlock()
				c.Close()
				return
			}
			o.conns[c] = struct{}{}
			o.mu.Unlock()
			go func() {
				_, _ = io.Copy(c, c)
				c.Close()
				o.mu.Lock()
				delete(o.conns, c)
				o.mu.Unlock()
			}()
		}
	}()
	return nil
}

func (o *tcpEcho) stop() {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.ln == nil {
		return
	}
	o.ln.Close()
	o.ln = nil
	for c := range o.conns {
		c.Close()
	}
}

// udpEcho is a UDP echo origin that can be stopped and started again.
type udpEcho struct {
	addr string
	mu   sync.Mutex
	pc   net.PacketConn
}

func (o *udpEcho) start() error {
	pc, err := net.ListenPacket("udp", o.addr)
	if err != nil {
		return err
	}
	o.mu.Lock()
	o.pc = pc
	o.mu.Unlock()
	go func() {
		buf := make([]byte, 64<<10)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = pc.WriteTo(buf[:n], from)
		}
	}()
	return nil
}

func (o *udpEcho) stop() {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.pc != nil {
		o.pc.Close()
		o.pc = nil
	}
}
