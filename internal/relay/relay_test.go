//go:build linux

package relay

import (
	"bytes"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/prismproxy/prism/internal/event"
	"github.com/prismproxy/prism/internal/tlstest"
)

// tcpPair returns two ends of a loopback TCP connection.
func tcpPair(t testing.TB) (a, b net.Conn) {
	t.Helper()
	return streamPair(t, "tcp", "127.0.0.1:0")
}

// unixPair returns two ends of a unix stream socket connection.
func unixPair(t testing.TB) (a, b net.Conn) {
	t.Helper()
	return streamPair(t, "unix", filepath.Join(t.TempDir(), "s"))
}

func streamPair(t testing.TB, network, addr string) (a, b net.Conn) {
	t.Helper()
	l, err := net.Listen(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	type res struct {
		c   net.Conn
		err error
	}
	ch := make(chan res, 1)
	go func() { c, err := l.Accept(); ch <- res{c, err} }()
	a, err = net.Dial(network, l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	r := <-ch
	if r.err != nil {
		t.Fatal(r.err)
	}
	t.Cleanup(func() { a.Close(); r.c.Close() })
	return a, r.c
}

// rig is a relay under test: the test plays client and origin.
type rig struct {
	client net.Conn // the test's client end
	origin net.Conn // the test's origin end
	relay  *Relay
	live   *event.Live
	done   chan Result
}

type legKind string

const (
	legTCP  legKind = "tcp"
	legUnix legKind = "unix"
	legTLS  legKind = "tls" // client leg only: TLS terminated by the relay's side
)

func newRig(t testing.TB, cl, or legKind, opts Options) *rig {
	t.Helper()
	var tc, rc, ro, to net.Conn
	switch cl {
	case legUnix:
		tc, rc = unixPair(t)
	case legTLS:
		tc, rc = tlsPair(t)
	default:
		tc, rc = tcpPair(t)
	}
	if or == legUnix {
		ro, to = unixPair(t)
	} else {
		ro, to = tcpPair(t)
	}
	live := event.NewLive(event.New("test", event.NewID(time.Now())))
	if opts.Live == nil {
		opts.Live = live
	}
	g := &rig{client: tc, origin: to, live: opts.Live, done: make(chan Result, 1)}
	g.relay = New(rc, ro, opts)
	go func() { g.done <- g.relay.Run() }()
	return g
}

// result waits (bounded) for the relay to end.
func (g *rig) result(t testing.TB) Result {
	t.Helper()
	select {
	case r := <-g.done:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("relay did not end within 10s")
	}
	return Result{}
}

func check(t testing.TB, got Result, status int, side event.Side, reason event.Reason) {
	t.Helper()
	if got.Status != status || got.Side != side || got.Reason != reason {
		t.Fatalf("result = status %d side %v reason %v (%q), want %d %v %v", got.Status, got.Side, got.Reason, got.Detail, status, side, reason)
	}
}

func randBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

func closeWrite(t testing.TB, c net.Conn) {
	t.Helper()
	if err := c.(interface{ CloseWrite() error }).CloseWrite(); err != nil {
		t.Fatal(err)
	}
}

// TestEchoCountsHalfClose sends a payload through the relay to an origin
// that reads until EOF (which it only sees if the client's FIN was
// propagated), then answers with a different payload and closes. The
// client must get every byte back, the counters must be exact, and the
// close is normal with the client as first closer.
func TestEchoCountsHalfClose(t *testing.T) {
	for _, tc := range []struct {
		client, origin legKind
		prefix         int
		size           int
	}{
		{legTCP, legTCP, 0, 3 << 20},
		{legTCP, legTCP, 100, 1},
		{legUnix, legTCP, 0, 1 << 20},
		{legTCP, legUnix, 7, 1 << 20},
		{legTLS, legTCP, 0, 1 << 20},
		{legTLS, legUnix, 5, 100},
	} {
		for _, mode := range allModes {
			t.Run(fmt.Sprintf("%s-%s-prefix%d-%d-%v", tc.client, tc.origin, tc.prefix, tc.size, mode), func(t *testing.T) {
				prefix := randBytes(tc.prefix)
				g := newRig(t, tc.client, tc.origin, Options{ClientPrefix: prefix, Mode: mode})
				up := randBytes(tc.size)
				down := randBytes(tc.size*2 + 3)

				originGot := make(chan []byte, 1)
				go func() {
					b, _ := io.ReadAll(g.origin) // EOF only if the FIN was propagated
					originGot <- b
					_, _ = g.origin.Write(down)
					_ = g.origin.Close()
				}()
				if _, err := g.client.Write(up); err != nil {
					t.Fatal(err)
				}
				closeWrite(t, g.client)
				got, err := io.ReadAll(g.client)
				if err != nil {
					t.Fatal(err)
				}
				if want := append(append([]byte{}, prefix...), up...); !bytes.Equal(<-originGot, want) {
					t.Fatal("origin did not receive the prefix + client bytes intact")
				}
				if !bytes.Equal(got, down) {
					t.Fatalf("client got %d bytes, want %d intact", len(got), len(down))
				}
				res := g.result(t)
				check(t, res, event.StatusOK, event.SideClient, event.ReasonPeerClose)
				if res.ClientBytes != int64(len(prefix)+len(up)) || res.OriginBytes != int64(len(down)) {
					t.Fatalf("bytes client %d origin %d, want %d %d", res.ClientBytes, res.OriginBytes, len(prefix)+len(up), len(down))
				}
				if g.live.ClientBytes.Load() != res.ClientBytes || g.live.OriginBytes.Load() != res.OriginBytes {
					t.Fatalf("live counters %d/%d differ from result %d/%d", g.live.ClientBytes.Load(), g.live.OriginBytes.Load(), res.ClientBytes, res.OriginBytes)
				}
				if tc.origin == legTCP && res.OriginRTT <= 0 {
					t.Errorf("origin RTT %v, want > 0 on TCP", res.OriginRTT)
				}
				if tc.origin == legUnix && res.OriginRTT != 0 {
					t.Errorf("origin RTT %v on a unix socket, want 0", res.OriginRTT)
				}
				if tc.client != legUnix && res.ClientRTT <= 0 {
					t.Errorf("client RTT %v, want > 0 on TCP", res.ClientRTT)
				}
			})
		}
	}
}

// TestOriginClosesFirst: the origin half-closes first; the client still
// streams to it afterwards, and the result names the origin as closer.
func TestOriginClosesFirst(t *testing.T) {
	for _, kind := range []legKind{legTCP, legTLS} {
		t.Run(string(kind), func(t *testing.T) {
			g := newRig(t, kind, legTCP, Options{})
			closeWrite(t, g.origin)
			if b, err := io.ReadAll(g.client); err != nil || len(b) != 0 {
				t.Fatalf("client read %d bytes, err %v; want a clean EOF", len(b), err)
			}
			up := randBytes(2 << 20)
			go func() { _, _ = g.client.Write(up); closeWrite(t, g.client) }()
			got, err := io.ReadAll(g.origin)
			if err != nil || !bytes.Equal(got, up) {
				t.Fatalf("origin got %d bytes (err %v), want %d intact after its own FIN", len(got), err, len(up))
			}
			res := g.result(t)
			check(t, res, event.StatusOK, event.SideOrigin, event.ReasonPeerClose)
			if res.ClientBytes != int64(len(up)) || res.OriginBytes != 0 {
				t.Fatalf("bytes %d/%d", res.ClientBytes, res.OriginBytes)
			}
		})
	}
}

// reset closes c with SO_LINGER 0, so the peer gets an RST.
func reset(t testing.TB, c net.Conn) {
	t.Helper()
	var tcp *net.TCPConn
	switch v := c.(type) {
	case *net.TCPConn:
		tcp = v
	case *tls.Conn:
		tcp = v.NetConn().(*net.TCPConn)
	}
	if err := tcp.SetLinger(0); err != nil {
		t.Fatal(err)
	}
	_ = tcp.Close()
}

func TestReset(t *testing.T) {
	t.Run("origin", func(t *testing.T) {
		g := newRig(t, legTCP, legTCP, Options{})
		reset(t, g.origin)
		check(t, g.result(t), event.StatusOriginReset, event.SideOrigin, event.ReasonPeerError)
	})
	t.Run("client", func(t *testing.T) {
		g := newRig(t, legTCP, legTCP, Options{})
		reset(t, g.client)
		check(t, g.result(t), event.StatusClientReset, event.SideClient, event.ReasonPeerError)
	})
	t.Run("client-tls", func(t *testing.T) {
		g := newRig(t, legTLS, legTCP, Options{})
		reset(t, g.client)
		check(t, g.result(t), event.StatusClientReset, event.SideClient, event.ReasonPeerError)
	})
}

// TestEPIPE: one peer closes completely (FIN, and RST for anything sent
// after); the relay half-closes the other peer, which keeps sending. The
// relay's writes to the closed peer then fail with EPIPE.
func TestEPIPE(t *testing.T) {
	for _, tc := range []struct {
		name   string
		status int
		side   event.Side
	}{
		{"origin", event.StatusOriginPipe, event.SideOrigin},
		{"client", event.StatusClientPipe, event.SideClient},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := newRig(t, legTCP, legTCP, Options{})
			closer, sender := g.origin, g.client
			if tc.side == event.SideClient {
				closer, sender = g.client, g.origin
			}
			_ = closer.Close()
			if _, err := io.ReadAll(sender); err != nil { // the FIN reached the sender
				t.Fatal(err)
			}
			chunk := make([]byte, 1024)
			deadline := time.Now().Add(5 * time.Second)
			for time.Now().Before(deadline) {
				if _, err := sender.Write(chunk); err != nil {
					break // the relay gave up and closed its side
				}
				select {
				case res := <-g.done:
					check(t, res, tc.status, tc.side, event.ReasonPeerError)
					return
				case <-time.After(10 * time.Millisecond):
				}
			}
			check(t, g.result(t), tc.status, tc.side, event.ReasonPeerError)
		})
	}
}

// TestETIMEDOUT makes the kernel give up on a leg: the peer never reads,
// its receive window closes, and TCP_USER_TIMEOUT on the relay's socket
// ends the zero-window probing with ETIMEDOUT.
//
// The kernel reports ETIMEDOUT once, to the first call on the socket; both
// directions use it (one reads, one writes). Now and then (about 1 run in
// 20 here) the reading direction's call consumes it in a way that reads as
// end-of-file and the writing one then sees only EPIPE, so the EPIPE
// status of the same side is accepted too: the side is what must be right.
func TestETIMEDOUT(t *testing.T) {
	for _, tc := range []struct {
		name   string
		status int
		side   event.Side
	}{
		{"origin", event.StatusOriginTimeout, event.SideOrigin},
		{"client", event.StatusClientTimeout, event.SideClient},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc1, rc := tcpPair(t)
			ro, to1 := tcpPair(t)
			stalled, relaySide, sender := to1, ro, tc1
			if tc.side == event.SideClient {
				stalled, relaySide, sender = tc1, rc, to1
			}
			_ = stalled.(*net.TCPConn).SetReadBuffer(4096)
			raw, _ := relaySide.(*net.TCPConn).SyscallConn()
			_ = raw.Control(func(fd uintptr) {
				if err := unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT, 300); err != nil {
					t.Error(err)
				}
				_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUF, 4096)
			})
			done := make(chan Result, 1)
			go func() { done <- New(rc, ro, Options{}).Run() }()
			go func() {
				chunk := make([]byte, 64<<10)
				_ = sender.SetWriteDeadline(time.Now().Add(20 * time.Second))
				for {
					if _, err := sender.Write(chunk); err != nil {
						return
					}
				}
			}()
			select {
			case res := <-done:
				if pipe := map[int]int{event.StatusOriginTimeout: event.StatusOriginPipe, event.StatusClientTimeout: event.StatusClientPipe}[tc.status]; res.Status == pipe && res.Side == tc.side {
					t.Logf("kernel race: EPIPE instead of ETIMEDOUT (%q)", res.Detail)
					return
				}
				check(t, res, tc.status, tc.side, event.ReasonTimeout)
			case <-time.After(20 * time.Second):
				t.Fatal("no ETIMEDOUT within 20s")
			}
		})
	}
}

// TestClientTLSError: after the handshake the client sends a corrupted
// TLS record; the relay's TLS read fails → 490.
func TestClientTLSError(t *testing.T) {
	tc, rc := tlsPair(t)
	ro, _ := tcpPair(t)
	done := make(chan Result, 1)
	go func() { done <- New(rc, ro, Options{}).Run() }()
	// A record header claiming application data, then garbage.
	raw := tc.(*tls.Conn).NetConn()
	if _, err := raw.Write(append([]byte{23, 3, 3, 0, 40}, randBytes(40)...)); err != nil {
		t.Fatal(err)
	}
	select {
	case res := <-done:
		check(t, res, event.StatusClientTLSError, event.SideClient, event.ReasonPeerError)
	case <-time.After(10 * time.Second):
		t.Fatal("relay did not end")
	}
}

func TestIdleTimeout(t *testing.T) {
	const idle = 300 * time.Millisecond
	g := newRig(t, legTCP, legTCP, Options{IdleTimeout: idle})
	start := time.Now()
	// Traffic in either direction keeps the connection alive.
	buf := make([]byte, 1)
	for i := 0; i < 4; i++ {
		time.Sleep(idle / 2) // pacing the traffic, not synchronisation
		c, o := g.client, g.origin
		if i%2 == 1 {
			c, o = o, c
		}
		if _, err := c.Write([]byte{byte(i)}); err != nil {
			t.Fatalf("write %d: %v (relay ended early?)", i, err)
		}
		if _, err := io.ReadFull(o, buf); err != nil {
			t.Fatalf("read %d: %v", i, err)
		}
	}
	res := g.result(t)
	check(t, res, event.StatusOK, event.SideProxy, event.ReasonTimeout)
	if el := time.Since(start); el < 2*idle+idle {
		t.Fatalf("ended after %v; traffic every %v should have kept it open for at least %v", el, idle/2, 3*idle)
	}
	if res.ClientBytes != 2 || res.OriginBytes != 2 {
		t.Fatalf("bytes %d/%d, want 2/2", res.ClientBytes, res.OriginBytes)
	}
}

func TestStop(t *testing.T) {
	for _, kind := range []legKind{legTCP, legTLS} {
		t.Run(string(kind), func(t *testing.T) {
			g := newRig(t, kind, legTCP, Options{})
			if _, err := g.client.Write([]byte("hi")); err != nil {
				t.Fatal(err)
			}
			if _, err := io.ReadFull(g.origin, make([]byte, 2)); err != nil {
				t.Fatal(err)
			}
			g.relay.Stop()
			res := g.result(t)
			check(t, res, event.StatusOK, event.SideProxy, event.ReasonClosed)
			if res.ClientBytes != 2 {
				t.Fatalf("client bytes %d", res.ClientBytes)
			}
			g.relay.Stop() // a second Stop after the end is harmless
		})
	}
}

func TestStopBeforeRun(t *testing.T) {
	_, rc := tcpPair(t)
	ro, _ := tcpPair(t)
	r := New(rc, ro, Options{})
	r.Stop()
	check(t, r.Run(), event.StatusOK, event.SideProxy, event.ReasonClosed)
}

// TestLiveWhileIdle: bytes show in the Live counters as soon as they moved,
// while the connection stays open and idle.
func TestLiveWhileIdle(t *testing.T) {
	g := newRig(t, legTCP, legTCP, Options{})
	if _, err := g.client.Write(make([]byte, 1000)); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(g.origin, make([]byte, 1000)); err != nil {
		t.Fatal(err)
	}
	if _, err := g.origin.Write(make([]byte, 77)); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(g.client, make([]byte, 77)); err != nil {
		t.Fatal(err)
	}
	if c, o := g.live.ClientBytes.Load(), g.live.OriginBytes.Load(); c != 1000 || o != 77 {
		t.Fatalf("live counters %d/%d while open, want 1000/77", c, o)
	}
	if g.live.ClientRTT.Load() <= 0 || g.live.OriginRTT.Load() <= 0 {
		t.Fatalf("live RTT %d/%d, want samples", g.live.ClientRTT.Load(), g.live.OriginRTT.Load())
	}
	g.relay.Stop()
	g.result(t)
}

// countPipes counts this process's open pipe descriptors.
func countPipes(t testing.TB) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd")
	}
	n := 0
	for _, e := range ents {
		if l, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name())); err == nil && len(l) > 5 && l[:5] == "pipe:" {
			n++
		}
	}
	return n
}

// TestIdleHoldsNoPipe moves data through many relays, then lets them sit
// idle: no pipe may stay borrowed, and the process holds no more pipes
// than the bounded spare pool.
func TestIdleHoldsNoPipe(t *testing.T) {
	for _, mode := range allModes {
		t.Run(mode.String(), func(t *testing.T) { testIdleHoldsNoPipe(t, mode) })
	}
}

// allModes are the paths every behaviour test runs on.
var allModes = []Mode{ModeAuto, ModeSplice, ModeCopy}

func testIdleHoldsNoPipe(t *testing.T, mode Mode) {
	before := countPipes(t)
	goBefore := runtime.NumGoroutine()
	const n = 100
	rigs := make([]*rig, n)
	for i := range rigs {
		g := newRig(t, legTCP, legTCP, Options{Mode: mode})
		rigs[i] = g
		if _, err := g.client.Write(make([]byte, 4096)); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(g.origin, make([]byte, 4096)); err != nil {
			t.Fatal(err)
		}
		if _, err := g.origin.Write(make([]byte, 10)); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(g.client, make([]byte, 10)); err != nil {
			t.Fatal(err)
		}
	}
	// Each relay's reads happen before the bytes arrive at the far end,
	// but the pipe is given back just after: wait for that (bounded).
	deadline := time.Now().Add(5 * time.Second)
	for (pipesInUse.Load() != 0 || bufsInUse.Load() != 0) && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if u := pipesInUse.Load(); u != 0 {
		t.Fatalf("%d pipes borrowed by %d idle relays, want 0", u, n)
	}
	if u := bufsInUse.Load(); u != 0 {
		t.Fatalf("%d copy buffers borrowed by %d idle relays, want 0", u, n)
	}
	// One goroutine per relay: the one blocked in Run. No direction of an
	// idle connection holds a goroutine (parked in a loop) once its busy wait
	// ran out; on the loop path no direction has one at all. (Without a loop
	// each direction reads in a goroutine of its own, and waiting for fewer
	// would only wait out the deadline.)
	if getLoop(0) != nil {
		deadline = time.Now().Add(5 * time.Second)
		for runtime.NumGoroutine()-goBefore > n+5 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if g := runtime.NumGoroutine() - goBefore; g > n+5 {
			t.Errorf("%d goroutines for %d idle relays (each waits in Run), want about %d", g, n, n)
		}
	}
	if extra := countPipes(t) - before; extra > 2*maxIdlePipes {
		t.Fatalf("%d pipe fds open for %d idle relays, want at most the spare pool (%d)", extra, n, 2*maxIdlePipes)
	}
	for _, g := range rigs {
		g.relay.Stop()
		g.result(t)
	}
}

func TestRTT(t *testing.T) {
	a, _ := tcpPair(t)
	if RTT(a) <= 0 {
		t.Fatal("RTT of a loopback TCP conn is 0")
	}
	u, _ := unixPair(t)
	if RTT(u) != 0 {
		t.Fatal("RTT of a unix conn is not 0")
	}
	c, _ := tlsPair(t)
	if RTT(c) <= 0 {
		t.Fatal("RTT through a *tls.Conn is 0")
	}
}

// testCert returns a certificate for relay.test and a pool that trusts it.
func testCert(t testing.TB) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	ca := tlstest.NewCA(t, "relay test CA")
	return ca.Issue(t, tlstest.Leaf{Names: []string{"relay.test"}}).TLS(), ca.Pool()
}

// tlsPair returns a TLS client (test side) and the TLS server conn the
// relay gets, both handshaken.
func tlsPair(t testing.TB) (client, server net.Conn) {
	t.Helper()
	cert, pool := testCert(t)
	a, b := tcpPair(t)
	cc := tls.Client(a, &tls.Config{ServerName: "relay.test", RootCAs: pool})
	sc := tls.Server(b, &tls.Config{Certificates: []tls.Certificate{cert}})
	errc := make(chan error, 1)
	go func() { errc <- sc.Handshake() }()
	if err := cc.Handshake(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	return cc, sc
}

// TestStartAsync: Start returns at once and calls done with the result;
// an idle relay started this way holds no goroutine at all.
func TestStartAsync(t *testing.T) {
	tc, rc := tcpPair(t)
	ro, to := tcpPair(t)
	goBefore := runtime.NumGoroutine()
	done := make(chan Result, 1)
	New(rc, ro, Options{}).Start(func(r Result) { done <- r })
	if _, err := tc.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(to, make([]byte, 4)); err != nil {
		t.Fatal(err)
	}
	if getLoop(0) != nil { // without a loop each direction reads in a goroutine of its own
		deadline := time.Now().Add(5 * time.Second)
		for runtime.NumGoroutine() > goBefore && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond) // the wake-up goroutine exits after parking again
		}
		if g := runtime.NumGoroutine() - goBefore; g > 0 {
			t.Errorf("%d goroutines for one idle relay started with Start, want 0", g)
		}
	}
	closeWrite(t, tc)
	if _, err := io.ReadAll(to); err != nil { // the client's FIN arrived
		t.Fatal(err)
	}
	_ = to.Close()
	select {
	case res := <-done:
		check(t, res, event.StatusOK, event.SideClient, event.ReasonPeerClose)
		if res.ClientBytes != 4 {
			t.Fatalf("client bytes %d", res.ClientBytes)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("done not called")
	}
}

// TestQuietThenBusy drives a connection through quiet and busy spells:
// exchanges closer together than quietAfter, then a pause longer than it
// (on the goroutine path a direction parks; on the loop path a spliced
// direction would start small again). Every byte must arrive and the
// relay must not end on its own.
func TestQuietThenBusy(t *testing.T) {
	g := newRig(t, legTCP, legTCP, Options{})
	echo := func(msg string) {
		t.Helper()
		if _, err := g.client.Write([]byte(msg)); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, len(msg))
		if _, err := io.ReadFull(g.origin, got); err != nil {
			t.Fatalf("origin read: %v", err)
		}
		if _, err := g.origin.Write(got); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(g.client, got); err != nil {
			t.Fatalf("client read: %v", err)
		}
		if string(got) != msg {
			t.Fatalf("echo %q, want %q", got, msg)
		}
	}
	// The gaps are the scenario (timing relative to quietAfter), not
	// synchronisation.
	for i := 0; i < 8; i++ {
		echo(fmt.Sprintf("busy-%d", i))
		time.Sleep(quietAfter / 3)
	}
	time.Sleep(quietAfter + quietAfter/2)
	echo("after-park")
	select {
	case res := <-g.done:
		t.Fatalf("relay ended early: %+v", res)
	default:
	}
	closeWrite(t, g.client)
	if _, err := io.ReadAll(g.origin); err != nil { // the client's FIN arrived
		t.Fatal(err)
	}
	closeWrite(t, g.origin)
	res := g.result(t)
	check(t, res, event.StatusOK, event.SideClient, event.ReasonPeerClose)
	if want := int64(8*len("busy-0") + len("after-park")); res.ClientBytes != want || res.OriginBytes != want {
		t.Fatalf("bytes %d/%d, want %d each", res.ClientBytes, res.OriginBytes, want)
	}
}

// TestKeepAliveWhenQuiet: Options.KeepAlive reaches both legs' sockets
// once the connection lived a while (the loop path: one sweep; the
// goroutine path: a direction parks), not before.
func TestKeepAliveWhenQuiet(t *testing.T) {
	if getLoop(0) == nil {
		t.Skip("no event loop: directions never park")
	}
	ka := net.KeepAliveConfig{Enable: true, Idle: 77 * time.Second, Interval: 7 * time.Second, Count: 4}
	g := newRig(t, legTCP, legTCP, Options{KeepAlive: ka})
	fdIdle := func(fd int) int {
		if on, _ := syscall.GetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_KEEPALIVE); on == 1 {
			v, _ := syscall.GetsockoptInt(fd, syscall.IPPROTO_TCP, syscall.TCP_KEEPIDLE)
			return v
		}
		return 0
	}
	// idle returns TCP_KEEPIDLE of both legs (0: keepalive off).
	idle := func() (v [2]int) {
		if fl := g.relay.fl; fl != nil {
			g.relay.mu.Lock()
			defer g.relay.mu.Unlock()
			for i := range 2 {
				v[i] = fdIdle(int(fl.fd[i]))
			}
			return v
		}
		for i, c := range []net.Conn{g.relay.client, g.relay.origin} {
			rc, err := c.(*net.TCPConn).SyscallConn()
			if err != nil {
				t.Fatal(err)
			}
			_ = rc.Control(func(fd uintptr) { v[i] = fdIdle(int(fd)) })
		}
		return v
	}
	if v := idle(); v[0] == 77 || v[1] == 77 {
		t.Fatalf("keepalive set at the start (%v), want it only once the connection lived a while", v)
	}
	if _, err := g.client.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(g.origin, make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(sweepEvery + 5*time.Second)
	for v := idle(); (v[0] != 77 || v[1] != 77) && time.Now().Before(deadline); v = idle() {
		time.Sleep(5 * time.Millisecond)
	}
	if v := idle(); v != [2]int{77, 77} {
		t.Errorf("TCP_KEEPIDLE of the legs %v (0: keepalive off), want 77 each", v)
	}
	g.relay.Stop()
	g.result(t)
}

// TestBulkThenSmall: a direction that carried bulk (spliced under
// ModeAuto) and then small messages (back to the buffered way) keeps
// moving every byte, and so does one that turns to bulk again. (The loop
// path once kept the pipe when it went back to the buffer, and then
// waited for a writable edge that never came.)
func TestBulkThenSmall(t *testing.T) {
	for _, kind := range []legKind{legTCP, legUnix} {
		for _, mode := range allModes {
			t.Run(fmt.Sprintf("%s-%v", kind, mode), func(t *testing.T) {
				g := newRig(t, kind, legTCP, Options{Mode: mode})
				deadline := time.Now().Add(10 * time.Second)
				_ = g.client.SetDeadline(deadline) // a stall fails the test instead of hanging it
				_ = g.origin.SetDeadline(deadline)
				bulk := func() {
					t.Helper()
					up := randBytes(2 << 20)
					go func() { _, _ = g.client.Write(up) }()
					got := make([]byte, len(up))
					if _, err := io.ReadFull(g.origin, got); err != nil || !bytes.Equal(got, up) {
						t.Fatalf("bulk: origin read %v, intact %v", err, bytes.Equal(got, up))
					}
				}
				bulk()
				pingPong(t, g, 20, 100) // more than smallSplices small chunks in a row
				bulk()
				pingPong(t, g, 5, 100)
				closeWrite(t, g.client)
				if _, err := io.ReadAll(g.origin); err != nil {
					t.Fatal(err)
				}
				closeWrite(t, g.origin)
				res := g.result(t)
				check(t, res, event.StatusOK, event.SideClient, event.ReasonPeerClose)
				if want := int64(2*(2<<20) + 25*100); res.ClientBytes != want {
					t.Fatalf("client bytes %d, want %d", res.ClientBytes, want)
				}
			})
		}
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

// TestUrgentDataDoesNotEndTheStream: a read stops short at TCP's urgent
// mark, so "a short read drained the socket" does not hold there; with
// the peer's FIN already in, taking that short read for the end would
// drop what follows the mark. Everything is queued before the relay
// starts, so its first event carries data, urgent data and the FIN.
func TestUrgentDataDoesNotEndTheStream(t *testing.T) {
	tc, rc := tcpPair(t)
	ro, to := tcpPair(t)
	raw, _ := tc.(*net.TCPConn).SyscallConn()

	var serr error
	raw.Control(func(fd uintptr) {
		if serr = unix.Send(int(fd), []byte("abc"), 0); serr == nil {
			if serr = unix.Send(int(fd), []byte("X"), unix.MSG_OOB); serr == nil {
				serr = unix.Send(int(fd), []byte("def"), 0)
			}
		}
	})
	if serr != nil {
		t.Fatal(serr)
	}
	tc.(*net.TCPConn).CloseWrite()
	// Wait (bounded) until the relay's socket holds all of it and the FIN:
	// the client's send queue is empty (acked; the FIN counts too).
	for end := time.Now().Add(5 * time.Second); ; {
		var n int
		raw.Control(func(fd uintptr) { n, _ = unix.IoctlGetInt(int(fd), unix.SIOCOUTQ) })
		if n == 0 {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("%d bytes still unacked", n)
		}
		time.Sleep(time.Millisecond)
	}
	r := New(rc, ro, Options{})
	done := make(chan Result, 1)
	go func() { done <- r.Run() }()
	to.SetReadDeadline(time.Now().Add(5 * time.Second))
	got, err := io.ReadAll(to)
	if err != nil {
		t.Fatalf("origin read: %v (got %q)", err, got)
	}
	if string(got) != "abcdef" {
		t.Fatalf("origin got %q, want %q (the urgent byte is out of band)", got, "abcdef")
	}
	to.Close()
	tc.Close()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("relay did not end")
	}
}
