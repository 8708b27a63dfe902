package tlsedge

import (
	"crypto/tls"
	"net"
	"testing"

	"github.com/prismproxy/prism/internal/relay"
)

// TestTerminatedConnReachesTheSocket (spec §7.2): the TLS connection
// Terminate returns sits on a conn that replays the peeked ClientHello;
// that conn exposes the socket under it, so the relay can still read the
// client's TCP_INFO (before, TLS-terminated disconnects had ClientTcpRtt 0).
func TestTerminatedConnReachesTheSocket(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	tc := tls.Server(WithPrefix(s, []byte{0x16}), &tls.Config{})
	if got := tc.NetConn().(interface{ NetConn() net.Conn }).NetConn(); got != s {
		t.Fatalf("prefix conn unwraps to %v, want the accepted socket", got)
	}
	if relay.RTT(tc) <= 0 {
		t.Fatal("no RTT through a TLS conn over the prefix conn")
	}
}
