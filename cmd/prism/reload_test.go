package main

// Config reload as an operator does it, against the real binary: while a
// client loop opens connections and UDP sessions without pause and long
// TCP connections and UDP sessions stay open, prism reloads a config that
// adds an app, changes two (TCP and UDP), removes one and rebuilds the log
// jobs; then a file that does not validate. No connection may be refused
// or reset, no datagram lost, every long flow must still move bytes (or,
// for the removed app, end at the drain deadline with its terminal record),
// and every session must have complete records in all three datasets.

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prismproxy/prism/internal/testpeer"
)

type reloadSetup struct {
	tcpOrigin, udpOrigin                 string
	stay, change, gone, added, udpChange string // listen addresses
	dir                                  string
}

func (s *reloadSetup) logPath(ds string) string { return filepath.Join(s.dir, ds+".log") }

// config renders version 1 (stay, change, gone, udp) or version 2 (stay,
// change changed, added, udp changed; gone removed; log jobs changed).
func (s *reloadSetup) config(v int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "node: {colo: TST, id: test-1}\nshutdown: {drain_timeout: 1s}\nlog: {level: info}\napps:\n")
	app := func(id, listen, extra string) {
		fmt.Fprintf(&b, "  - id: %s\n    listen: [\"%s\"]\n    origins: {addresses: [\"%s\"]}\n%s", id, listen, s.tcpOrigin, extra)
	}
	app("stay", s.stay, "")
	// The client loop opens up to 5,000 UDP sessions, all from 127.0.0.1:
	// above the default per-client cap of 1,024, which would drop (count,
	// and log) the datagrams of the rest as it should.
	if v == 1 {
		app("change", s.change, "    max_connections: 1000\n")
		app("gone", s.gone, "")
		fmt.Fprintf(&b, "  - id: udp\n    protocol: udp\n    listen: [\"%s\"]\n    origins: {addresses: [\"%s\"]}\n    udp: {idle_timeout: 30s, max_sessions_per_client: 10000}\n", s.udpChange, s.udpOrigin)
	} else {
		app("change", s.change, "    max_connections: 2000\n    timeouts: {idle: 30m}\n")
		app("added", s.added, "")
		fmt.Fprintf(&b, "  - id: udp\n    protocol: udp\n    listen: [\"%s\"]\n    origins: {addresses: [\"%s\"]}\n    udp: {idle_timeout: 40s, max_sessions_per_client: 10000}\n", s.udpChange, s.udpOrigin)
	}
	interval := "50ms"
	if v == 2 {
		interval = "80ms" // every job changes: a new pipeline takes over
	}
	fmt.Fprintf(&b, "log_jobs:\n")
	for _, ds := range []string{"spectrum_events", "edgeone_l4", "cloudconnexa"} {
		fmt.Fprintf(&b, "  - name: %s\n    dataset: %s\n    batch: {max_interval: %s}\n    destination: {type: file, path: %s}\n", ds, ds, interval, s.logPath(ds))
	}
	return b.String()
}

// longTCP is a connection kept open across the reload.
type longTCP struct {
	c   net.Conn
	app string
}

func (l *longTCP) echo(msg string) error {
	_ = l.c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := l.c.Write([]byte(msg)); err != nil {
		return err
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(l.c, got); err != nil {
		return err
	}
	if string(got) != msg {
		return fmt.Errorf("echo %q, want %q", got, msg)
	}
	return nil
}

func udpRoundTrip(c net.Conn, msg string) error {
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte(msg)); err != nil {
		return err
	}
	buf := make([]byte, 2048)
	n, err := c.Read(buf)
	if err != nil {
		return err
	}
	if string(buf[:n]) != msg {
		return fmt.Errorf("udp echo %q, want %q", buf[:n], msg)
	}
	return nil
}

// clientLoop opens short TCP connections to addrs and UDP sessions to udp,
// round robin, until stop or max sessions, and counts failures of any kind.
type clientLoop struct {
	sessions, failures atomic.Int64
	mu                 sync.Mutex
	errs               []string
	done               chan struct{}
}

func runClientLoop(stop <-chan struct{}, max int, tcp []string, udp string, reserved ...int) *clientLoop {
	cl := &clientLoop{done: make(chan struct{})}
	go func() {
		defer close(cl.done)
		// A UDP session is its client address: a socket that gets the
		// port of an earlier, still open session would be that session.
		usedPorts := map[int]bool{}
		for _, p := range reserved {
			usedPorts[p] = true
		}
		for i := 0; i < max; i++ {
			select {
			case <-stop:
				return
			default:
			}
			var err error
			if i%4 == 3 {
				var c net.Conn
				if c, err = net.Dial("udp", udp); err == nil {
					if p := c.LocalAddr().(*net.UDPAddr).Port; usedPorts[p] {
						c.Close()
						i--
						continue
					} else {
						usedPorts[p] = true
					}
					err = udpRoundTrip(c, fmt.Sprintf("dgram-%d", i))
					c.Close()
				}
			} else {
				addr := tcp[i%len(tcp)]
				var c net.Conn
				if c, err = net.DialTimeout("tcp", addr, 5*time.Second); err == nil {
					l := &longTCP{c: c}
					err = l.echo(fmt.Sprintf("short-%d", i))
					c.Close()
				}
			}
			cl.sessions.Add(1)
			if err != nil {
				cl.failures.Add(1)
				cl.mu.Lock()
				if len(cl.errs) < 10 {
					cl.errs = append(cl.errs, err.Error())
				}
				cl.mu.Unlock()
			}
		}
	}()
	return cl
}

func TestReloadWithoutDroppingAFlow(t *testing.T) {
	s := &reloadSetup{tcpOrigin: testpeer.Echo(t), udpOrigin: testpeer.QuietUDPEcho(t).String(), dir: t.TempDir()}
	for _, p := range []*string{&s.stay, &s.change, &s.gone, &s.added} {
		*p = fmt.Sprintf("127.0.0.1:%d", testpeer.FreePort(t))
	}
	s.udpChange = fmt.Sprintf("127.0.0.1:%d", testpeer.FreeUDPPort(t))
	cfgPath := filepath.Join(s.dir, "prism.yaml")
	if err := os.WriteFile(cfgPath, []byte(s.config(1)), 0o644); err != nil {
		t.Fatal(err)
	}
	pidfile := filepath.Join(s.dir, "prism.pid")
	d := startDaemonArgs(t, []string{"run", "-config", cfgPath, "-pidfile", pidfile},
		"prism started", "config reloaded", "config reload refused", "drain deadline passed")

	// Long flows, opened before the reload.
	var long []*longTCP
	for _, a := range []struct{ app, addr string }{{"stay", s.stay}, {"change", s.change}, {"change", s.change}, {"gone", s.gone}} {
		c, err := net.Dial("tcp", a.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		l := &longTCP{c: c, app: a.app}
		if err := l.echo("before"); err != nil {
			t.Fatalf("long %s connection: %v", a.app, err)
		}
		long = append(long, l)
	}
	longUDP, err := net.Dial("udp", s.udpChange)
	if err != nil {
		t.Fatal(err)
	}
	defer longUDP.Close()
	if err := udpRoundTrip(longUDP, "udp-before"); err != nil {
		t.Fatal(err)
	}

	stop := make(chan struct{})
	loop := runClientLoop(stop, 20000, []string{s.stay, s.change}, s.udpChange, longUDP.LocalAddr().(*net.UDPAddr).Port)
	waitSessions := func(n int64) {
		deadline := time.Now().Add(20 * time.Second)
		for loop.sessions.Load() < n && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitSessions(50)

	// Reload with an app added, two changed, one removed, log jobs changed,
	// through `prism reload` (which validates first, then sends SIGHUP).
	if err := os.WriteFile(cfgPath, []byte(s.config(2)), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, out, stderr := runPrism(t, "reload", "-config", cfgPath, "-pidfile", pidfile); code != 0 {
		t.Fatalf("prism reload: exit %d\n%s%s", code, out, stderr)
	}
	d.wait(t, "config reloaded")
	before := loop.sessions.Load()
	waitSessions(before + 50)

	// The removed app's long connection ends at the drain deadline (1s).
	gone := long[3]
	_ = gone.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := gone.c.Read(make([]byte, 1)); err == nil {
		t.Error("the removed app's connection got data instead of being closed")
	} else if errors.Is(err, os.ErrDeadlineExceeded) {
		t.Error("the removed app's connection is still open 10s after the reload (drain_timeout 1s)")
	}
	d.wait(t, "drain deadline passed")
	if c, err := net.DialTimeout("tcp", s.gone, time.Second); err == nil {
		c.Close()
		t.Error("the removed app still accepts connections")
	}
	// The added app serves.
	added := echoOnce(t, s.added, "added app")
	added.Close()

	// A file that does not validate changes nothing.
	if err := os.WriteFile(cfgPath, []byte(strings.Replace(s.config(2), "protocol: udp", "protocol: sctp", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	d.signal(t, syscall.SIGHUP)
	d.wait(t, "config reload refused")
	waitSessions(loop.sessions.Load() + 50)
	if !strings.Contains(d.output(), cfgPath+":") || !strings.Contains(d.output(), `unknown protocol \"sctp\"`) {
		t.Errorf("the refused reload did not log file:line: key: reason")
	}

	close(stop)
	<-loop.done
	if n := loop.failures.Load(); n != 0 {
		t.Fatalf("%d of %d client sessions failed during the reloads: %v", n, loop.sessions.Load(), loop.errs)
	}
	t.Logf("%d client sessions (TCP and UDP) across the reloads, none failed", loop.sessions.Load())
	for i, l := range long[:3] {
		if err := l.echo(fmt.Sprintf("after-%d", i)); err != nil {
			t.Errorf("long %s connection after the reloads: %v", l.app, err)
		}
	}
	if err := udpRoundTrip(longUDP, "udp-after"); err != nil {
		t.Errorf("long UDP session after the reloads: %v", err)
	}
	for _, l := range long[:3] {
		l.c.Close()
	}
	d.signal(t, syscall.SIGTERM)
	if code := d.exit(t, 30*time.Second); code != 0 {
		t.Fatalf("exit %d", code)
	}

	// Every session's records, complete, in every dataset: the loop's, the
	// four long TCP connections, the long UDP session, the added app's.
	want := int(loop.sessions.Load()) + len(long) + 1 + 1
	checkDatasets(t, s, want)
}

// checkDatasets counts sessions in the three log files: each session has a
// connect and exactly one terminal record (spectrum_events), one final
// record (edgeone_l4, no interval) and a flow-established and a
// client-disconnected (cloudconnexa).
func checkDatasets(t *testing.T, s *reloadSetup, want int) {
	t.Helper()
	spec := readRecords(t, s.logPath("spectrum_events"))
	type sess struct{ connect, terminal int }
	bySock := map[string]*sess{}
	for _, r := range spec {
		k := fmt.Sprint(r["Application"], r["ClientProto"], r["ClientPort"])
		if bySock[k] == nil {
			bySock[k] = &sess{}
		}
		switch r["Event"] {
		case "connect":
			bySock[k].connect++
		case "disconnect":
			bySock[k].terminal++
		default:
			t.Errorf("spectrum record %v %v: want only connect and disconnect", r["Event"], r["Status"])
		}
	}
	complete := 0
	for k, v := range bySock {
		if v.connect == 1 && v.terminal == 1 {
			complete++
		} else if v.connect != v.terminal {
			t.Errorf("spectrum session %s: %d connect, %d terminal records", k, v.connect, v.terminal)
		}
	}
	if len(spec) != 2*want {
		t.Errorf("spectrum_events: %d records, want %d (connect + disconnect for %d sessions; %d complete by client port)", len(spec), 2*want, want, complete)
	}

	eo := readRecords(t, s.logPath("edgeone_l4"))
	ids := map[any]int{}
	for _, r := range eo {
		ids[r["SessionID"]]++
		if r["DisconnetReason"] == "-" {
			t.Errorf("edgeone record without a DisconnetReason (no interval: only final records): %v", r)
		}
	}
	if len(eo) != want || len(ids) != want {
		t.Errorf("edgeone_l4: %d records of %d sessions, want one final record for each of %d", len(eo), len(ids), want)
	}

	cc := readRecords(t, s.logPath("cloudconnexa"))
	flows := map[any][2]int{}
	for _, r := range cc {
		lg, _ := r["log"].(map[string]any)
		id := lg["clientSessionId"]
		f := flows[id]
		switch r["eventName"] {
		case "flow-established":
			f[0]++
		case "client-disconnected":
			f[1]++
		}
		flows[id] = f
	}
	for id, f := range flows {
		if f != [2]int{1, 1} {
			t.Errorf("cloudconnexa session %v: %d flow-established, %d client-disconnected", id, f[0], f[1])
		}
	}
	if len(flows) != want {
		t.Errorf("cloudconnexa: %d sessions, want %d", len(flows), want)
	}
}

// TestShutdownUsesTheReloadedDrainTimeout: a reload through the admin API
// (not only SIGHUP) that changes shutdown.drain_timeout is what the next
// SIGTERM drains for; main once kept the config it started with.
func TestShutdownUsesTheReloadedDrainTimeout(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "prism.yaml")
	adminAddr := "127.0.0.1:" + strconv.Itoa(testpeer.FreePort(t))
	write := func(drain string) {
		cfg := fmt.Sprintf("node: {colo: TST}\nadmin: {listen: %q}\nshutdown: {drain_timeout: %s}\napps:\n  - id: a\n    listen: [\"127.0.0.1:%d\"]\n    origins: {addresses: [%q]}\n",
			adminAddr, drain, testpeer.FreePort(t), testpeer.Echo(t))
		if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("7s")
	d := startDaemon(t, path, "prism started", "shutting down")
	write("3s")
	resp, err := http.Post("http://"+adminAddr+"/api/v1/reload", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("POST /api/v1/reload: %s", resp.Status)
	}
	d.signal(t, syscall.SIGTERM)
	d.wait(t, "shutting down")
	if code := d.exit(t, 15*time.Second); code != 0 {
		t.Fatalf("exit %d", code)
	}
	if out := d.output(); !strings.Contains(out, "drain_timeout=3s") {
		t.Fatalf("shutdown did not use the reloaded drain_timeout 3s:\n%s", out)
	}
}

// TestReloadOfAnotherFileIsRefused: the running prism re-reads the file it
// was started with. `prism reload -c other.yaml` checked other.yaml, said
// "config ok; sent hangup", and the running prism re-read its own file:
// other.yaml's changes never applied and the file it did read went
// unchecked. It is refused now, naming the running file; the same file by
// another path (relative, through a symlink) is accepted.
func TestReloadOfAnotherFileIsRefused(t *testing.T) {
	dir := t.TempDir()
	cfgPath, pidfile := filepath.Join(dir, "prism.yaml"), filepath.Join(dir, "prism.pid")
	yaml := fmt.Sprintf("node: {colo: TST}\napps:\n  - id: a\n    listen: [\"127.0.0.1:0\"]\n    origins: {addresses: [%q]}\n", testpeer.Echo(t))
	other := filepath.Join(dir, "other.yaml")
	for _, p := range []string{cfgPath, other} {
		if err := os.WriteFile(p, []byte(yaml), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	link := filepath.Join(dir, "link.yaml")
	if err := os.Symlink(cfgPath, link); err != nil {
		t.Fatal(err)
	}
	d := startDaemonArgs(t, []string{"run", "-c", cfgPath, "-pidfile", pidfile}, "prism started", "config reloaded")
	code, _, stderr := runPrism(t, "reload", "-c", other, "-pidfile", pidfile)
	if code != 1 || !strings.Contains(stderr, "was started with "+cfgPath) {
		t.Fatalf("reload -c other.yaml: exit %d, stderr %q; want 1 naming %s", code, stderr, cfgPath)
	}
	if code, stdout, stderr := runPrism(t, "reload", "-config="+link, "-pidfile", pidfile); code != 0 {
		t.Fatalf("reload through a symlink to the running file: exit %d\n%s%s", code, stdout, stderr)
	}
	d.wait(t, "config reloaded")
}

// TestSignallingReadsNoFileTheConfigNames: `prism reload` and `prism
// upgrade` check the config, then signal; the running prism reads the
// files the config names, as its own user. They read admin.token_file
// and the ip_firewall list files while loading the config, so a user who
// may signal prism but not read those (a token file 0600 for the prism
// user) got their error and no signal was sent. Here the files are gone
// after the start: both commands still signal (the running prism
// answers), while `prism run` names each file's key and line as before.
func TestSignallingReadsNoFileTheConfigNames(t *testing.T) {
	dir := t.TempDir()
	cfgPath, pidfile := filepath.Join(dir, "prism.yaml"), filepath.Join(dir, "prism.pid")
	token, list := filepath.Join(dir, "admin.token"), filepath.Join(dir, "block.txt")
	for p, content := range map[string]string{token: "0123456789abcdef0123\n", list: "192.0.2.0/24\n"} {
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	yaml := fmt.Sprintf(`node: {colo: TST}
admin: {listen: "127.0.0.1:0", token_file: %q}
apps:
  - id: a
    listen: ["127.0.0.1:0"]
    origins: {addresses: [%q]}
    ip_firewall:
      lists:
        - {action: block, path: %q}
`, token, testpeer.Echo(t), list)
	if err := os.WriteFile(cfgPath, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	d := startDaemonArgs(t, []string{"run", "-c", cfgPath, "-pidfile", pidfile}, "prism started", "config reload refused", "upgrade failed")
	for _, p := range []string{token, list} {
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct{ cmd, answer string }{{"reload", "config reload refused"}, {"upgrade", "upgrade failed"}} {
		code, stdout, stderr := runPrism(t, c.cmd, "-c", cfgPath, "-pidfile", pidfile)
		if code != 0 || !strings.Contains(stdout, "config ok; sent") {
			t.Fatalf("prism %s with the token and list files unreadable: exit %d\n%s%s", c.cmd, code, stdout, stderr)
		}
		d.wait(t, c.answer) // the running prism got the signal (and reads the files itself)
	}
	// prism status needs the token (given here) and nothing else the file
	// names: an unreadable list file does not stop it either.
	m := regexp.MustCompile(`msg="admin listening" addr=(\S+)`).FindStringSubmatch(d.output())
	if m == nil {
		t.Fatal("no admin address in prism's log")
	}
	if code, stdout, stderr := runPrism(t, "status", "-c", cfgPath, "-admin", m[1], "-token", "0123456789abcdef0123"); code != 0 || !strings.Contains(stdout, "a ") {
		t.Fatalf("prism status with the list file unreadable: exit %d\n%s%s", code, stdout, stderr)
	}
	code, _, stderr := runPrism(t, "run", "-c", cfgPath)
	for _, want := range []string{cfgPath + ":2: admin.token_file: ", cfgPath + ":9: apps[0].ip_firewall.lists[0].path: "} {
		if code != 1 || !strings.Contains(stderr, want) {
			t.Errorf("prism run without the files: exit %d, stderr %q; want 1 and %q", code, stderr, want)
		}
	}
}
