package main

// Binary upgrade against the real binary: prism runs from a copy of the
// binary, the test builds a new version over that path, and `prism
// upgrade` (SIGUSR2) makes the running process start it with the listening
// sockets. A client loop of TCP connections and UDP sessions never sees a
// refusal or a lost datagram, a long TCP connection of the old process
// still moves bytes until the test closes it, the old process then exits 0,
// and every session's records are complete in all three datasets.

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prismproxy/prism/internal/sink/sinktest"
	"github.com/prismproxy/prism/internal/testpeer"
)

// procLog reads the stderr of prism and of every process it starts (they
// share the pipe) and waits for lines.
type procLog struct {
	mu    sync.Mutex
	lines []string
	cond  *sync.Cond
}

func newProcLog(t *testing.T) (*procLog, *os.File) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	pl := &procLog{}
	pl.cond = sync.NewCond(&pl.mu)
	go func() {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			pl.mu.Lock()
			pl.lines = append(pl.lines, sc.Text())
			pl.cond.Broadcast()
			pl.mu.Unlock()
		}
		r.Close()
	}()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("prism stderr:\n%s", pl.text())
		}
	})
	return pl, w
}

func (pl *procLog) text() string {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	return strings.Join(pl.lines, "\n")
}

// wait returns the first line matching re, failing after timeout.
func (pl *procLog) wait(t *testing.T, re string, timeout time.Duration) string {
	t.Helper()
	return pl.waitN(t, re, 1, timeout)
}

// waitN returns the nth line matching re, failing after timeout.
func (pl *procLog) waitN(t *testing.T, re string, nth int, timeout time.Duration) string {
	t.Helper()
	rx := regexp.MustCompile(re)
	deadline := time.Now().Add(timeout)
	timer := time.AfterFunc(timeout, func() { pl.mu.Lock(); pl.cond.Broadcast(); pl.mu.Unlock() })
	defer timer.Stop()
	pl.mu.Lock()
	defer pl.mu.Unlock()
	for {
		seen := 0
		for _, l := range pl.lines {
			if rx.MatchString(l) {
				if seen++; seen == nth {
					return l
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no log line %d matching %q within %v", nth, re, timeout)
		}
		pl.cond.Wait()
	}
}

func TestUpgradeWithoutAcceptGap(t *testing.T) {
	s := &reloadSetup{tcpOrigin: testpeer.Echo(t), udpOrigin: testpeer.QuietUDPEcho(t).String(), dir: t.TempDir()}
	s.stay = fmt.Sprintf("127.0.0.1:%d", testpeer.FreePort(t))
	s.udpChange = fmt.Sprintf("127.0.0.1:%d", testpeer.FreeUDPPort(t))
	adminAddr := fmt.Sprintf("127.0.0.1:%d", testpeer.FreePort(t))
	var b strings.Builder
	fmt.Fprintf(&b, "node: {colo: TST, id: test-1}\nshutdown: {drain_timeout: 20s}\nadmin: {listen: \"%s\"}\napps:\n", adminAddr)
	fmt.Fprintf(&b, "  - id: web\n    listen: [\"%s\"]\n    origins: {addresses: [\"%s\"]}\n", s.stay, s.tcpOrigin)
	// Above the default per-client cap of 1,024 UDP sessions: the client loop, all from 127.0.0.1, can open more within an idle timeout.
	fmt.Fprintf(&b, "  - id: udp\n    protocol: udp\n    listen: [\"%s\"]\n    origins: {addresses: [\"%s\"]}\n    udp: {idle_timeout: 1s, sockets: 2, max_sessions_per_client: 10000}\n", s.udpChange, s.udpOrigin)
	fmt.Fprintf(&b, "log_jobs:\n")
	for _, ds := range []string{"spectrum_events", "edgeone_l4", "cloudconnexa"} {
		fmt.Fprintf(&b, "  - name: %s\n    dataset: %s\n    batch: {max_interval: 50ms}\n    destination: {type: file, path: %s}\n", ds, ds, s.logPath(ds))
	}
	// A spooled job too: the new process takes its spool over once the old
	// one flushed into it and exited.
	recv := sinktest.NewReceiver(t)
	fmt.Fprintf(&b, "  - name: spooled\n    dataset: spectrum_events\n    batch: {max_interval: 50ms}\n    destination: {type: http, url: \"http://127.0.0.1:%s/\", retry: {initial: 50ms, max: 500ms}}\n    spool: {dir: %s}\n",
		recv.Port(), filepath.Join(s.dir, "spool"))
	cfgPath := filepath.Join(s.dir, "prism.yaml")
	if err := os.WriteFile(cfgPath, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(s.dir, "prism")
	if data, err := os.ReadFile(prismBin); err != nil || os.WriteFile(bin, data, 0o755) != nil {
		t.Fatalf("copy binary: %v", err)
	}
	pidfile := filepath.Join(s.dir, "prism.pid")
	logs, w := newProcLog(t)
	old := exec.Command(bin, "run", "-c", cfgPath, "-pidfile", pidfile)
	old.Stderr, old.Stdout = w, w
	if err := old.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close() // the processes hold it
	oldDone := make(chan error, 1)
	go func() { oldDone <- old.Wait() }()
	t.Cleanup(func() {
		_ = old.Process.Kill()
		if b, err := os.ReadFile(pidfile); err == nil {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid != old.Process.Pid {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})
	logs.wait(t, fmt.Sprintf(`msg="prism started".*pid=%d`, old.Process.Pid), 20*time.Second)

	longC := echoOnce(t, s.stay, "before")
	long := &longTCP{c: longC, app: "web"}
	longUDP := dialUDP(t, s.udpChange)
	if err := udpRoundTrip(longUDP, "udp-before"); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	loop := runClientLoop(stop, 20000, []string{s.stay}, s.udpChange, longUDP.LocalAddr().(*net.UDPAddr).Port)
	waitLoop(loop, 50)

	// The new version (built by TestMain) goes where the old binary was,
	// as an install does.
	next := bin + ".new"
	if data, err := os.ReadFile(upgradedBin); err != nil || os.WriteFile(next, data, 0o755) != nil {
		t.Fatalf("copy the new version: %v", err)
	}
	if err := os.Rename(next, bin); err != nil {
		t.Fatal(err)
	}
	if code, out, stderr := runPrism(t, "upgrade", "-config", cfgPath, "-pidfile", pidfile); code != 0 {
		t.Fatalf("prism upgrade: exit %d\n%s%s", code, out, stderr)
	}
	started := logs.wait(t, `msg="prism started" version="v9\.9\.9-upgraded.*inherited_sockets=4`, 60*time.Second)
	logs.wait(t, `upgrade: new process ready`, 20*time.Second)
	newPid := regexp.MustCompile(`pid=(\d+)`).FindStringSubmatch(started)[1]
	// The admin listener moved too: the new version answers on it.
	if body := httpGet(t, "http://"+adminAddr+"/metrics"); !strings.Contains(body, `prism_build_info{version="v9.9.9-upgraded`) {
		t.Errorf("admin listener after the upgrade:\n%s", body[:min(len(body), 500)])
	}
	waitLoop(loop, loop.sessions.Load()+100)

	// The old process's connection still moves bytes; the UDP session's
	// next datagram reaches the new process.
	if err := long.echo("after the upgrade"); err != nil {
		t.Errorf("long connection of the old process after the upgrade: %v", err)
	}
	if err := udpRoundTrip(longUDP, "udp-after"); err != nil {
		t.Errorf("UDP after the upgrade: %v", err)
	}
	select {
	case err := <-oldDone:
		t.Fatalf("the old process exited (%v) while its connection was open", err)
	default:
	}
	longC.Close()
	select {
	case err := <-oldDone:
		if err != nil {
			t.Fatalf("old process: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the old process did not exit within 30s of its last connection ending")
	}
	close(stop)
	<-loop.done
	if n := loop.failures.Load(); n != 0 {
		t.Fatalf("%d of %d client sessions failed across the upgrade: %v", n, loop.sessions.Load(), loop.errs)
	}
	t.Logf("%d client sessions (TCP and UDP) across the upgrade, none failed", loop.sessions.Load())
	if b, _ := os.ReadFile(pidfile); strings.TrimSpace(string(b)) != newPid {
		t.Errorf("pid file holds %q, want the new process %s", b, newPid)
	}
	pid, _ := strconv.Atoi(newPid)
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	logs.wait(t, fmt.Sprintf(`msg=stopped .*pid=%d`, pid), 30*time.Second)

	// The loop's sessions, the long TCP connection, and the long UDP
	// client's two sessions (the old process's, ended by its idle timeout,
	// and the new process's).
	checkDatasets(t, s, int(loop.sessions.Load())+1+2)

	// The spooled job delivered what the spectrum file holds, record for
	// record: nothing of the old process's was lost in the hand-over.
	data, err := os.ReadFile(s.logPath("spectrum_events"))
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Count(string(data), "\n")
	recv.WaitRecords(want, 10*time.Second)
	if got := len(recv.Records()); got != want {
		t.Errorf("the spooled job delivered %d records, the spectrum file holds %d", got, want)
	}
	logs.wait(t, `log job spool: taken over`, time.Second)
}

func httpGet(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func dialUDP(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// waitLoop waits (bounded) until the client loop made n sessions: the
// loop is the clock of these tests.
func waitLoop(l *clientLoop, n int64) {
	deadline := time.Now().Add(30 * time.Second)
	for l.sessions.Load() < n && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
}

// TestUpgradeEchoesEveryDatagram: clients send numbered datagrams through
// prism to a UDP echo, each waiting for its echo before the next (so no
// socket buffer on the way can overflow), while prism upgrades itself
// several times in a row, every process handing its SO_REUSEPORT sockets
// to the next: as many as the next one's udp.sockets, then fewer (the
// kernel goes on hashing clients to every socket of the group, so the new
// process must read the ones beyond its count too), then more. Every
// datagram a client sent must come back: the hand-over may not lose one,
// nor a reply.
func TestUpgradeEchoesEveryDatagram(t *testing.T) {
	const clients = 32
	sockets := []int{4, 4, 2, 6} // the first process's, then each upgrade's
	upgrades := len(sockets) - 1
	origin := testpeer.QuietUDPEcho(t)
	listen := fmt.Sprintf("127.0.0.1:%d", testpeer.FreeUDPPort(t))
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "prism.yaml")
	writeConfig := func(sockets int) {
		cfg := fmt.Sprintf("node: {colo: TST, id: test-1}\nshutdown: {drain_timeout: 20s}\napps:\n"+
			"  - id: udp\n    protocol: udp\n    listen: [\"%s\"]\n    origins: {addresses: [\"%s\"]}\n    udp: {idle_timeout: 1s, sockets: %d, max_sessions_per_client: 10000}\n",
			listen, origin, sockets)
		if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writeConfig(sockets[0])
	pidfile := filepath.Join(dir, "prism.pid")
	logs, w := newProcLog(t)
	first := exec.Command(prismBin, "run", "-c", cfgPath, "-pidfile", pidfile)
	first.Stderr, first.Stdout = w, w
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	firstDone := make(chan error, 1)
	go func() { firstDone <- first.Wait() }()
	pids := []int{first.Process.Pid}
	t.Cleanup(func() {
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	logs.wait(t, fmt.Sprintf(`msg="prism started".*pid=%d`, first.Process.Pid), 20*time.Second)

	// Each client counts its rounds (the clock of this test) and which of
	// its datagrams came back.
	var rounds atomic.Int64
	stop := make(chan struct{})
	stopClients := sync.OnceFunc(func() { close(stop) })
	t.Cleanup(stopClients)
	type result struct {
		sent, lost, late int
		err              error
	}
	results := make(chan result, clients)
	for range clients {
		go func() {
			var r result
			defer func() { results <- r }()
			c, err := net.Dial("udp", listen)
			if err != nil {
				r.err = err
				return
			}
			defer c.Close()
			got := map[int]bool{}
			buf := make([]byte, 64)
			// read takes echoes until seq's came back or the deadline.
			read := func(seq int, deadline time.Time) {
				_ = c.SetReadDeadline(deadline)
				for !got[seq] {
					n, err := c.Read(buf)
					if err != nil {
						return
					}
					var s int
					if _, err := fmt.Sscanf(string(buf[:n]), "dgram-%d", &s); err != nil || s >= r.sent {
						r.err = fmt.Errorf("unexpected echo %q", buf[:n])
						continue
					}
					if s != seq {
						r.late++ // an earlier datagram's echo, after its round ended
					}
					got[s] = true
				}
			}
			for seq := 0; ; seq++ {
				select {
				case <-stop:
					// What is still on its way gets a last chance.
					read(seq-1, time.Now().Add(5*time.Second))
					for i := range r.sent {
						if !got[i] {
							r.lost++
						}
					}
					return
				default:
				}
				if _, err := fmt.Fprintf(c, "dgram-%d", seq); err != nil {
					r.err = err
					return
				}
				r.sent++
				read(seq, time.Now().Add(time.Second))
				rounds.Add(1)
			}
		}()
	}
	waitRounds := func(n int64) {
		deadline := time.Now().Add(30 * time.Second)
		for rounds.Load() < n && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitRounds(10 * clients)
	for i := 1; i <= upgrades; i++ {
		writeConfig(sockets[i])
		if code, out, stderr := runPrism(t, "upgrade", "-config", cfgPath, "-pidfile", pidfile); code != 0 {
			t.Fatalf("prism upgrade: exit %d\n%s%s", code, out, stderr)
		}
		logs.waitN(t, `upgrade: new process ready`, i, 60*time.Second)
		b, err := os.ReadFile(pidfile)
		if err != nil {
			t.Fatal(err)
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil {
			t.Fatal(err)
		}
		pids = append(pids, pid)
		waitRounds(rounds.Load() + 10*clients)
	}
	stopClients()
	var sent, lost, late int
	for range clients {
		r := <-results
		if r.err != nil {
			t.Errorf("client: %v", r.err)
		}
		sent, lost, late = sent+r.sent, lost+r.lost, late+r.late
	}
	if lost > 0 {
		t.Errorf("%d of %d datagrams never came back across %d upgrades (%d came back late)", lost, sent, upgrades, late)
	} else {
		t.Logf("%d datagrams of %d clients across %d upgrades, every one echoed (%d late)", sent, clients, upgrades, late)
	}
	if err := syscall.Kill(pids[len(pids)-1], syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for i, pid := range pids {
		logs.wait(t, fmt.Sprintf(`msg=stopped .*pid=%d`, pid), 30*time.Second)
		if i == 0 {
			if err := <-firstDone; err != nil {
				t.Errorf("first process: %v", err)
			}
		}
	}
	if t.Failed() {
		return
	}
	// Each process's own count of what it could not deliver.
	for _, l := range strings.Split(logs.text(), "\n") {
		if strings.Contains(l, "udp app totals") && strings.Contains(l, "dropped_") {
			t.Errorf("a process dropped datagrams: %s", l)
		}
	}
}

// TestFailedUpgradeKeepsThePidfile: a new executable that cannot start
// (its config now names a port another process holds) once took the pid
// file with it: it wrote its own pid there, removed the file when it
// failed, and the next `prism reload` found no file. The old process,
// still serving, writes its pid back.
func TestFailedUpgradeKeepsThePidfile(t *testing.T) {
	dir := t.TempDir()
	cfgPath, pidfile := filepath.Join(dir, "prism.yaml"), filepath.Join(dir, "prism.pid")
	listen := "127.0.0.1:" + strconv.Itoa(testpeer.FreePort(t))
	origin := testpeer.Echo(t)
	app := func(id, addr string) string {
		return fmt.Sprintf("  - id: %s\n    listen: [%q]\n    origins: {addresses: [%q]}\n", id, addr, origin)
	}
	write := func(apps string) {
		if err := os.WriteFile(cfgPath, []byte("node: {colo: TST}\napps:\n"+apps), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(app("a", listen))
	d := startDaemonArgs(t, []string{"run", "-c", cfgPath, "-pidfile", pidfile}, "prism started", "upgrade failed; still serving")
	b, err := os.ReadFile(pidfile)
	if err != nil {
		t.Fatal(err)
	}
	oldPid := strings.TrimSpace(string(b))
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	write(app("a", listen) + app("b", busy.Addr().String()))
	d.signal(t, syscall.SIGUSR2)
	d.wait(t, "upgrade failed; still serving")
	b, err = os.ReadFile(pidfile)
	if err != nil || strings.TrimSpace(string(b)) != oldPid {
		t.Fatalf("pid file after the failed upgrade: %q, %v; want the old process's %s", b, err, oldPid)
	}
	c := echoOnce(t, listen, "still serving\n")
	c.Close()
}

// TestStopDuringUpgrade: while the old process waited (up to 60 s) for a
// new executable to be ready, it read no signal: a SIGTERM waited for the
// upgrade to time out, and was lost once four other signals had filled the
// channel, leaving prism serving after a stop (under systemd, killed at
// TimeoutStopSec without drain or flush). Now a second SIGUSR2 is answered
// at once, SIGHUP/SIGUSR1 reopen the log files, and SIGTERM kills the
// half-started process, waits for it, and drains as usual.
func TestStopDuringUpgrade(t *testing.T) {
	dir := t.TempDir()
	origin := testpeer.Echo(t)
	logPath := filepath.Join(dir, "spectrum.log")
	cfg, listen := writeRunConfig(t, origin, logPath, "1s")
	bin := filepath.Join(dir, "prism")
	if data, err := os.ReadFile(prismBin); err != nil || os.WriteFile(bin, data, 0o755) != nil {
		t.Fatalf("copy binary: %v", err)
	}
	d := startDaemonBin(t, bin, []string{"run", "-c", cfg}, "prism started", "upgrade: starting the new executable",
		"an upgrade is already in progress", "SIGUSR1: log files reopened", "SIGHUP during an upgrade: log files reopened",
		"half-started child running", "stopping the new process first", "upgrade cancelled", "stopped")
	c := echoOnce(t, listen, "before")
	c.Close()
	// The "new binary" never becomes ready; it notes its pid (exec keeps it).
	childPid := filepath.Join(dir, "child.pid")
	script := fmt.Sprintf("#!/bin/sh\necho $$ > %s\necho half-started child running >&2\nexec sleep 30\n", childPid)
	if err := os.WriteFile(bin+".new", []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(bin+".new", bin); err != nil {
		t.Fatal(err)
	}
	d.signal(t, syscall.SIGUSR2)
	d.wait(t, "half-started child running")
	d.signal(t, syscall.SIGUSR2)
	d.wait(t, "an upgrade is already in progress")
	for range 4 { // as many as the signal channel holds
		d.signal(t, syscall.SIGUSR1)
	}
	d.wait(t, "SIGUSR1: log files reopened")
	d.signal(t, syscall.SIGHUP)
	d.wait(t, "SIGHUP during an upgrade: log files reopened")
	start := time.Now()
	d.signal(t, syscall.SIGTERM)
	if code := d.exit(t, 20*time.Second); code != 0 {
		t.Fatalf("exit status %d after SIGTERM during an upgrade, want 0", code)
	}
	if took := time.Since(start); took > 15*time.Second {
		t.Errorf("SIGTERM during an upgrade took %v to stop prism", took)
	}
	d.wait(t, "stopping the new process first")
	d.wait(t, "upgrade cancelled")
	d.wait(t, "stopped")
	b, err := os.ReadFile(childPid)
	if err != nil {
		t.Fatalf("the new executable did not run: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pid, 0); err != syscall.ESRCH {
		_ = syscall.Kill(pid, syscall.SIGKILL)
		t.Errorf("the half-started process %d outlived the old one (kill 0: %v)", pid, err)
	}
	checkSession(t, "connection before the upgrade", recordsOf(readRecords(t, logPath), c), len("before"))
}

// TestUpgradeDrainReopensLogs: after an upgrade the old process drains
// for up to shutdown.drain_timeout, writing the records of its remaining
// connections, but it stopped reading signals once it handed over: SIGUSR1
// no longer reopened its log files, and those records went to the file
// logrotate had moved away. It also sent STOPPING=1 after naming its
// successor in MAINPID=. Now SIGUSR1 reopens the files during the drain,
// and only the new process says STOPPING=1 (when it stops).
func TestUpgradeDrainReopensLogs(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "notify")
	ln, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	t.Setenv("NOTIFY_SOCKET", sock)
	logPath := filepath.Join(dir, "spectrum.log")
	cfg, listen := writeRunConfig(t, testpeer.Echo(t), logPath, "30s")
	d := startDaemon(t, cfg, "prism started", "new process ready; no longer accepting here, draining",
		"shutting down: no new connections; draining", "draining: log files reopened", "stopped")
	long := echoOnce(t, listen, "long")
	d.signal(t, syscall.SIGUSR2)
	d.wait(t, "new process ready; no longer accepting here, draining")
	// The upgrade logs "new process ready" before its main loop learns the
	// outcome: a signal sent then is still the serving loop's (CI saw
	// "SIGUSR1: log files reopened" once). The drain has begun when it
	// says so; a signal from then on waits for the drain's handler.
	d.wait(t, "shutting down: no new connections; draining")
	m := regexp.MustCompile(`new_pid=(\d+)`).FindStringSubmatch(d.output())
	if m == nil {
		t.Fatal("no new_pid in the upgrade's log line")
	}
	newPid, _ := strconv.Atoi(m[1])
	t.Cleanup(func() { _ = syscall.Kill(newPid, syscall.SIGKILL) })

	if err := os.Rename(logPath, logPath+".1"); err != nil { // logrotate
		t.Fatal(err)
	}
	d.signal(t, syscall.SIGUSR1)
	d.wait(t, "draining: log files reopened")
	long.Close()
	// Drained: its last connection ended. (Its exit status is known once
	// the new process, which shares the stderr pipe, has exited too.)
	d.wait(t, "stopped")
	// Its disconnect is in the reopened file (its connect may be too: it
	// was written in a batch that can be flushed before or after the
	// rename).
	disconnects := 0
	for _, r := range recordsOf(readRecords(t, logPath), long) {
		if r["Event"] == "disconnect" {
			disconnects++
		}
	}
	if disconnects != 1 {
		t.Errorf("%d disconnect records of the connection that ended during the drain in the reopened file, want 1", disconnects)
	}

	// The new process stops: its STOPPING=1 must be the only one.
	if err := syscall.Kill(newPid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	var msgs []string
	buf := make([]byte, 4096)
	for len(msgs) < 50 {
		_ = ln.SetReadDeadline(time.Now().Add(20 * time.Second))
		n, err := ln.Read(buf)
		if err != nil {
			t.Fatalf("notifications %q: %v", msgs, err)
		}
		msgs = append(msgs, string(buf[:n]))
		if strings.HasPrefix(msgs[len(msgs)-1], "STOPPING=1") {
			break
		}
	}
	mainpid, stopping := 0, 0
	for _, msg := range msgs {
		if strings.HasPrefix(msg, "MAINPID=") {
			mainpid++
		}
		if strings.HasPrefix(msg, "STOPPING=1") {
			stopping++
		}
	}
	if mainpid != 1 || stopping != 1 {
		t.Errorf("notifications %q: want MAINPID= then only the new process's STOPPING=1", msgs)
	}
	if code := d.exit(t, 20*time.Second); code != 0 {
		t.Errorf("old process exit %d", code)
	}
}
