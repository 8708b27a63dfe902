//go:build linux && !portable

package relay

import (
	"bytes"
	"io"
	"net"
	"os"
	"slices"
	"syscall"
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

// TestFillKeepsOneHolder: on the loop path flush moves a chunk out of
// whichever of pipe and buffer the direction holds, so fill must give the
// other one back when the direction changes its way. (It once kept the
// pipe when ModeAuto went back to the buffer after small splices with
// data still queued, and flush then spliced from the empty pipe, read
// that as a full socket and waited for an edge that never came: a bulk
// stream stalled with megabytes queued.)
func TestFillKeepsOneHolder(t *testing.T) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fds[0])
	defer syscall.Close(fds[1])
	c := &fdConn{r: &Relay{opts: Options{Mode: ModeAuto}}}
	d := &c.d[0]
	msg := []byte("small message")

	// Back from splice: the pipe (empty) is still held.
	p, err := getPipe()
	if err != nil {
		t.Fatal(err)
	}
	d.pipe = p
	if _, err := syscall.Write(fds[1], msg); err != nil {
		t.Fatal(err)
	}
	if n, err := c.fill(d, fds[0], false); err != nil || n != len(msg) {
		t.Fatalf("buffered fill: %d, %v", n, err)
	}
	if d.pipe != nil || d.buf == nil {
		t.Fatalf("after a buffered fill: pipe %v, buffer %v; want only the buffer", d.pipe != nil, d.buf != nil)
	}

	// On to splice: the buffer (empty) is still held.
	d.spliceNow = true
	if _, err := syscall.Write(fds[1], msg); err != nil {
		t.Fatal(err)
	}
	if n, err := c.fill(d, fds[0], false); err != nil || n != len(msg) {
		t.Fatalf("splice fill: %d, %v", n, err)
	}
	if d.pipe == nil || d.buf != nil {
		t.Fatalf("after a splice fill: pipe %v, buffer %v; want only the pipe", d.pipe != nil, d.buf != nil)
	}
	d.pending = int32(len(msg))
	c.discard(d)
}

// TestIdleHeap: on the loop path idle timeouts come from each loop's
// heap, not a timer per relay. Relays with different timeouts end by
// timeout, no sooner than their own; relays stopped first end by Stop; and
// no relay stays in a heap once it ended (a finished relay left there
// would keep its memory until its deadline).
func TestIdleHeap(t *testing.T) {
	if getLoop(0) == nil {
		t.Skip("no event loop (PRISM_RELAY_POLLER=off)")
	}
	const n = 20
	rigs := make([]*rig, n)
	starts := make([]time.Time, n)
	for i := range rigs {
		starts[i] = time.Now()
		rigs[i] = newRig(t, legTCP, legTCP, Options{IdleTimeout: time.Duration(100+20*i) * time.Millisecond})
	}
	for i := 0; i < n; i += 2 {
		rigs[i].relay.Stop()
	}
	for i, g := range rigs {
		res := g.result(t)
		if i%2 == 0 {
			check(t, res, event.StatusOK, event.SideProxy, event.ReasonClosed)
			continue
		}
		check(t, res, event.StatusOK, event.SideProxy, event.ReasonTimeout)
		if el, idle := time.Since(starts[i]), g.relay.opts.IdleTimeout; el < idle {
			t.Errorf("relay %d ended after %v, before its idle timeout %v", i, el, idle)
		}
	}
	for _, l := range theLoops.ls {
		l.mu.Lock()
		left := len(l.idle)
		l.mu.Unlock()
		if left != 0 {
			t.Errorf("%d ended relays still in a loop's idle heap", left)
		}
	}
}

// TestEndedRelayLeavesKeepAliveLists: a relay that ends before the sweep
// that would set its keepalive is no longer referenced by the loop's
// keepalive lists, whether it ended in the interval it started in or in
// the next one. (The lists once held every relay of the last one to two
// sweep intervals: at 10,000 short connections a second, 15,000 ended
// sessions and 16 MB of heap that every GC cycle marked.)
func TestEndedRelayLeavesKeepAliveLists(t *testing.T) {
	if getLoop(0) == nil {
		t.Skip("no event loop (PRISM_RELAY_POLLER=off)")
	}
	ka := net.KeepAliveConfig{Enable: true}
	// listed reports which of the loop's lists hold c.
	listed := func(c *fdConn) (inNew, inOld bool) {
		c.lp.mu.Lock()
		defer c.lp.mu.Unlock()
		return slices.Contains(c.lp.ka, c), slices.Contains(c.lp.kaOld, c)
	}
	onLoop := func(g *rig) *fdConn {
		t.Helper()
		if _, err := g.client.Write([]byte("x")); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(g.origin, make([]byte, 1)); err != nil {
			t.Fatal(err)
		}
		if g.relay.fl == nil {
			t.Skip("the relay is not on the loop path")
		}
		return g.relay.fl
	}

	young := newRig(t, legTCP, legTCP, Options{KeepAlive: ka})
	c := onLoop(young)
	if inNew, _ := listed(c); !inNew {
		t.Fatal("a relay started with keepalive is not in the loop's list")
	}
	young.relay.Stop()
	young.result(t)
	if inNew, inOld := listed(c); inNew || inOld {
		t.Errorf("ended relay still listed (this interval's list %v, the previous one's %v)", inNew, inOld)
	}

	// One interval on (the next sweep would set its keepalive): the
	// test sweeps itself, and tries again when the loop's own sweep came
	// between the start and the test's, which moves the relay on twice.
	var old *rig
	for range 5 {
		g := newRig(t, legTCP, legTCP, Options{KeepAlive: ka})
		c = onLoop(g)
		c.lp.sweep()
		if _, inOld := listed(c); inOld {
			old = g
			break
		}
		g.relay.Stop()
		g.result(t)
	}
	if old == nil {
		t.Fatal("a relay started with keepalive is not in the previous interval's list after a sweep")
	}
	old.relay.Stop()
	old.result(t)
	if inNew, inOld := listed(c); inNew || inOld {
		t.Errorf("relay that ended a sweep interval on still listed (this interval's list %v, the previous one's %v)", inNew, inOld)
	}
}
