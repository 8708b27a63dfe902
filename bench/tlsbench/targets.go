package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/prismproxy/prism/bench/internal/proc"
	"github.com/prismproxy/prism/internal/cfgerr"
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
	tc := tlsedge.Config{Mode: tlsedge.ModeFlexible, Certificates: []tlsedge.CertFile{{Cert: *certFile, Key: *keyFile}}}
	if err := cfgerr.Prepare(&tc); err != nil {
		log.Fatal(err)
	}
	edge, err := tlsedge.NewEdge(tc, slog.New(slog.NewTextHandler(os.Stderr, nil)))
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
			tc, _, err := edge.Terminate(context.Background(), conn, &ev)
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

func checkNginx(*config) string {
	if _, err := proc.LookPath("nginx"); err != nil {
		return "nginx not installed"
	}
	if !proc.IsFile(nginxStream) {
		return "nginx stream module missing (" + nginxStream + ")"
	}
	return ""
}

func startNginx(c *config, cert certPair, origin string) (*proxy, error) {
	bin, _ := proc.LookPath("nginx")
	port, err := proc.FreePort()
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

// checkPrism builds ./cmd/prism once; the target is skipped until it builds.
func checkPrism(c *config) string {
	if prismBin == "" && prismErr == "" {
		bin, err := proc.BuildPrism(c.root, c.tmp)
		if err != nil {
			prismErr = err.Error()
		}
		prismBin = bin
	}
	return prismErr
}

func startPrism(c *config, cert certPair, origin string) (*proxy, error) {
	port, err := proc.FreePort()
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

// spawnPort starts a proxy on the proxy CPU that listens on a port we
// chose, and waits until it accepts connections.
func (c *config) spawnPort(name string, port int, argv ...string) (*proxy, error) {
	return asProxy(c.launcher.SpawnPort(c.proxyCPU, name, port, argv...))
}

// spawnAddr starts a process on the proxy CPU that prints its listen
// address on stdout.
func (c *config) spawnAddr(name string, argv ...string) (*proxy, error) {
	return asProxy(c.launcher.SpawnAddr(c.proxyCPU, name, argv...))
}

func asProxy(p *proc.Process, err error) (*proxy, error) {
	if err != nil {
		return nil, err
	}
	return &proxy{addr: p.Addr, pid: p.PID, stop: p.Stop}, nil
}

// cpuTime is the user+system CPU time of pid so far (0 if unreadable).
func cpuTime(pid int) time.Duration {
	d, _ := proc.CPUTime(pid)
	return d
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
