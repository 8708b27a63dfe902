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

// TestSpliceUsed proves which system calls move the bytes: the helper
// below relays 4 MiB between two TCP sockets and 4 MiB unix→TCP while
// strace records the splice(2) calls of the whole process. By default the
// relay splices (copying through user space would make none); with
// Options.Copy it makes none.
func TestSpliceUsed(t *testing.T) {
	if os.Getenv("RELAY_SPLICE_HELPER") != "" {
		t.Skip("helper mode")
	}
	strace := testpeer.Need(t, "strace")
	for _, mode := range []string{"splice", "copy"} {
		t.Run(mode, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "trace")
			cmd := exec.Command(strace, "-f", "-qq", "-e", "trace=splice", "-o", out,
				os.Args[0], "-test.run=^TestSpliceHelper$", "-test.count=1")
			cmd.Env = append(os.Environ(), "RELAY_SPLICE_HELPER="+mode)
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
			switch {
			case mode == "splice" && n < 16:
				// 8 MiB through 64 KiB pipes: at least 128 calls in and 128 out (the
				// test asks for 16, which no pipe size up to 1 MiB could miss).
				t.Fatalf("%d successful splice calls for 8 MiB relayed, want >= 16:\n%.2000s", n, trace)
			case mode == "copy" && n != 0:
				t.Fatalf("copy mode made %d successful splice calls, want 0:\n%.2000s", n, trace)
			}
		})
	}
}

// TestSpliceHelper runs only under TestSpliceUsed.
func TestSpliceHelper(t *testing.T) {
	mode := os.Getenv("RELAY_SPLICE_HELPER")
	if mode == "" {
		t.Skip("run by TestSpliceUsed under strace")
	}
	for _, kind := range []legKind{legTCP, legUnix} {
		g := newRig(t, kind, legTCP, Options{Copy: mode == "copy"})
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
