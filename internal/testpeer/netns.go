package testpeer

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// netnsEnv names the test a re-run process executes inside its own network
// namespace.
const netnsEnv = "PRISM_TEST_NETNS"

// netnsParallel is the -test.parallel of a re-run in a network namespace.
const netnsParallel = 8

// InNetNS runs the calling top-level test in a network namespace of its
// own, so that it may change what the kernel does on that namespace's
// loopback (sysctls such as net.ipv4.tcp_retries2, iptables rules) without
// touching the machine's. It re-runs the test binary for this one test
// under `unshare -n` and returns false: the caller returns at once, and
// the test passes, fails or skips as the re-run did. In the re-run, with
// the namespace's loopback up, it returns true and the caller goes on.
//
// The re-run runs up to netnsParallel parallel subtests at once, not
// -test.parallel's GOMAXPROCS: a test in a namespace of its own waits on
// the kernel (retransmission timers give up after seconds), not on CPU.
//
// It needs root and unshare(1), ip(8); without them (or where namespaces
// are not allowed) the test is skipped with a message, and fails in CI.
func InNetNS(t *testing.T) bool {
	t.Helper()
	if os.Getenv(netnsEnv) == t.Name() {
		if out, err := exec.Command(Need(t, "ip"), "link", "set", "lo", "up").CombinedOutput(); err != nil {
			t.Fatalf("ip link set lo up in the test's namespace: %v\n%s", err, out)
		}
		return true
	}
	if strings.Contains(t.Name(), "/") {
		t.Fatalf("InNetNS re-runs a top-level test; %s is a subtest", t.Name())
	}
	unshare := Need(t, "unshare")
	Need(t, "ip")
	if os.Geteuid() != 0 {
		skipOrFail(t, "a network namespace needs root (run the tests as root, as CI does)")
	}
	if out, err := exec.Command(unshare, "-n", "true").CombinedOutput(); err != nil {
		skipOrFail(t, fmt.Sprintf("network namespaces are not available here (unshare -n: %v %s)", err, strings.TrimSpace(string(out))))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, unshare, "-n", os.Args[0],
		"-test.run", "^"+regexp.QuoteMeta(t.Name())+"$", "-test.count", "1", "-test.v", "-test.timeout", "170s",
		"-test.parallel", strconv.Itoa(netnsParallel))
	cmd.Env = ReRunEnv(netnsEnv + "=" + t.Name())
	out, err := cmd.CombinedOutput()
	switch {
	case err != nil:
		t.Fatalf("%s in a network namespace: %v\n%s", t.Name(), err, out)
	case strings.Contains(string(out), "--- SKIP: "+t.Name()+" "):
		t.Skipf("skipped in its network namespace:\n%s", out)
	case !strings.Contains(string(out), "--- PASS: "+t.Name()+" "):
		t.Fatalf("%s did not run in its network namespace:\n%s", t.Name(), out)
	}
	t.Logf("ran in a network namespace of its own:\n%s", out)
	return false
}

func skipOrFail(t *testing.T, msg string) {
	t.Helper()
	if InCI() {
		t.Fatal(msg)
	}
	t.Skip(msg)
}
