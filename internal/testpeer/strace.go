package testpeer

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// StraceSplices runs this test binary again under strace, with -test.run
// set to run and env (KEY=value) added to its environment, and counts the
// splice(2) calls that succeeded anywhere in that process: the proof that
// a relay moved bytes in the kernel. It returns the count, the trace and
// the child's verbose output (for failure messages). It skips the test
// when strace is missing (failing under CI=true, as Need does) or may not
// trace here, and fails it when the child fails.
func StraceSplices(t testing.TB, run, env string) (n int, trace, out string) {
	t.Helper()
	strace := Need(t, "strace")
	path := filepath.Join(t.TempDir(), "trace")
	cmd := exec.Command(strace, "-f", "-qq", "-e", "trace=splice", "-o", path,
		os.Args[0], "-test.run="+run, "-test.count=1", "-test.v")
	cmd.Env = ReRunEnv(env)
	b, err := cmd.CombinedOutput()
	if err != nil {
		if strings.Contains(string(b), "ptrace") || strings.Contains(string(b), "Operation not permitted") {
			t.Skipf("strace cannot trace here: %s", b)
		}
		t.Fatalf("helper under strace: %v\n%s", err, b)
	}
	tb, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(tb), "\n") {
		if strings.Contains(line, "splice(") && !strings.Contains(line, "= -1") {
			n++
		}
	}
	return n, string(tb), string(b)
}
