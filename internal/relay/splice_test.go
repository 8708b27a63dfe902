package relay

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prismproxy/prism/internal/event"
	"github.com/prismproxy/prism/internal/testpeer"
)

// TestSpliceUsed proves the splice mode (PRISM_RELAY_SPLICE=on; copy mode
// is the default): the helper below relays 4 MiB
// between two TCP sockets and 4 MiB unix→TCP while strace records the
// splice(2) calls of the whole process. Copying through user space would
// make none.
func TestSpliceUsed(t *testing.T) {
	if os.Getenv("RELAY_SPLICE_HELPER") != "" {
		t.Skip("helper mode")
	}
	strace := testpeer.Need(t, "strace")
	out := filepath.Join(t.TempDir(), "trace")
	cmd := exec.Command(strace, "-f", "-qq", "-e", "trace=splice", "-o", out,
		os.Args[0], "-test.run=^TestSpliceHelper$", "-test.count=1")
	cmd.Env = append(os.Environ(), "RELAY_SPLICE_HELPER=1", "PRISM_RELAY_SPLICE=on")
	if b, err := cmd.CombinedOutput(); err != nil {
		if strings.Contains(string(b), "ptrace") || strings.Contains(string(b), "Operation not permitted") {
			t.Skipf("strace cannot trace here: %s", b)
		}
		t.Fatalf("helper under strace: %v\n%s", err, b)
	}
	trace, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, line := range strings.Split(string(trace), "\n") {
		if strings.Contains(line, "splice(") && !strings.Contains(line, "= -1") {
			n++
		}
	}
	// 8 MiB through pipes of at most 1 MiB: at least 8 calls in and 8 out.
	if n < 16 {
		t.Fatalf("%d successful splice calls for 8 MiB relayed, want >= 16:\n%.2000s", n, trace)
	}
	t.Logf("%d successful splice(2) calls for 8 MiB relayed", n)
}

// TestSpliceHelper runs only under TestSpliceUsed.
func TestSpliceHelper(t *testing.T) {
	if os.Getenv("RELAY_SPLICE_HELPER") == "" {
		t.Skip("run by TestSpliceUsed under strace")
	}
	if !useSplice {
		t.Fatal("PRISM_RELAY_SPLICE=on did not select splice mode")
	}
	for _, kind := range []legKind{legTCP, legUnix} {
		g := newRig(t, kind, legTCP, Options{})
		up := randBytes(4 << 20)
		go func() { _, _ = g.client.Write(up); closeWrite(t, g.client) }()
		got, err := io.ReadAll(g.origin)
		if err != nil || !bytes.Equal(got, up) {
			t.Fatalf("%s: origin got %d bytes, err %v", kind, len(got), err)
		}
		_ = g.origin.Close()
		check(t, g.result(t), 200, event.SideClient, event.ReasonPeerClose)
	}
}
