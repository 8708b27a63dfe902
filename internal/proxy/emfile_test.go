package proxy_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/prismproxy/prism/internal/testpeer"
)

// TestAcceptAtFDLimit runs a proxy in a child process (this test binary)
// whose descriptor limit is small, and holds more connections than it can
// take while closing one now and then. Every close let one accept through,
// which reset the backoff: about 190 "accept failed" lines a second. Now
// the backoff holds while errors continue and the line is rate-limited
// with a count.
func TestAcceptAtFDLimit(t *testing.T) {
	if os.Getenv("PRISM_EMFILE_CHILD") != "" {
		emfileChild(t)
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestAcceptAtFDLimit$", "-test.count=1", "-test.v")
	cmd.Env = testpeer.ReRunEnv("PRISM_EMFILE_CHILD=1")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	sc := bufio.NewScanner(stdout)
	var addr string
	var out []string
	for sc.Scan() {
		out = append(out, sc.Text())
		if a, ok := strings.CutPrefix(sc.Text(), "ADDR="); ok {
			addr = a
			break
		}
	}
	if addr == "" {
		t.Fatalf("child gave no address:\n%s\n%s", strings.Join(out, "\n"), stderr.String())
	}
	// 60 connections against a limit of 48 descriptors, then for 3 s close
	// one every 50 ms and open another.
	var conns []net.Conn
	for range 60 {
		c, err := net.DialTimeout("tcp", addr, 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end); {
		conns[0].Close()
		conns = conns[1:]
		time.Sleep(50 * time.Millisecond)
		if c, err := net.DialTimeout("tcp", addr, 2*time.Second); err == nil {
			conns = append(conns, c)
		}
	}
	for _, c := range conns {
		c.Close()
	}
	stdin.Close() // the child shuts down
	lines, failures := 0, 0
	for sc.Scan() {
		l := sc.Text()
		if strings.Contains(l, "accept failed") {
			lines++
			var n int
			if i := strings.Index(l, "failures="); i >= 0 {
				fmt.Sscanf(l[i:], "failures=%d", &n)
			}
			failures += n
		}
		out = append(out, l)
	}
	_ = cmd.Wait()
	if lines == 0 || failures < lines {
		t.Fatalf("no accept failure reported (%d lines, %d failures): the limit was not reached\n%s\n%s", lines, failures, strings.Join(out, "\n"), stderr.String())
	}
	// 3 s under pressure plus the shutdown line: one line at the first
	// failure, none within acceptLogEvery, one at close for the rest.
	if lines > 3 {
		t.Fatalf("%d accept failure lines in about 3 s, want at most 3\n%s", lines, strings.Join(out, "\n"))
	}
	t.Logf("%d lines for %d failures", lines, failures)
}

func emfileChild(t *testing.T) {
	// The clients send nothing and the app waits for a PROXY header from
	// them, so every accepted connection holds one descriptor and no
	// origin is dialled: the accept is what meets the limit. (With an
	// echo origin in this process the origin's own accept could meet it
	// first, stop for good, and leave the proxy's dials to fail instead:
	// the proxy never saw EMFILE on accept, as CI once showed.)
	logger := slog.New(slog.NewTextHandler(os.Stdout, nil))
	s, _, addr := startProxy(t, appYAML("127.0.0.1:0", `{addresses: ["`+testpeer.ClosedPort(t)+`"]}`,
		`inbound_proxy_protocol: {trusted_cidrs: ["127.0.0.0/8"], header_timeout: 60s}`), withLogger(logger))
	lim := unix.Rlimit{Cur: 48, Max: 48}
	var old unix.Rlimit
	_ = unix.Getrlimit(unix.RLIMIT_NOFILE, &old)
	if old.Max < lim.Max {
		lim.Max = old.Max
	}
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	fmt.Printf("ADDR=%s\n", addr)
	_, _ = io.Copy(io.Discard, os.Stdin) // until the parent closes stdin
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = s.Shutdown(ctx)
}
