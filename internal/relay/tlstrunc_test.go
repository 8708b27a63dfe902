//go:build linux

package relay

import (
	"crypto/tls"
	"io"
	"net"
	"testing"

	"github.com/prismproxy/prism/internal/event"
)

// TestClientTLSTruncatedRecord: a TLS client whose connection ends in the
// middle of a record (crypto/tls: io.ErrUnexpectedEOF) is a client TLS
// error on an established connection, 490, not an internal error (500).
func TestClientTLSTruncatedRecord(t *testing.T) {
	g := newRig(t, legTLS, legTCP, Options{})
	if _, err := g.client.Write([]byte("hi")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(g.origin, make([]byte, 2)); err != nil { // the relay reads the TLS stream
		t.Fatal(err)
	}
	raw := g.client.(*tls.Conn).NetConn().(*net.TCPConn)
	if _, err := raw.Write([]byte{23, 3, 3, 0, 100, 1, 2, 3}); err != nil { // 100 bytes announced, 3 sent
		t.Fatal(err)
	}
	closeWrite(t, raw)
	check(t, g.result(t), event.StatusClientTLSError, event.SideClient, event.ReasonPeerError)
}
