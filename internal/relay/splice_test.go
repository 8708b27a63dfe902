//go:build linux && !portable

package relay

import (
	"bytes"
	"io"
	"os"
	"testing"
	"time"

	"github.com/prismproxy/prism/internal/event"
	"github.com/prismproxy/prism/internal/testpeer"
)

// TestSpliceUsed proves which system calls move the bytes: the helper
// below relays 4 MiB between two TCP sockets and 4 MiB unix→TCP while
// strace records the splice(2) calls of the whole process. ModeSplice and
// ModeAuto splice such bulk (copying through user space would make none);
// ModeCopy makes none. In ModeAuto a direction that moves small messages
// (auto-small: a ping-pong of 200-byte messages, then the same after a
// quiet period long enough to park) stays on the buffered path: no
// splice at all.
func TestSpliceUsed(t *testing.T) {
	if os.Getenv("RELAY_SPLICE_HELPER") != "" {
		t.Skip("helper mode")
	}
	testpeer.Need(t, "strace")
	if getLoop(0) == nil {
		t.Skip("no event loop (PRISM_RELAY_POLLER=off): every relay reads through net.Conn, nothing splices")
	}
	for _, mode := range []string{"splice", "copy", "auto", "auto-small"} {
		t.Run(mode, func(t *testing.T) {
			n, trace, _ := testpeer.StraceSplices(t, "^TestSpliceHelper$", "RELAY_SPLICE_HELPER="+mode)
			switch {
			case (mode == "splice" || mode == "auto") && n < 16:
				// 8 MiB through 64 KiB pipes: at least 128 calls in and 128 out (the
				// test asks for 16, which no pipe size up to 1 MiB could miss).
				t.Fatalf("%d successful splice calls for 8 MiB relayed, want >= 16:\n%.2000s", n, trace)
			case (mode == "copy" || mode == "auto-small") && n != 0:
				t.Fatalf("%s made %d successful splice calls, want 0:\n%.2000s", mode, n, trace)
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
	if mode == "auto-small" {
		for _, kind := range []legKind{legTCP, legUnix} {
			g := newRig(t, kind, legTCP, Options{})
			pingPong(t, g, 200, 200)
			time.Sleep(quietAfter * 2) // the scenario: a quiet spell
			pingPong(t, g, 20, 200)
			_ = g.client.Close()
			_ = g.origin.Close()
			g.result(t)
		}
		return
	}
	for _, kind := range []legKind{legTCP, legUnix} {
		g := newRig(t, kind, legTCP, Options{Mode: map[string]Mode{"splice": ModeSplice, "copy": ModeCopy, "auto": ModeAuto}[mode]})
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

// pingPong sends n messages of size bytes from the client, each echoed
// by the origin and read back before the next one.
func pingPong(t testing.TB, g *rig, n, size int) {
	t.Helper()
	msg, got := randBytes(size), make([]byte, size)
	for i := 0; i < n; i++ {
		if _, err := g.client.Write(msg); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(g.origin, got); err != nil {
			t.Fatalf("origin read %d: %v", i, err)
		}
		if _, err := g.origin.Write(got); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(g.client, got); err != nil {
			t.Fatalf("client read %d: %v", i, err)
		}
		if !bytes.Equal(got, msg) {
			t.Fatalf("message %d came back changed", i)
		}
	}
}
