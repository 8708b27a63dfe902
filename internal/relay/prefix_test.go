//go:build linux

package relay

import (
	"bytes"
	"crypto/tls"
	"io"
	"net"
	"testing"
	"time"
)

// TestClientPrefixWhenOriginSpeaksFirst: the origin greets first (SMTP,
// SSH, MySQL) and reads only later, so the ClientPrefix (here larger than
// the socket buffers on the way) cannot be written whole at once. The
// loop path used to drop the unwritten rest of it as soon as the other
// direction flushed the greeting; the goroutine path wrote it within
// Start, before either direction ran, so Start blocked and the greeting
// never reached the client. The origin must get the prefix whole and the
// client the greeting, and ClientBytes count exactly what was sent.
func TestClientPrefixWhenOriginSpeaksFirst(t *testing.T) {
	for _, kind := range []legKind{legTCP, legTLS} {
		t.Run(string(kind), func(t *testing.T) {
			var tc, rc net.Conn
			if kind == legTLS {
				tc, rc = tlsPair(t) // the goroutine path on every build
			} else {
				tc, rc = tcpPair(t)
			}
			ro, to := tcpPair(t)
			// More than the origin's socket buffers hold while it does
			// not read (a smaller SO_RCVBUF than the loopback MSS would
			// stall the transfer on zero-window probes instead).
			_ = ro.(*net.TCPConn).SetWriteBuffer(16 << 10)
			prefix := randBytes(4 << 20)
			r := New(rc, ro, Options{ClientPrefix: append([]byte(nil), prefix...)})
			done := make(chan Result, 1)
			started := make(chan struct{})
			go func() {
				r.Start(func(res Result) { done <- res })
				close(started)
			}()
			defer r.Stop()
			select {
			case <-started:
			case <-time.After(5 * time.Second):
				t.Fatal("Start still blocked writing the prefix to an origin that does not read yet")
			}
			if _, err := to.Write([]byte("hello")); err != nil {
				t.Fatal(err)
			}
			_ = tc.SetReadDeadline(time.Now().Add(5 * time.Second))
			if _, err := io.ReadFull(tc, make([]byte, 5)); err != nil {
				t.Fatalf("client did not get the origin's greeting: %v", err)
			}
			if kind == legTLS {
				if err := tc.(*tls.Conn).CloseWrite(); err != nil {
					t.Fatal(err)
				}
			} else {
				closeWrite(t, tc)
			}
			_ = to.SetReadDeadline(time.Now().Add(10 * time.Second))
			got, err := io.ReadAll(to)
			if err != nil {
				t.Fatalf("origin read: %v after %d bytes", err, len(got))
			}
			if !bytes.Equal(got, prefix) {
				t.Fatalf("origin got %d bytes, want the %d of the prefix intact", len(got), len(prefix))
			}
			_ = to.Close()
			select {
			case res := <-done:
				if res.ClientBytes != int64(len(prefix)) || res.OriginBytes != 5 {
					t.Fatalf("bytes %d/%d, want %d/5", res.ClientBytes, res.OriginBytes, len(prefix))
				}
			case <-time.After(10 * time.Second):
				t.Fatal("relay did not end")
			}
		})
	}
}
