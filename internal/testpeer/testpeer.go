// Package testpeer finds and runs the real programs that integration tests
// talk to (HAProxy, nginx, openssl, dnsmasq, dig, strace), with ready-made
// nginx origins (stream, HTTPS) in nginx.go, an openssl s_server, a dnsmasq
// in dnsmasq.go and a splice(2) count under strace in strace.go. A test
// that needs a peer which is not installed is skipped with a message saying
// what to install; in CI (CI=true) it fails instead, so a missing install
// step cannot turn a red run green. Where no program is needed, or none
// exists, it also runs small Go origins on loopback (TCP echo and sink,
// unix echo, UDP echo) in origin.go.
package testpeer

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// InCI reports whether the tests run under CI, where missing peers are errors.
func InCI() bool { return os.Getenv("CI") == "true" }

// Need returns the path of program, or skips the test (fails it in CI).
// The program is looked up in PATH and in /usr/sbin and /sbin, where
// Debian installs haproxy, nginx and dnsmasq.
func Need(t testing.TB, program string) string {
	t.Helper()
	if p, err := exec.LookPath(program); err == nil {
		return p
	}
	for _, dir := range []string{"/usr/sbin", "/sbin", "/usr/local/sbin"} {
		p := filepath.Join(dir, program)
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p
		}
	}
	msg := fmt.Sprintf("%s is not installed; install it (see README: the test command installs every peer)", program)
	if InCI() {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// NeedFile returns path if it exists, else skips (fails in CI).
func NeedFile(t testing.TB, path, what string) string {
	t.Helper()
	if _, err := os.Stat(path); err == nil {
		return path
	}
	msg := fmt.Sprintf("%s (%s) is missing", what, path)
	if InCI() {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
// Prefer passing a listener you already hold; use this only for programs
// that must bind the port themselves.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// FreeUDPPort is FreePort for UDP.
func FreeUDPPort(t testing.TB) int {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

// Process is a peer program started for one test.
type Process struct {
	cmd    *exec.Cmd
	mu     sync.Mutex
	output bytes.Buffer
	done   chan struct{}
	err    error
}

type lockedWriter struct{ p *Process }

func (w lockedWriter) Write(b []byte) (int, error) {
	w.p.mu.Lock()
	defer w.p.mu.Unlock()
	return w.p.output.Write(b)
}

// Start runs program with args until the test ends. Its output is kept and
// printed if the test fails.
func Start(t testing.TB, program string, args ...string) *Process {
	t.Helper()
	p := &Process{cmd: exec.Command(program, args...), done: make(chan struct{})}
	p.cmd.Stdout = lockedWriter{p}
	p.cmd.Stderr = lockedWriter{p}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", program, err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("%s output:\n%s", filepath.Base(program), p.Output())
		}
	})
	return p
}

// Output returns what the process printed so far.
func (p *Process) Output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.output.String()
}

// Exited reports whether the process has ended, and how.
func (p *Process) Exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.err
	default:
		return false, nil
	}
}

// WaitTCP waits until addr accepts TCP connections, the process dies, or
// timeout passes. Polling a port is the only readiness signal these
// programs give when they run in the foreground.
func (p *Process) WaitTCP(t testing.TB, addr string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if exited, err := p.Exited(); exited {
			t.Fatalf("%s exited before listening on %s: %v\n%s", p.cmd.Path, addr, err, p.Output())
		}
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not listening on %s after %v: %v\n%s", p.cmd.Path, addr, timeout, err, p.Output())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Run runs a program to completion with a timeout and returns its combined output.
func Run(t testing.TB, timeout time.Duration, program string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, program, args...).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// WriteFile writes content to name inside a fresh temp dir of the test and returns the path.
func WriteFile(t testing.TB, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}
