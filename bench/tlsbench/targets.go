package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/prismproxy/prism/internal/event"
	"github.com/prismproxy/prism/internal/tlsedge"
)

// proxy is a running target.
type proxy struct {
	addr string
	pid  int
	stop func()
}

type target struct {
	check func(c *config) string // why it cannot run here, "" if it can
	start func(c *config, cert certPair, origin string) (*proxy, error)
}

var targets = map[string]target{
	"tlsedge": {check: func(*config) string { return "" }, start: startEdgeProxy},
	"prism":   {check: checkPrism, start: startPrism},
	"nginx":   {check: checkNginx, start: startNginx},
}

// --- tlsedge: Edge.Terminate + io.Copy, this binary in "edgeproxy" mode ---

func startEdgeProxy(c *config, cert certPair, origin string) (*proxy, error) {
	return c.spawnAddr("tlsedge", c.self, "edgeproxy", "-cert", cert.cert, "-key", cert.keyFile, "-origin", origin)
}

// runEdgeProxy is the bare TLS-terminating relay: what prism does per
// connection in mode flexible, minus config, firewall and logging.
func runEdgeProxy(args []string) {
	fs := flag.NewFlagSet("edgeproxy", flag.ExitOnError)
	certFile := fs.String("cert", "", "certificate")
	keyFile := fs.String("key", "", "key")
	origin := fs.String("origin", "", "origin address")
	_ = fs.Parse(args)
	if path := os.Getenv("PRISM_TLSBENCH_CPUPROFILE"); path != "" {
		stopProfile := startProfile(fmt.Sprintf("%s.%d", path, os.Getpid()))
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGTERM)
		go func() { <-sig; stopProfile(); os.Exit(0) }()
	}
	edge, err := tlsedge.NewEdge(tlsedge.Config{Mode: tlsedge.ModeFlexible,
		Certificates: []tlsedge.CertFile{{Cert: *certFile, Key: *keyFile}}}, slog.New(slog.NewTextHandler(os.Stderr, nil)))
	if err != nil {
		log.Fatal(err)
	}
	if err := edge.Ready(); err != nil {
		log.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	os.Stdout.WriteString(l.Addr().String() + "\n")
	for {
		conn, err := l.Accept()
		if err != nil {
			log.Fatal(err)
		}
		go func() {
			defer conn.Close()
			ev := event.New("bench", event.ID{})
			tc, _, err := edge.Terminate(conn, &ev)
			if err != nil {
				return
			}
			o, err := net.Dial("tcp", *origin)
			if err != nil {
				return
			}
			defer o.Close()
			done := make(chan struct{})
			go func() {
				_, _ = io.Copy(o, tc)
				_ = o.(*net.TCPConn).CloseWrite()
				close(done)
			}()
			_, _ = io.Copy(tc, o)
			_ = tc.CloseWrite()
			<-done
		}()
	}
}

// --- nginx stream ssl ---

const nginxStream = "/usr/lib/nginx/modules/ngx_stream_module.so"

func lookPath(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, d := range []string{"/usr/sbin", "/sbin", "/usr/local/sbin"} {
		if p := filepath.Join(d, name); isFile(p) {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found", name)
}

func isFile(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}

func checkNginx(*config) string {
	if _, err := lookPath("nginx"); err != nil {
		return "nginx not installed"
	}
	if !isFile(nginxStream) {
		return "nginx stream module missing (" + nginxStream + ")"
	}
	return ""
}

func startNginx(c *config, cert certPair, origin string) (*proxy, error) {
	bin, _ := lookPath("nginx")
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	dir, _ := os.MkdirTemp(c.tmp, "nginx-")
	// One worker, like prism pinned to one CPU. X25519 only, as the client
	// offers. No session cache: every handshake is a full one anyway.
	conf := fmt.Sprintf(`load_module %s;
daemon off;
master_process off;
worker_processes 1;
worker_rlimit_nofile 30000;
pid %[2]s/nginx.pid;
error_log %[2]s/error.log error;
events { worker_connections 30000; }
stream {
    server {
        listen 127.0.0.1:%[3]d ssl;
        ssl_certificate %[4]s;
        ssl_certificate_key %[5]s;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_ecdh_curve X25519;
        proxy_pass %[6]s;
        proxy_timeout 1h;
    }
}
`, nginxStream, dir, port, cert.cert, cert.keyFile, origin)
	path := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	return c.spawnPort("nginx", port, bin, "-e", filepath.Join(dir, "error.log"), "-p", dir, "-c", path)
}

// --- prism (cmd/prism with tls mode flexible) ---

var prismBin, prismErr string

func checkPrism(c *config) string {
	if prismBin != "" || prismErr != "" {
		return prismErr
	}
	if !isFile(filepath.Join(c.root, "cmd", "prism", "main.go")) {
		prismErr = "cmd/prism does not exist yet"
		return prismErr
	}
	bin := filepath.Join(c.tmp, "prism")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/prism")
	cmd.Dir = c.root
	if out, err := cmd.CombinedOutput(); err != nil {
		prismErr = "go build ./cmd/prism failed: " + strings.SplitN(strings.TrimSpace(string(out)), "\n", 2)[0]
		return prismErr
	}
	prismBin = bin
	return ""
}

func startPrism(c *config, cert certPair, origin string) (*proxy, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	dir, _ := os.MkdirTemp(c.tmp, "prism-")
	conf := fmt.Sprintf(`node: {colo: BEN, id: bench-1, region_name: bench}
apps:
  - id: bench
    protocol: tcp
    listen: ["127.0.0.1:%d"]
    origins: {addresses: ["%s"]}
    timeouts: {connect: 5s, idle: 1h}
    max_connections: 30000
    tls:
      mode: flexible
      certificates: [{cert: %s, key: %s}]
log_jobs:
  - name: spectrum
    dataset: spectrum_events
    destination: {type: file, path: %s/spectrum.log}
`, port, origin, cert.cert, cert.keyFile, dir)
	path := filepath.Join(dir, "prism.yaml")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	return c.spawnPort("prism", port, prismBin, "run", "-config", path)
}

// --- processes ---

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func (c *config) pinned(argv ...string) *exec.Cmd {
	if c.taskset != "" {
		argv = append([]string{c.taskset, "-c", c.proxyCPU}, argv...)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stderr = c.logFile
	return cmd
}

func (c *config) spawnPort(name string, port int, argv ...string) (*proxy, error) {
	cmd := c.pinned(argv...)
	cmd.Stdout = c.logFile
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	p := &proxy{addr: "127.0.0.1:" + strconv.Itoa(port), pid: cmd.Process.Pid, stop: func() { stopProcess(cmd, exited) }}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		select {
		case err := <-exited:
			return nil, fmt.Errorf("%s exited at start: %v (see its log)", name, err)
		default:
		}
		if conn, err := net.DialTimeout("tcp", p.addr, time.Second); err == nil {
			conn.Close()
			return p, nil
		}
	}
	p.stop()
	return nil, fmt.Errorf("%s did not listen on %s within 10s", name, p.addr)
}

func (c *config) spawnAddr(name string, argv ...string) (*proxy, error) {
	cmd := c.pinned(argv...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	p := &proxy{pid: cmd.Process.Pid, stop: func() { stopProcess(cmd, exited) }}
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		if sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		for sc.Scan() {
		}
	}()
	select {
	case addr, ok := <-lines:
		if ok {
			p.addr = addr
			return p, nil
		}
	case <-time.After(10 * time.Second):
	}
	p.stop()
	return nil, fmt.Errorf("%s printed no address", name)
}

func stopProcess(cmd *exec.Cmd, exited chan error) {
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
		_ = cmd.Process.Kill()
		<-exited
	}
}

// cpuTime is the user+system CPU time of pid from /proc/pid/stat.
func cpuTime(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / 100 // USER_HZ is 100 on Linux
}

// startProfile writes a CPU profile of the edgeproxy to path until the
// returned function is called (PRISM_TLSBENCH_CPUPROFILE, for looking into
// handshake cost).
func startProfile(path string) func() {
	f, err := os.Create(path)
	if err != nil {
		log.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		log.Fatal(err)
	}
	return func() { pprof.StopCPUProfile(); f.Close() }
}
