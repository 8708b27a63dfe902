package udpproxy

import (
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/prismproxy/prism/internal/event"
	"github.com/prismproxy/prism/internal/firewall"
	"github.com/prismproxy/prism/internal/origin"
	"github.com/prismproxy/prism/internal/testpeer"
)

// The types the proxy passes in satisfy the package's interfaces.
var (
	_ Origins  = (*origin.Pool)(nil)
	_ Firewall = (*firewall.Firewall)(nil)
)

// echoLoop sends n datagrams on c and reads each reply, without allocating.
func echoLoop(t testing.TB, c *net.UDPConn, n int) {
	msg := make([]byte, 512)
	buf := make([]byte, 2048)
	_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
	for range n {
		if _, err := c.Write(msg); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Read(buf); err != nil {
			t.Fatal(err)
		}
	}
}

// Steady state: no allocation per datagram on either path, in any mode.
func TestNoAllocationsPerDatagram(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("measures the whole process (and sync.Pool drops items under -race)")
	}
	for _, mode := range []string{ProxyOff, ProxyV2, ProxySimple} {
		t.Run(mode, func(t *testing.T) {
			var oa string
			if mode == ProxySimple {
				oa = startSPPEcho(t)
			} else {
				oa = testpeer.QuietUDPEcho(t).String()
			}
			s := startServer(t, App{Pool: staticPool(t, oa), ProxyProtocol: mode, UDP: Config{ProxyV2Placement: PlacementEvery}}, event.EmitterFunc(func(*event.Event) {}), nil)
			c := dial(t, addrOf(s, 0))
			echoLoop(t, c, 200) // session up, pools warm
			const n = 3000
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			echoLoop(t, c, n)
			runtime.ReadMemStats(&after)
			per := float64(after.Mallocs-before.Mallocs) / n
			t.Logf("%s: %.4f allocations per echoed datagram (whole process)", mode, per)
			if per > 0.05 {
				t.Fatalf("%.3f allocations per echoed datagram", per)
			}
		})
	}
}

// startSPPEcho is an SPP origin that echoes the datagram as is (header
// included), without allocating.
func startSPPEcho(t testing.TB) string { return testpeer.QuietUDPEcho(t).String() }

// TestMemoryPerIdleSession measures the Go heap and goroutine stack per
// idle session (the kernel's socket memory is extra and not counted).
func TestMemoryPerIdleSession(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("opens many sockets; the race detector multiplies memory")
	}
	const n = 2000
	o := testpeer.QuietUDPEcho(t)
	s := startServer(t, App{Pool: staticPool(t, o.String()), UDP: Config{IdleTimeout: time.Hour, MaxSessionsPerClient: 2 * n}}, event.EmitterFunc(func(*event.Event) {}), nil)
	clients := make([]*net.UDPConn, 0, n)
	defer func() {
		for _, c := range clients {
			c.Close()
		}
	}()
	open := func(k int) {
		for range k {
			c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(addrOf(s, 0)))
			if err != nil {
				t.Skipf("cannot open more sockets: %v", err)
			}
			clients = append(clients, c)
			echoLoop(t, c, 1)
		}
	}
	open(50) // warm-up: pools, maps
	// Two collections empty sync.Pool (and its victim cache) of batches
	// left by earlier tests, so they do not vanish inside the measurement.
	runtime.GC()
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	open(n)
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&after)
	heap := float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / n
	stack := float64(int64(after.StackInuse)-int64(before.StackInuse)) / n
	t.Logf("per idle session: heap %.0f B, goroutine stack %.0f B, total %.0f B (%d sessions; includes the test's own client sockets)",
		heap, stack, heap+stack, s.Stats().Sessions)
	if heap+stack > 32<<10 {
		t.Fatalf("%.0f bytes per idle session", heap+stack)
	}
}

func BenchmarkEcho(b *testing.B) {
	o := testpeer.QuietUDPEcho(b)
	s := startServer(b, App{Pool: staticPool(b, o.String())}, event.EmitterFunc(func(*event.Event) {}), nil)
	c := dial(b, addrOf(s, 0))
	echoLoop(b, c, 100)
	b.ReportAllocs()
	b.ResetTimer()
	echoLoop(b, c, b.N)
}
