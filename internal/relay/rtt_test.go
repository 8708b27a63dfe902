//go:build linux

package relay

import (
	"net"
	"testing"
	"time"
)

// opaqueConn hides the socket under it: no NetConn, as a wrapper that does
// not expose one.
type opaqueConn struct{ net.Conn }

// TestRTTKeptThroughAnOpaqueWrapper (spec §7.2): a relay that cannot reach
// the client's TCP socket keeps the sample its caller took; a later sample
// never replaces a real RTT with 0.
func TestRTTKeptThroughAnOpaqueWrapper(t *testing.T) {
	client, edge := tcpPair(t)
	originEnd, origin := tcpPair(t)
	sample := RTT(edge)
	if sample <= 0 {
		t.Fatal("no RTT sample of a loopback TCP conn")
	}
	r := New(opaqueConn{edge}, origin, Options{ClientRTT: sample})
	ch := make(chan Result, 1)
	r.Start(func(res Result) { ch <- res })
	client.Close()
	originEnd.Close()
	select {
	case res := <-ch:
		if res.ClientRTT != sample {
			t.Fatalf("ClientRTT %v at the end, want the caller's sample %v", res.ClientRTT, sample)
		}
		if res.OriginRTT <= 0 {
			t.Fatalf("OriginRTT %v: the plain origin socket has one", res.OriginRTT)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("relay did not end")
	}
}
