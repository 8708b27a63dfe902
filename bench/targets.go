package main

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// server is a running target: where to connect, and the process to watch
// (pid 0 for the direct target, which has no proxy).
type server struct {
	addr string
	pid  int
	stop func()
}

// target is one thing to compare: something that forwards a TCP
// connection to the origin.
type target struct {
	name string
	// check says why the target cannot run here ("" if it can).
	check func(b *bench) string
	// start launches the target in front of origin, pinned to the proxy CPU.
	start func(b *bench, origin string) (*server, error)
}

func targets() []*target {
	return []*target{
		{name: "direct", check: func(*bench) string { return "" }, start: startDirect},
		{name: "prism", check: checkPrism, start: prismVariant(prismSpectrum)},
		{name: "prism-nolog", check: checkPrism, start: prismVariant(prismNoLog)},
		{name: "prism-3jobs", check: checkPrism, start: prismVariant(prismThreeJobs)},
		{name: "prism-fw", check: checkPrismFirewall, start: prismVariant(prismFirewall)},
		{name: "prism-copy", check: checkPrism, start: prismVariant(prismCopy)},
		{name: "relay", check: func(*bench) string { return "" }, start: startRelay},
		{name: "haproxy", check: checkProgram("haproxy"), start: startHAProxy},
		{name: "nginx", check: checkNginx, start: startNginx},
	}
}

func startDirect(_ *bench, origin string) (*server, error) {
	return &server{addr: origin, stop: func() {}}, nil
}

// startRelay runs the bare relay (this binary, "relayproxy" mode).
func startRelay(b *bench, origin string) (*server, error) {
	return b.spawnAddr("relay", b.self, "relayproxy", "-listen", "127.0.0.1:0", "-origin", origin)
}

func checkProgram(name string) func(*bench) string {
	return func(*bench) string {
		if _, err := lookPath(name); err != nil {
			return name + " not installed"
		}
		return ""
	}
}

// lookPath finds a program in PATH or the sbin directories Debian uses.
func lookPath(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, d := range []string{"/usr/sbin", "/sbin", "/usr/local/sbin"} {
		p := filepath.Join(d, name)
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found", name)
}

func startHAProxy(b *bench, origin string) (*server, error) {
	bin, _ := lookPath("haproxy")
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	dir := b.tempDir("haproxy")
	cfg := fmt.Sprintf(`global
    maxconn 9500
    nbthread 1
defaults
    mode tcp
    timeout connect 5s
    timeout client 1h
    timeout server 1h
frontend bench
    bind 127.0.0.1:%d
    default_backend origin
backend origin
    server o1 %s
`, port, origin)
	path := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		return nil, err
	}
	return b.spawnPort("haproxy", port, bin, "-db", "-f", path)
}

const nginxStream = "/usr/lib/nginx/modules/ngx_stream_module.so"

func checkNginx(b *bench) string {
	if s := checkProgram("nginx")(b); s != "" {
		return s
	}
	if _, err := os.Stat(nginxStream); err != nil {
		return "nginx stream module missing (" + nginxStream + ")"
	}
	return ""
}

func startNginx(b *bench, origin string) (*server, error) {
	bin, _ := lookPath("nginx")
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	dir := b.tempDir("nginx")
	cfg := fmt.Sprintf(`load_module %s;
daemon off;
master_process off;
worker_processes 1;
worker_rlimit_nofile 30000;
pid %s/nginx.pid;
error_log %s/error.log error;
events { worker_connections 30000; }
stream {
    server {
        listen 127.0.0.1:%d;
        proxy_pass %s;
        proxy_timeout 1h;
        proxy_half_close on;
    }
}
`, nginxStream, dir, dir, port, origin)
	path := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		return nil, err
	}
	return b.spawnPort("nginx", port, bin, "-e", filepath.Join(dir, "error.log"), "-p", dir, "-c", path)
}

// checkPrism builds ./cmd/prism once; the target is skipped until it builds.
func checkPrism(b *bench) string {
	if b.prismBin != "" {
		return ""
	}
	if b.prismErr != "" {
		return b.prismErr
	}
	if _, err := os.Stat(filepath.Join(b.root, "cmd", "prism")); err != nil {
		b.prismErr = "cmd/prism does not exist yet"
		return b.prismErr
	}
	bin := filepath.Join(b.tmp, "prism")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/prism")
	cmd.Dir = b.root
	if out, err := cmd.CombinedOutput(); err != nil {
		b.prismErr = "go build ./cmd/prism failed: " + firstLine(string(out))
		return b.prismErr
	}
	b.prismBin = bin
	return ""
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// prism variants: what the generated config adds to the one TCP app.
const (
	prismSpectrum  = iota // a spectrum_events job writing to a file (the bar's setting)
	prismNoLog            // no log job at all
	prismThreeJobs        // spectrum_events, edgeone_l4 and cloudconnexa jobs, each to a file
	prismFirewall         // spectrum_events job, both MaxMind test DBs and a 100,000-CIDR block list
	prismCopy             // spectrum_events job, relay_mode: copy (read/write instead of splice)
)

// fwRules is the size of the prism-fw block list.
const fwRules = 100000

// geoipDir holds the MaxMind test databases (the repository's copy).
func (b *bench) geoipDir() string {
	return filepath.Join(b.root, "testdata", "geoip")
}

func checkPrismFirewall(b *bench) string {
	if s := checkPrism(b); s != "" {
		return s
	}
	for _, f := range []string{"GeoLite2-Country-Test.mmdb", "GeoLite2-ASN-Test.mmdb"} {
		if _, err := os.Stat(filepath.Join(b.geoipDir(), f)); err != nil {
			return "MaxMind test database missing: " + err.Error()
		}
	}
	return ""
}

// prismVariant runs prism with one TCP app in front of the origin; the
// variant decides the log jobs and the firewall. Records are counted in
// b.prismLog (the spectrum_events file) when the variant writes one.
func prismVariant(variant int) func(b *bench, origin string) (*server, error) {
	return func(b *bench, origin string) (*server, error) {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		dir := b.tempDir("prism")
		b.prismLog = ""
		var top, app, jobs string
		spectrum := fmt.Sprintf(`  - name: spectrum
    dataset: spectrum_events
    destination: {type: file, path: %s}
`, filepath.Join(dir, "spectrum.log"))
		switch variant {
		case prismSpectrum:
			jobs = spectrum
		case prismCopy:
			jobs = spectrum
			app = "    relay_mode: copy\n"
		case prismThreeJobs:
			jobs = spectrum + fmt.Sprintf(`  - name: edgeone
    dataset: edgeone_l4
    destination: {type: file, path: %s}
  - name: cloudconnexa
    dataset: cloudconnexa
    destination: {type: file, path: %s}
`, filepath.Join(dir, "edgeone.log"), filepath.Join(dir, "cloudconnexa.log"))
		case prismFirewall:
			jobs = spectrum
			list := filepath.Join(dir, "block.txt")
			if err := writeBlockList(list, fwRules); err != nil {
				return nil, err
			}
			top = fmt.Sprintf("geoip:\n  country_db: %s\n  asn_db: %s\n",
				filepath.Join(b.geoipDir(), "GeoLite2-Country-Test.mmdb"), filepath.Join(b.geoipDir(), "GeoLite2-ASN-Test.mmdb"))
			app = fmt.Sprintf(`    ip_firewall:
      default: allow
      rules:
        - {action: block, country: CN}
        - {action: block, asn: 64512}
      lists:
        - {action: block, path: %s}
`, list)
		}
		if jobs != "" {
			b.prismLog = filepath.Join(dir, "spectrum.log")
			jobs = "log_jobs:\n" + jobs
		}
		cfg := fmt.Sprintf(`node:
  colo: BEN
  id: bench-1
  region_name: "bench"
%sapps:
  - id: bench
    protocol: tcp
    listen: ["127.0.0.1:%d"]
    origins:
      addresses: ["%s"]
    timeouts: {connect: 5s, idle: 1h}
    max_connections: 30000
%s%s`, top, port, origin, app, jobs)
		path := filepath.Join(dir, "prism.yaml")
		if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
			return nil, err
		}
		return b.spawnPort("prism", port, b.prismBin, "run", "-config", path)
	}
}

// writeBlockList writes n distinct CIDRs, none covering loopback: /24s
// from 11.0.0.0 up, every tenth one an IPv6 /64 in 2001:db8::/32.
func writeBlockList(path string, n int) error {
	var sb strings.Builder
	sb.WriteString("# bench block list\n")
	for i := 0; i < n; i++ {
		if i%10 == 9 {
			fmt.Fprintf(&sb, "2001:db8:%x:%x::/64\n", i>>16, i&0xffff)
			continue
		}
		v := 11<<24 + i<<8
		fmt.Fprintf(&sb, "%d.%d.%d.0/24\n", v>>24&255, v>>16&255, v>>8&255)
	}
	return os.WriteFile(path, []byte(sb.String()), 0o644)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// pinned returns the command line that runs argv on the proxy CPU.
func (b *bench) pinned(argv ...string) *exec.Cmd { return b.pinnedTo(b.proxyCPU, argv...) }

func (b *bench) pinnedTo(cpu string, argv ...string) *exec.Cmd {
	if b.taskset != "" {
		argv = append([]string{b.taskset, "-c", cpu}, argv...)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stderr = b.logFile
	return cmd
}

// spawnPort starts a proxy that listens on a port we chose, and waits
// until it accepts connections.
func (b *bench) spawnPort(name string, port int, argv ...string) (*server, error) {
	cmd := b.pinned(argv...)
	cmd.Stdout = b.logFile
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	srv := &server{addr: fmt.Sprintf("127.0.0.1:%d", port), pid: cmd.Process.Pid}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	srv.stop = func() { stopProcess(cmd, exited) }
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			return nil, fmt.Errorf("%s exited at start: %v: %s", name, err, b.logTail())
		default:
		}
		if c, err := net.DialTimeout("tcp", srv.addr, time.Second); err == nil {
			c.Close()
			return srv, nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	srv.stop()
	return nil, fmt.Errorf("%s did not listen on %s within 10s", name, srv.addr)
}

// spawnAddr starts a process that prints its listen address on stdout.
func (b *bench) spawnAddr(name string, argv ...string) (*server, error) {
	return b.spawnAddrOn(b.proxyCPU, name, argv...)
}

func (b *bench) spawnAddrOn(cpu, name string, argv ...string) (*server, error) {
	cmd := b.pinnedTo(cpu, argv...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	exited := make(chan error, 1)
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
	go func() { exited <- cmd.Wait() }()
	stop := func() { stopProcess(cmd, exited) }
	select {
	case addr, ok := <-lines:
		if !ok {
			stop()
			return nil, fmt.Errorf("%s printed no address", name)
		}
		return &server{addr: addr, pid: cmd.Process.Pid, stop: stop}, nil
	case <-time.After(10 * time.Second):
		stop()
		return nil, fmt.Errorf("%s printed no address within 10s", name)
	}
}

// stopProcess asks the process to stop (SIGTERM), then kills it after 5s.
func stopProcess(cmd *exec.Cmd, exited chan error) {
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
		_ = cmd.Process.Kill()
		<-exited
	}
}

// logTail returns the last lines the proxies wrote (for start failures).
func (b *bench) logTail() string {
	data, _ := os.ReadFile(b.logPath)
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) > 5 {
		lines = lines[len(lines)-5:]
	}
	return strings.Join(lines, " | ")
}
