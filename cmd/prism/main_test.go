package main

// The prism binary as an operator runs it: built once per test run, then
// validate / version / run exercised through exit statuses, stderr and the
// log files it writes. Signals (SIGTERM, SIGHUP) and prism's own log lines
// are the synchronisation; the log file is polled only where nothing else
// says a batch has been written.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prismproxy/prism/internal/testpeer"
)

// prismBin is the binary built by TestMain; upgradedBin is the same
// command built as version v9.9.9-upgraded, the new executable
// TestUpgradeWithoutAcceptGap installs over a running prism's. Both are
// built at once: built in that test, the second link took seconds on a
// 2-CPU machine while the test's client loop made thousands of sessions
// before the upgrade, all to be checked after it.
var prismBin, upgradedBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "prism-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	prismBin, upgradedBin = filepath.Join(dir, "prism"), filepath.Join(dir, "prism-upgraded")
	if raceBuild() {
		// The race runtime sleeps atexit_sleep_ms (1 s unless GORACE says
		// otherwise) in every process that exits 0, to give goroutines
		// still running a last chance to report: the tests here wait for
		// dozens of prism processes to exit. A race found still fails the
		// process (exit 66, which the tests see); GORACE from the
		// environment comes after, so it can set its own.
		os.Setenv("GORACE", strings.TrimSpace("atexit_sleep_ms=0 "+os.Getenv("GORACE")))
	}
	upgraded := make(chan error, 1)
	go func() { upgraded <- buildPrism(upgradedBin, "-ldflags", "-X main.version=v9.9.9-upgraded") }()
	err = buildPrism(prismBin)
	if uerr := <-upgraded; err == nil {
		err = uerr
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// buildPrism builds this command into out, with the race detector when the
// test binary itself has it (so `go test -race` also checks the daemon's
// signal and shutdown paths), and with the build flags given.
func buildPrism(out string, flags ...string) error {
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	args := append([]string{"build", "-o", out}, flags...)
	if raceBuild() {
		args = append(args, "-race")
	}
	cmd := exec.Command(goBin, append(args, ".")...)
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, b)
	}
	return nil
}

// raceBuild reports whether the test binary has the race detector.
func raceBuild() bool {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "-race" && s.Value == "true" {
				return true
			}
		}
	}
	return false
}

// runPrism runs the binary to completion and returns its exit code, stdout and stderr.
func runPrism(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(prismBin, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return exitCode(t, err), stdout.String(), stderr.String()
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("prism %v did not exit within 30s", args)
	}
	return 0, "", ""
}

func exitCode(t *testing.T, err error) int {
	t.Helper()
	if err == nil {
		return 0
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	t.Fatal(err)
	return -1
}

func TestVersion(t *testing.T) {
	code, out, _ := runPrism(t, "version")
	if code != 0 || !strings.HasPrefix(out, "prism ") {
		t.Fatalf("version: exit %d, %q", code, out)
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{nil, {"frobnicate"}, {"run"}, {"validate", "-config"}} {
		code, _, stderr := runPrism(t, args...)
		if code != 2 || !strings.Contains(stderr, "prism") {
			t.Errorf("prism %v: exit %d (want 2), stderr %q", args, code, stderr)
		}
	}
}

// TestHelpExitsZero: -h, -help and --help of every command print its
// usage to stdout and exit 0 (they exited 2, as for a usage error, with
// the usage on stderr); a bad flag is still a usage error.
func TestHelpExitsZero(t *testing.T) {
	for _, args := range [][]string{{"run", "-h"}, {"validate", "--help"}, {"reload", "-help"}, {"upgrade", "-h"},
		{"status", "-h"}, {"logs", "convert", "-h"}, {"logs", "filter", "--help"}, {"logs", "stats", "-h"}, {"logs", "verify", "-h"}} {
		code, stdout, stderr := runPrism(t, args...)
		if code != 0 || !strings.Contains(stdout, "Usage of prism") || stderr != "" {
			t.Errorf("prism %v: exit %d, stdout %q, stderr %q; want 0 and the usage on stdout", args, code, stdout, stderr)
		}
	}
	for _, args := range [][]string{{"status", "-bogus"}, {"status", "extra"}, {"logs", "convert", "-bogus"}} {
		if code, _, stderr := runPrism(t, args...); code != 2 || stderr == "" {
			t.Errorf("prism %v: exit %d, stderr %q; want 2 and a message", args, code, stderr)
		}
	}
}

// TestStatusUsageHidesTheToken: $PRISM_ADMIN_TOKEN keeps the admin token
// out of the process list; it was the -token flag's default, which the
// usage printed on -h or any mistyped flag.
func TestStatusUsageHidesTheToken(t *testing.T) {
	const secret = "s3cr3t-token-0123456789abcdef"
	t.Setenv("PRISM_ADMIN_TOKEN", secret)
	for _, args := range [][]string{{"status", "-h"}, {"status", "-admn", "x"}} {
		_, stdout, stderr := runPrism(t, args...)
		if strings.Contains(stdout+stderr, secret) {
			t.Errorf("prism %v printed the token:\n%s%s", args, stdout, stderr)
		}
	}
}

// exampleConfig writes examples/prism.yaml, its log files moved from /tmp
// into a directory of the test's own, and returns its path. validate opens
// each log file for writing, and the /tmp/prism-*.log that another user's
// quick start left (root's, say) would be refused: permission denied.
// Everything else is the example as it is.
func exampleConfig(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../../examples/prism.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	yml := strings.ReplaceAll(string(b), "/tmp/prism-", dir+"/prism-")
	if yml == string(b) {
		t.Fatal("examples/prism.yaml writes no /tmp/prism-* file any more: update exampleConfig")
	}
	path := filepath.Join(dir, "prism.yaml")
	if err := os.WriteFile(path, []byte(yml), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestValidateExample(t *testing.T) {
	code, out, stderr := runPrism(t, "validate", "-config", exampleConfig(t))
	if code != 0 || !strings.Contains(out, ": ok (") {
		t.Fatalf("validate examples/prism.yaml: exit %d\nstdout %s\nstderr %s", code, out, stderr)
	}
}

// problemLine is the documented shape of a validation error.
var problemLine = regexp.MustCompile(`^(.+\.yaml):(\d+): (\S+): (.+)$`)

func TestValidateBadConfigs(t *testing.T) {
	for _, tc := range []struct {
		name string
		yaml string
		want []string // "line: key: reason substring", one per expected line
	}{
		{"unknown key", `node: {colo: SJC}
apps:
  - id: a
    lisen: ["127.0.0.1:1"]
    origins: {addresses: ["127.0.0.1:2"]}
`, []string{`4: apps[0].lisen: unknown key "lisen"`}},
		{"several problems, each with its line", `node:
  colo: SJC
apps:
  - id: b
    protocol: sctp
    listen: ["127.0.0.1:1000-1004"]
    origins: {addresses: ["127.0.0.1:2000-2009"]}
log_jobs:
  - name: j
    dataset: spectrum_event
`, []string{
			`5: apps[0].protocol: unknown protocol "sctp"`,
			`6: apps[0].listen[0]: listen range "127.0.0.1:1000-1004" has 5 ports but the origin port range has 10`,
			`10: log_jobs[0].dataset: unknown dataset "spectrum_event"`,
		}},
		{"bad duration", `node: {colo: SJC}
apps:
  - id: a
    listen: ["127.0.0.1:1"]
    origins: {addresses: ["127.0.0.1:2"]}
    timeouts:
      connect: fast
`, []string{`7: apps[0].timeouts`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "bad.yaml")
			if err := os.WriteFile(path, []byte(tc.yaml), 0o644); err != nil {
				t.Fatal(err)
			}
			code, stdout, stderr := runPrism(t, "validate", "-config", path)
			if code != 1 {
				t.Fatalf("exit %d, want 1\nstdout %s\nstderr %s", code, stdout, stderr)
			}
			lines := strings.Split(strings.TrimSpace(stderr), "\n")
			for _, l := range lines {
				m := problemLine.FindStringSubmatch(l)
				if m == nil || m[1] != path {
					t.Errorf("line %q is not %s:LINE: KEY: REASON", l, path)
				}
			}
			for _, w := range tc.want {
				found := false
				for _, l := range lines {
					if strings.HasPrefix(l, path+":"+w) {
						found = true
					}
				}
				if !found {
					t.Errorf("no line %s:%s...\ngot:\n%s", path, w, stderr)
				}
			}
		})
	}
}

// TestValidateWarnsOfUndecidableRules: country or ASN firewall rules with
// no database to decide them are what a running prism warns of at load;
// validate says so too (a warning line with the key, exit 0), where it
// once printed only "ok".
func TestValidateWarnsOfUndecidableRules(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fw.yaml")
	if err := os.WriteFile(path, []byte(`node: {colo: SJC}
apps:
  - id: a
    listen: ["127.0.0.1:1"]
    origins: {addresses: ["127.0.0.1:2"]}
    ip_firewall:
      enabled: true
      rules: [{action: block, country: cn}, {action: block, asn: 64500}]
`), 0o644); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := runPrism(t, "validate", "-config", path)
	if code != 0 || !strings.Contains(stdout, ": ok (") {
		t.Fatalf("exit %d, want 0 and ok\nstdout %s\nstderr %s", code, stdout, stderr)
	}
	for _, want := range []string{"apps[0].ip_firewall: warning: country rules but no geoip.country_db", "apps[0].ip_firewall: warning: ASN rules but no geoip.asn_db"} {
		if !strings.Contains(stderr, path+":6: "+want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
}

// prismProc is a running `prism run`. Its stderr is scanned for prism's own
// log lines, which are the readiness and reload signals.
type prismProc struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error

	mu     sync.Mutex
	stderr bytes.Buffer
	seen   map[string]chan struct{} // message substring → closed when a line contains it
}

func startDaemon(t *testing.T, cfgPath string, waitFor ...string) *prismProc {
	t.Helper()
	return startDaemonArgs(t, []string{"run", "-config", cfgPath}, waitFor...)
}

// startDaemonArgs is startDaemon with the command line given.
func startDaemonArgs(t *testing.T, args []string, waitFor ...string) *prismProc {
	t.Helper()
	return startDaemonBin(t, prismBin, args, waitFor...)
}

// startDaemonBin is startDaemonArgs with the executable given (a copy of
// prismBin that a test replaces, for an upgrade).
func startDaemonBin(t *testing.T, bin string, args []string, waitFor ...string) *prismProc {
	t.Helper()
	d := &prismProc{cmd: exec.Command(bin, args...), done: make(chan struct{}), seen: map[string]chan struct{}{}}
	for _, w := range waitFor {
		d.seen[w] = make(chan struct{})
	}
	pipe, err := d.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	scanned := make(chan struct{})
	go func() {
		defer close(scanned)
		sc := bufio.NewScanner(pipe)
		for sc.Scan() {
			line := sc.Text()
			d.mu.Lock()
			d.stderr.WriteString(line + "\n")
			for w, ch := range d.seen {
				if strings.Contains(line, w) {
					close(ch)
					delete(d.seen, w)
				}
			}
			d.mu.Unlock()
		}
	}()
	go func() {
		<-scanned // Wait closes the pipe: read it to the end first
		d.err = d.cmd.Wait()
		close(d.done)
	}()
	t.Cleanup(func() {
		_ = d.cmd.Process.Kill()
		<-d.done
		if t.Failed() {
			t.Logf("prism stderr:\n%s", d.output())
		}
	})
	d.wait(t, "prism started")
	return d
}

func (d *prismProc) output() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.stderr.String()
}

// wait blocks until prism logged a line containing msg (registered at start).
func (d *prismProc) wait(t *testing.T, msg string) {
	t.Helper()
	d.mu.Lock()
	ch, ok := d.seen[msg]
	d.mu.Unlock()
	if !ok {
		return // already seen
	}
	select {
	case <-ch:
	case <-d.done:
		select {
		case <-ch: // logged just before exiting
		default:
			t.Fatalf("prism exited (%v) before logging %q", d.err, msg)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("prism did not log %q within 20s", msg)
	}
}

func (d *prismProc) signal(t *testing.T, sig os.Signal) {
	t.Helper()
	if err := d.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
}

// exit waits for prism to end and returns its exit code.
func (d *prismProc) exit(t *testing.T, timeout time.Duration) int {
	t.Helper()
	select {
	case <-d.done:
	case <-time.After(timeout):
		t.Fatalf("prism did not exit within %v", timeout)
	}
	return exitCode(t, d.err)
}

// writeRunConfig writes a config with one TCP app in front of origin and a
// spectrum_events job to logPath, and returns the config path and the
// app's listen address.
func writeRunConfig(t *testing.T, origin, logPath, drain string) (string, string) {
	t.Helper()
	listen := "127.0.0.1:" + strconv.Itoa(testpeer.FreePort(t))
	cfg := fmt.Sprintf(`node: {colo: TST, id: test-1}
shutdown: {drain_timeout: %s}
log: {level: info}
apps:
  - id: app
    listen: ["%s"]
    origins: {addresses: ["%s"]}
log_jobs:
  - name: spectrum
    dataset: spectrum_events
    batch: {max_interval: 50ms}
    destination: {type: file, path: %s}
`, drain, listen, origin, logPath)
	path := filepath.Join(t.TempDir(), "prism.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return path, listen
}

// echoOnce sends msg through addr and reads it back, leaving the connection open.
func echoOnce(t *testing.T, addr, msg string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil || string(got) != msg {
		t.Fatalf("echo through prism: %q %v", got, err)
	}
	return c
}

type record map[string]any

// readRecords parses the NDJSON log file.
func readRecords(t *testing.T, path string) []record {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []record
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if l == "" {
			continue
		}
		r := record{}
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		out = append(out, r)
	}
	return out
}

// recordsOf returns the records of the client connection c, in file order.
func recordsOf(recs []record, c net.Conn) []record {
	port := float64(c.LocalAddr().(*net.TCPAddr).Port)
	var out []record
	for _, r := range recs {
		if r["ClientPort"] == port && r["ClientIP"] == "127.0.0.1" {
			out = append(out, r)
		}
	}
	return out
}

// checkSession asserts a connect record then a disconnect record with
// Status 200 and the given byte counts.
func checkSession(t *testing.T, what string, recs []record, bytes int) {
	t.Helper()
	if len(recs) != 2 {
		t.Fatalf("%s: %d records, want connect + disconnect: %v", what, len(recs), recs)
	}
	if recs[0]["Event"] != "connect" || recs[0]["Status"] != float64(0) {
		t.Errorf("%s: first record %v %v, want connect 0", what, recs[0]["Event"], recs[0]["Status"])
	}
	d := recs[1]
	if d["Event"] != "disconnect" || d["Status"] != float64(200) ||
		d["ClientBytes"] != float64(bytes) || d["OriginBytes"] != float64(bytes) {
		t.Errorf("%s: terminal record %v %v bytes %v/%v, want disconnect 200 bytes %d/%d",
			what, d["Event"], d["Status"], d["ClientBytes"], d["OriginBytes"], bytes, bytes)
	}
	if d["Application"] != "app" || d["ColoCode"] != "TST" {
		t.Errorf("%s: Application %v ColoCode %v", what, d["Application"], d["ColoCode"])
	}
}

// TestRunDrainsAndFlushesOnSIGTERM: one connection that ended and one still
// open at SIGTERM. prism exits 0 after the drain timeout, having closed the
// open one, and the log file holds both sessions' connect and terminal
// records (Status 200 for the one closed at the drain deadline).
func TestRunDrainsAndFlushesOnSIGTERM(t *testing.T) {
	origin := testpeer.Echo(t)
	logPath := filepath.Join(t.TempDir(), "spectrum.log")
	cfg, listen := writeRunConfig(t, origin, logPath, "1s")
	d := startDaemon(t, cfg, "prism started", "drain deadline passed")

	done := echoOnce(t, listen, "first")
	done.Close()
	open := echoOnce(t, listen, "second!") // both legs are up: its connect record was emitted

	start := time.Now()
	d.signal(t, syscall.SIGTERM)
	if code := d.exit(t, 20*time.Second); code != 0 {
		t.Fatalf("exit status %d after SIGTERM, want 0", code)
	}
	if took := time.Since(start); took < time.Second {
		t.Errorf("exited %v after SIGTERM with a connection open, before the 1s drain timeout", took)
	}
	d.wait(t, "drain deadline passed") // the open connection was closed by prism, not by the test
	// The connection open at SIGTERM was closed by prism.
	_ = open.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := open.Read(make([]byte, 1)); err == nil {
		t.Error("the connection open at SIGTERM is still open after prism exited")
	}

	recs := readRecords(t, logPath)
	checkSession(t, "connection closed before SIGTERM", recordsOf(recs, done), len("first"))
	checkSession(t, "connection open at SIGTERM", recordsOf(recs, open), len("second!"))
	if len(recs) != 4 {
		t.Errorf("%d records in the log, want 4", len(recs))
	}
}

// TestRunSIGHUPReopensLogFile: after the log file is moved away (as
// logrotate does) and prism gets SIGHUP, new records go to a new file at
// the configured path; the moved file keeps the old ones.
func TestRunSIGHUPReopensLogFile(t *testing.T) {
	origin := testpeer.Echo(t)
	logPath := filepath.Join(t.TempDir(), "spectrum.log")
	cfg, listen := writeRunConfig(t, origin, logPath, "5s")
	d := startDaemon(t, cfg, "prism started", "SIGHUP: log files reopened")

	before := echoOnce(t, listen, "before")
	before.Close()
	// Nothing signals that a batch reached the file: poll it, bounded.
	deadline := time.Now().Add(10 * time.Second)
	for {
		if b, err := os.ReadFile(logPath); err == nil && bytes.Count(b, []byte("\n")) >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the first connection's records did not reach the log file within 10s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	rotated := logPath + ".1"
	if err := os.Rename(logPath, rotated); err != nil {
		t.Fatal(err)
	}
	d.signal(t, syscall.SIGHUP)
	d.wait(t, "SIGHUP: log files reopened")

	after := echoOnce(t, listen, "after!")
	after.Close()
	d.signal(t, syscall.SIGTERM)
	if code := d.exit(t, 20*time.Second); code != 0 {
		t.Fatalf("exit status %d, want 0", code)
	}

	old, cur := readRecords(t, rotated), readRecords(t, logPath)
	checkSession(t, "rotated file, connection before SIGHUP", recordsOf(old, before), len("before"))
	checkSession(t, "new file, connection after SIGHUP", recordsOf(cur, after), len("after!"))
	if len(old) != 2 || len(cur) != 2 {
		t.Errorf("rotated file has %d records, new file %d; want 2 and 2", len(old), len(cur))
	}
}
