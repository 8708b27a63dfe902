package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/prismproxy/prism/bench/internal/proc"
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
		{name: "prism-http", check: checkPrism, start: prismVariant(prismHTTP)},
		{name: "prism-http-nospool", check: checkPrism, start: prismVariant(prismHTTPNoSpool)},
		{name: "prism-admin", check: checkPrism, start: prismVariant(prismAdmin)},
		{name: "prism-admin-idle", check: checkPrism, start: prismVariant(prismAdminIdle)},
		{name: "prism-splice", check: checkPrism, start: prismVariant(prismSplice)},
		{name: "prism-base", check: checkBase, start: prismVariant(prismBase)},
		{name: "relay", check: func(*bench) string { return "" }, start: startRelay},
		{name: "haproxy", check: checkProgram("haproxy"), start: func(b *bench, o string) (*server, error) { return startHAProxy(b, o, false) }},
		{name: "nginx", check: checkNginx, start: func(b *bench, o string) (*server, error) { return startNginx(b, o, false) }},
		{name: "haproxy-log", check: checkHAProxyLog, start: func(b *bench, o string) (*server, error) { return startHAProxy(b, o, true) }},
		{name: "nginx-log", check: checkNginx, start: func(b *bench, o string) (*server, error) { return startNginx(b, o, true) }},
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
		if _, err := proc.LookPath(name); err != nil {
			return name + " not installed"
		}
		return ""
	}
}

func checkHAProxyLog(b *bench) string {
	if s := checkProgram("haproxy")(b); s != "" {
		return s
	}
	return checkProgram("sh")(b)
}

// startHAProxy runs HAProxy in front of origin; with logging, it writes
// one `option tcplog` line per connection to a file (haproxy-log). HAProxy
// logs only to syslog targets or its stdout: stdout it is, redirected to
// the file by a shell that then becomes HAProxy (exec), so that the
// process measured is HAProxy's.
func startHAProxy(b *bench, origin string, logging bool) (*server, error) {
	bin, _ := proc.LookPath("haproxy")
	port, err := proc.FreePort()
	if err != nil {
		return nil, err
	}
	dir := b.tempDir("haproxy")
	global, defaults := "", ""
	if logging {
		global = "    log stdout format raw local0\n"
		defaults = "    log global\n    option tcplog\n"
	}
	cfg := fmt.Sprintf(`global
    maxconn 9500
    nbthread 1
%sdefaults
    mode tcp
    timeout connect 5s
    timeout client 1h
    timeout server 1h
%sfrontend bench
    bind 127.0.0.1:%d
    default_backend origin
backend origin
    server o1 %s
`, global, defaults, port, origin)
	path := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		return nil, err
	}
	if logging {
		sh, _ := proc.LookPath("sh")
		return b.spawnPort("haproxy-log", port, sh, "-c", `exec "$0" -db -f "$1" >"$2"`, bin, path, filepath.Join(dir, "access.log"))
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

// startNginx runs nginx's stream proxy in front of origin; with logging,
// it writes one access-log line per connection to a file through a 64 KiB
// buffer flushed every second (nginx-log), as prism's file job batches.
func startNginx(b *bench, origin string, logging bool) (*server, error) {
	bin, _ := proc.LookPath("nginx")
	port, err := proc.FreePort()
	if err != nil {
		return nil, err
	}
	dir := b.tempDir("nginx")
	accessLog := ""
	if logging {
		accessLog = fmt.Sprintf(`    log_format l4 '$remote_addr:$remote_port [$time_iso8601] $protocol $status $bytes_sent $bytes_received $session_time "$upstream_addr" $upstream_bytes_sent $upstream_bytes_received $upstream_connect_time';
    access_log %s/access.log l4 buffer=64k flush=1s;
`, dir)
	}
	cfg := fmt.Sprintf(`load_module %s;
daemon off;
master_process off;
worker_processes 1;
worker_rlimit_nofile 30000;
pid %s/nginx.pid;
error_log %s/error.log error;
events { worker_connections 30000; }
stream {
%s    server {
        listen 127.0.0.1:%d;
        proxy_pass %s;
        proxy_timeout 1h;
        proxy_half_close on;
    }
}
`, nginxStream, dir, dir, accessLog, port, origin)
	path := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		return nil, err
	}
	return b.spawnPort("nginx", port, bin, "-e", filepath.Join(dir, "error.log"), "-p", dir, "-c", path)
}

// checkPrism builds ./cmd/prism once; the target is skipped until it builds.
func checkPrism(b *bench) string {
	if b.prismBin == "" && b.prismErr == "" {
		bin, err := proc.BuildPrism(b.root, b.tmp)
		if err != nil {
			b.prismErr = err.Error()
		}
		b.prismBin = bin
	}
	return b.prismErr
}

// prism variants: what the generated config adds to the one TCP app.
const (
	prismSpectrum    = iota // a spectrum_events job writing to a file (the bar's setting)
	prismNoLog              // no log job at all
	prismThreeJobs          // spectrum_events, edgeone_l4 and cloudconnexa jobs, each to a file
	prismFirewall           // spectrum_events job, both MaxMind test DBs and a 100,000-CIDR block list
	prismCopy               // spectrum_events job, relay_mode: copy (read/write instead of splice)
	prismHTTP               // spectrum_events job delivered to an HTTP receiver (gzip) through a disk spool
	prismHTTPNoSpool        // the same without the spool (retries from memory)
	prismAdmin              // spectrum_events job, the admin listener on and /metrics scraped every second
	prismAdminIdle          // spectrum_events job, the admin listener on, nobody scraping
	prismSplice             // spectrum_events job, relay_mode: splice (splice even small messages)
	prismBase               // prism's setting, run by the -base-prism binary (an earlier build, for before/after)
)

// checkBase needs -base-prism.
func checkBase(b *bench) string {
	if b.baseBin == "" {
		return "no -base-prism binary given"
	}
	if _, err := os.Stat(b.baseBin); err != nil {
		return err.Error()
	}
	return ""
}

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
		port, err := proc.FreePort()
		if err != nil {
			return nil, err
		}
		dir := b.tempDir("prism")
		b.prismLog = ""
		adminPort := 0
		var top, app, jobs string
		spectrum := fmt.Sprintf(`  - name: spectrum
    dataset: spectrum_events
    destination: {type: file, path: %s}
`, filepath.Join(dir, "spectrum.log"))
		bin := b.prismBin
		switch variant {
		case prismSpectrum:
			jobs = spectrum
		case prismBase:
			jobs = spectrum
			bin = b.baseBin
		case prismCopy:
			jobs = spectrum
			app = "    relay_mode: copy\n"
		case prismHTTP, prismHTTPNoSpool:
			recv, err := b.launcher.SpawnAddr(b.loadCPU, "receiver", b.self, "receiver")
			if err != nil {
				return nil, err
			}
			b.stopExtra = recv.Stop
			jobs = fmt.Sprintf(`  - name: spectrum
    dataset: spectrum_events
    destination: {type: http, url: "http://%s/logs"}
`, recv.Addr)
			if variant == prismHTTP {
				jobs += fmt.Sprintf("    spool: {dir: %s}\n", filepath.Join(dir, "spool"))
			}
		case prismAdmin, prismAdminIdle:
			jobs = spectrum
			if adminPort, err = proc.FreePort(); err != nil {
				return nil, err
			}
			top = fmt.Sprintf("admin: {listen: \"127.0.0.1:%d\"}\n", adminPort)
		case prismSplice:
			jobs = spectrum
			app = "    relay_mode: splice\n"
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
		if jobs != "" && b.stopExtra == nil {
			b.prismLog = filepath.Join(dir, "spectrum.log")
		}
		if jobs != "" {
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
		srv, err := b.spawnPort("prism", port, bin, "run", "-config", path)
		stopRecv := b.stopExtra
		b.stopExtra = nil
		if err != nil {
			if stopRecv != nil {
				stopRecv()
			}
			return nil, err
		}
		if stopRecv != nil {
			stopPrism := srv.stop
			srv.stop = func() { stopPrism(); stopRecv() } // prism first: it delivers what it holds
		}
		if variant == prismAdmin {
			sc := startScraper(fmt.Sprintf("127.0.0.1:%d", adminPort))
			stop := srv.stop
			srv.stop = func() {
				fmt.Printf("prism-admin: %s\n", sc.close())
				stop()
			}
		}
		return srv, nil
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

// spawnPort starts a proxy on the proxy CPU that listens on a port we
// chose, and waits until it accepts connections.
func (b *bench) spawnPort(name string, port int, argv ...string) (*server, error) {
	return asServer(b.launcher.SpawnPort(b.proxyCPU, name, port, argv...))
}

// spawnAddr starts a process on the proxy CPU that prints its listen
// address on stdout.
func (b *bench) spawnAddr(name string, argv ...string) (*server, error) {
	return b.spawnAddrOn(b.proxyCPU, name, argv...)
}

func (b *bench) spawnAddrOn(cpu, name string, argv ...string) (*server, error) {
	return asServer(b.launcher.SpawnAddr(cpu, name, argv...))
}

func asServer(p *proc.Process, err error) (*server, error) {
	if err != nil {
		return nil, err
	}
	return &server{addr: p.Addr, pid: p.PID, stop: p.Stop}, nil
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
