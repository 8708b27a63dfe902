package udpproxy

import (
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prismproxy/prism/internal/event"
)

// startFloodOrigin is an echo origin, except that a datagram "flood" makes
// it send replies to its sender as fast as it can (bounded: 5 s or 5M
// datagrams, or until the test ends).
func startFloodOrigin(t *testing.T) net.Addr {
	oc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	t.Cleanup(func() { close(stop); oc.Close(); wg.Wait() })
	wg.Add(1)
	go func() { // echoes, except that "flood" starts a bounded flood to its sender
		defer wg.Done()
		buf := make([]byte, 2048)
		for {
			n, from, err := oc.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			if string(buf[:n]) != "flood" {
				_, _ = oc.WriteToUDPAddrPort(buf[:n], from)
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				msg := make([]byte, 512)
				copy(msg, "flood")
				deadline := time.Now().Add(5 * time.Second)
				for i := 0; i < 5_000_000 && time.Now().Before(deadline); i++ {
					select {
					case <-stop:
						return
					default:
					}
					_, _ = oc.WriteToUDPAddrPort(msg, from)
				}
			}()
		}
	}()

	return oc.LocalAddr()
}

// One replier goroutine serves every session of a listener: an origin that
// floods one session with replies must not keep the others' replies from
// being relayed.
func TestFloodingOriginDoesNotStarveOthers(t *testing.T) {
	oa := startFloodOrigin(t)
	s := startServer(t, App{Pool: staticPool(t, oa.String())}, event.EmitterFunc(func(*event.Event) {}), nil)
	flooded := dial(t, addrOf(s, 0))
	if _, err := flooded.Write([]byte("flood")); err != nil {
		t.Fatal(err)
	}
	// The flood is running once the flooded client has had 100 of its
	// datagrams relayed; only then does the other client start.
	for i := 0; i < 100; i++ {
		if got := read(t, flooded); !strings.HasPrefix(got, "flood") {
			t.Fatalf("flooded client got %q", got)
		}
	}

	other := dial(t, addrOf(s, 0))
	buf := make([]byte, 64)
	start := time.Now()
	for try := 0; ; try++ {
		_, _ = other.Write([]byte("ping"))
		_ = other.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		n, err := other.Read(buf)
		if err == nil {
			if string(buf[:n]) != "ping" {
				t.Fatalf("other client got %q", buf[:n])
			}
			break
		}
		if try == 5 {
			t.Fatalf("other client: no reply in %v while another session's origin floods: %v (stats %+v)", time.Since(start), err, s.Stats())
		}
	}
	if st := s.Stats(); st.OriginDatagrams < 100 {
		t.Fatalf("the flood was not running: %+v", st)
	}
	t.Logf("reply after %v; stats %+v", time.Since(start), s.Stats())
}

// Shutdown ends sessions at once even while an origin floods the replier.
func TestShutdownDuringFlood(t *testing.T) {
	oa := startFloodOrigin(t)
	em := newCollector()
	s, err := New(prepared(t, App{ID: "flood", Listen: listenOn(t, "127.0.0.1:0"), Pool: staticPool(t, oa.String())}), em, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	c := dial(t, addrOf(s, 0))
	if _, err := c.Write([]byte("flood")); err != nil {
		t.Fatal(err)
	}
	if got := read(t, c); !strings.HasPrefix(got, "flood") {
		t.Fatalf("client got %q", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	start := time.Now()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown during a flood: %v", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("shutdown took %v", d)
	}
	if e := em.NextOf(t, event.Disconnect); e.CloseReason != event.ReasonClosed {
		t.Fatalf("disconnect reason %v, want closed", e.CloseReason)
	}
}
