package udpproxy

import (
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prismproxy/prism/internal/event"
)

// One replier goroutine serves every session of a listener: an origin that
// floods one session with replies must not keep the others' replies from
// being relayed.
func TestFloodingOriginDoesNotStarveOthers(t *testing.T) {
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

	s := startServer(t, App{Pool: staticPool(t, oc.LocalAddr().String())}, event.EmitterFunc(func(*event.Event) {}), nil)
	flooded := dial(t, addrOf(s, 0))
	if _, err := flooded.Write([]byte("flood")); err != nil {
		t.Fatal(err)
	}
	if got := read(t, flooded); !strings.HasPrefix(got, "flood") {
		t.Fatalf("flooded client got %q", got)
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
