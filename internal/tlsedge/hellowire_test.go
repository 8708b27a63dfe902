package tlsedge

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/prismproxy/prism/internal/tlstest"
)

// padHello returns the single-record ClientHello rec with a padding
// extension (type 21) grown so that the handshake message is about size
// bytes.
func padHello(t *testing.T, rec []byte, size int) []byte {
	t.Helper()
	msg := rec[5:]
	body := msg[4:]
	// Walk to the extensions block: version, random, session id, suites, compression.
	p := 2 + 32
	p += 1 + int(body[p])
	p += 2 + int(binary.BigEndian.Uint16(body[p:]))
	p += 1 + int(body[p])
	extLen := int(binary.BigEndian.Uint16(body[p:]))
	pad := size - len(msg) - 4
	ext := append([]byte{0, 21, byte(pad >> 8), byte(pad)}, make([]byte, pad)...)
	nb := append(append([]byte(nil), body[:p]...), byte((extLen+len(ext))>>8), byte(extLen+len(ext)))
	nb = append(append(nb, body[p+2:p+2+extLen]...), ext...)
	hs := append([]byte{typeClientHello, byte(len(nb) >> 16), byte(len(nb) >> 8), byte(len(nb))}, nb...)
	// One record per 16 KiB, as a client would send it.
	var out []byte
	for len(hs) > 0 {
		k := min(16384, len(hs))
		out = append(out, rec[0], rec[1], rec[2], byte(k>>8), byte(k))
		out = append(out, hs[:k]...)
		hs = hs[k:]
	}
	return out
}

// refragmentAll splits a multi-record handshake into 1-byte records.
func refragmentAll(recs []byte) []byte {
	var out []byte
	for len(recs) > 0 {
		n := int(binary.BigEndian.Uint16(recs[3:5]))
		out = append(out, refragment(recs[:5+n], 1)...)
		recs = recs[5+n:]
	}
	return out
}

type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

// TestClientHelloWireLimit: the limit counts wire bytes. A 60 KB
// ClientHello sent as 1-byte records is 360 KB on the wire; it once held
// about 0.6 MB per connection. Now reading stops at maxHelloWire and
// allocates a small multiple of it, while a real hello in 1-byte records,
// and a large hello in full records, still pass.
func TestClientHelloWireLimit(t *testing.T) {
	real := tlstest.ClientHello(t, "wire.example")
	if ch, _, err := readClientHello(bytes.NewReader(refragment(real, 1))); err != nil || ch.serverName != "wire.example" {
		t.Fatalf("a real hello (%d bytes) in 1-byte records: %q %v", len(real), ch.serverName, err)
	}
	big := padHello(t, real, 20000)
	if ch, _, err := readClientHello(bytes.NewReader(big)); err != nil || ch.serverName != "wire.example" {
		t.Fatalf("a 20 KB hello in 16 KiB records: %q %v", ch.serverName, err)
	}

	flood := refragmentAll(padHello(t, real, 60000))
	cr := &countingReader{r: oneByteReader{bytes.NewReader(flood)}}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, buf, err := readClientHello(cr)
	runtime.ReadMemStats(&after)
	if !errors.Is(err, errBadHello) || !errors.Is(err, errHelloTooLarge) {
		t.Fatalf("a %d-byte flood of 1-byte records: %v, want %v", len(flood), err, errHelloTooLarge)
	}
	if cr.n > maxHelloWire || len(buf) > maxHelloWire {
		t.Fatalf("read %d bytes (returned %d), want at most %d", cr.n, len(buf), maxHelloWire)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 4*maxHelloWire {
		t.Fatalf("allocated %d bytes for one hello, want at most %d", alloc, 4*maxHelloWire)
	}
}

// TestClientHelloUpTo64KiB: a ClientHello as large as crypto/tls takes (a
// 64 KiB handshake message, in 16 KiB records) is read whole, and the
// terminating edge hands it to crypto/tls, which answers with its
// ServerHello. The limit was 32 KiB on the wire, below what crypto/tls
// and docs/tls.md allow: a valid hello of 32–64 KiB was a malformed one
// (443 when terminating; in passthrough "not TLS", with no SNI for the
// routes and sni_allow).
func TestClientHelloUpTo64KiB(t *testing.T) {
	real := tlstest.ClientHello(t, "big.example")
	for _, size := range []int{40000, 4 + maxHandshakeBytes} {
		in := padHello(t, real, size)
		if ch, buf, err := readClientHello(bytes.NewReader(in)); err != nil || ch.serverName != "big.example" || len(buf) != len(in) {
			t.Fatalf("a %d-byte hello (%d on the wire): %q %v", size, len(in), ch.serverName, err)
		}
	}

	ca := tlstest.NewCA(t, "CA")
	cert := ca.Issue(t, tlstest.Leaf{Names: []string{"big.example"}})
	e, _ := mustEdge(t, Config{Mode: ModeFlexible, Certificates: []CertFile{{cert.CertFile, cert.KeyFile}}})
	addr, res := serveTerminate(t, e, nil)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write(padHello(t, real, 4+maxHandshakeBytes)); err != nil {
		t.Fatal(err)
	}
	hdr := make([]byte, 6)
	if _, err := io.ReadFull(c, hdr); err != nil {
		t.Fatalf("no answer to a 64 KiB hello: %v", err)
	}
	if hdr[0] != typeHandshake || hdr[5] != 2 {
		t.Fatalf("answer % x, want a ServerHello record (an alert 0x15 means the hello was refused)", hdr)
	}
	c.Close()
	wait(t, res) // the handshake then fails: the client went away
}
