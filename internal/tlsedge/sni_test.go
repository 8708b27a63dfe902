package tlsedge

import (
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/prismproxy/prism/internal/tlstest"
)

// dupServerName returns the single-record ClientHello rec with its
// server_name extension followed by a second one naming other.
func dupServerName(t *testing.T, rec []byte, other string) []byte {
	t.Helper()
	body := append([]byte(nil), rec[5+4:]...)
	p := 2 + 32
	p += 1 + int(body[p])
	p += 2 + int(binary.BigEndian.Uint16(body[p:]))
	p += 1 + int(body[p])
	extLen := int(binary.BigEndian.Uint16(body[p:]))
	n := len(other)
	ext := []byte{0, extServerName, byte((n + 5) >> 8), byte(n + 5), byte((n + 3) >> 8), byte(n + 3), 0, byte(n >> 8), byte(n)}
	ext = append(ext, other...)
	binary.BigEndian.PutUint16(body[p:], uint16(extLen+len(ext)))
	body = append(body, ext...)
	hs := append([]byte{typeClientHello, byte(len(body) >> 16), byte(len(body) >> 8), byte(len(body))}, body...)
	return append([]byte{rec[0], rec[1], rec[2], byte(len(hs) >> 8), byte(len(hs))}, hs...)
}

// TestServerNameNeverCut: a server name longer than a DNS name is refused
// (errInvalidSNI), not cut to 255 bytes before sni_allow and the routes
// looked at it: "a"*243+".example.com"+"evil.attacker.net" once passed
// sni_allow ["*.example.com"] while the origin got the whole name. A name
// of exactly 253 bytes is whole; a second
// server_name extension or host_name entry is malformed, as crypto/tls has
// it, so no origin can be routed by a name the edge did not check.
func TestServerNameNeverCut(t *testing.T) {
	long := strings.Repeat("a", 255-len(".example.com")) + ".example.com" + "evil.attacker.net"
	max := strings.Repeat("b", maxServerNameLen-len(".example.com")) + ".example.com"

	ch, _, err := readClientHello(bytes.NewReader(tlstest.ClientHello(t, long)))
	if err != errSNITooLong || len(ch.serverName) > maxServerNameLen || !strings.HasPrefix(long, ch.serverName) {
		t.Fatalf("%d-byte name: %q %v, want %v with the name cut for the log", len(long), ch.serverName, err, errSNITooLong)
	}
	if ch, _, err := readClientHello(bytes.NewReader(tlstest.ClientHello(t, max))); err != nil || ch.serverName != max {
		t.Errorf("%d-byte name: %q %v, want it whole", len(max), ch.serverName, err)
	}
	dup := dupServerName(t, tlstest.ClientHello(t, "evil.attacker.net"), "ok.example.com")
	if _, _, err := readClientHello(bytes.NewReader(dup)); err != errBadHello {
		t.Errorf("two server_name extensions: %v, want %v", err, errBadHello)
	}

	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"passthrough with sni_allow", Config{Mode: ModeOff, SNIAllow: []string{"*.example.com"}}},
		{"passthrough with a route", Config{Mode: ModeOff, PassthroughRoutes: []Route{{SNI: "*.example.com", Origins: oneOrigin("127.0.0.1:1")}}}},
		{"passthrough, peek_sni alone", Config{Mode: ModeOff, PeekSNI: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, _ := mustEdge(t, tc.cfg)
			addr, res := passthrough(t, e, "")
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.Write(tlstest.ClientHello(t, long))
			r := wait(t, res)
			if r.status != 400 || r.err == nil || r.sni != "" || r.ev.ClientTLS.Status != StatusInvalidSNI ||
				len(r.ev.ClientTLS.ServerName) > maxServerNameLen {
				t.Fatalf("status %d sni %q ClientTLS %+v err %v, want 400 INVALID_SNI", r.status, r.sni, r.ev.ClientTLS, r.err)
			}
		})
	}

	t.Run("terminate", func(t *testing.T) {
		ca := tlstest.NewCA(t, "CA")
		cert := ca.Issue(t, tlstest.Leaf{Names: []string{"*.example.com"}})
		e, _ := mustEdge(t, Config{Mode: ModeFlexible, Certificates: []CertFile{{cert.CertFile, cert.KeyFile}}})
		addr, res := serveTerminate(t, e, nil)
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.Write(tlstest.ClientHello(t, long))
		r := wait(t, res)
		if r.status != 400 || r.err == nil || r.ev.ClientTLS.Status != StatusInvalidSNI {
			t.Fatalf("status %d ClientTLS %+v err %v, want 400 INVALID_SNI", r.status, r.ev.ClientTLS, r.err)
		}
	})
}

// TestServerNameNotASCII: a server name that is not ASCII is refused with
// 400 INVALID_SNI in every mode. "\u212Aafka.example" (KELVIN SIGN) once
// passed sni_allow ["kafka.example"], since strings.ToLower folds it to
// "k", and the origin received the other bytes; normName folds ASCII only.
func TestServerNameNotASCII(t *testing.T) {
	const kelvin = "\u212Aafka.example"
	if n := normName(kelvin); n == "kafka.example" {
		t.Errorf("normName(%q) = %q: a non-ASCII letter was folded", kelvin, n)
	}
	if n := normName("KAFKA.Example."); n != "kafka.example" {
		t.Errorf("normName(KAFKA.Example.) = %q, want kafka.example", n)
	}
	if _, _, err := readClientHello(bytes.NewReader(tlstest.ClientHello(t, kelvin))); err != errSNINotASCII {
		t.Fatalf("%q: %v, want %v", kelvin, err, errSNINotASCII)
	}

	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"passthrough with sni_allow", Config{Mode: ModeOff, SNIAllow: []string{"kafka.example"}}},
		{"passthrough with a route", Config{Mode: ModeOff, PassthroughRoutes: []Route{{SNI: "kafka.example", Origins: oneOrigin("127.0.0.1:1")}}}},
		{"passthrough, peek_sni alone", Config{Mode: ModeOff, PeekSNI: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, _ := mustEdge(t, tc.cfg)
			addr, res := passthrough(t, e, "")
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.Write(tlstest.ClientHello(t, kelvin))
			r := wait(t, res)
			if r.status != 400 || r.err == nil || r.sni != "" || r.ev.ClientTLS.Status != StatusInvalidSNI {
				t.Fatalf("status %d sni %q ClientTLS %+v err %v, want 400 INVALID_SNI", r.status, r.sni, r.ev.ClientTLS, r.err)
			}
		})
	}

	t.Run("terminate", func(t *testing.T) {
		ca := tlstest.NewCA(t, "CA")
		cert := ca.Issue(t, tlstest.Leaf{Names: []string{"kafka.example"}})
		e, _ := mustEdge(t, Config{Mode: ModeFlexible, SNIAllow: []string{"kafka.example"},
			Certificates: []CertFile{{cert.CertFile, cert.KeyFile}}})
		addr, res := serveTerminate(t, e, nil)
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.Write(tlstest.ClientHello(t, kelvin))
		r := wait(t, res)
		if r.status != 400 || r.err == nil || r.ev.ClientTLS.Status != StatusInvalidSNI {
			t.Fatalf("status %d ClientTLS %+v err %v, want 400 INVALID_SNI", r.status, r.ev.ClientTLS, r.err)
		}
	})
}

// helloWithTrailingDot is a ClientHello naming name+"." (Go's client
// strips the dot, OpenSSL's sends it): one asking for name+"x", that
// last byte then turned into the dot.
func helloWithTrailingDot(t *testing.T, name string) []byte {
	t.Helper()
	rec := tlstest.ClientHello(t, name+"x")
	i := bytes.Index(rec, []byte(name+"x"))
	if i < 0 {
		t.Fatal("no server name in the ClientHello")
	}
	rec[i+len(name)] = '.'
	return rec
}

// TestServerNameTrailingDot: a terminating app refuses an SNI with a
// trailing dot before the handshake, as 400 INVALID_SNI with a detail that
// says why; it used to reach crypto/tls, which refuses it with a bare
// decode_error (443 "error decoding message"). Passthrough, where prism
// only reads the name, still accepts it and matches it without the dot.
func TestServerNameTrailingDot(t *testing.T) {
	ca := tlstest.NewCA(t, "CA")
	cert := ca.Issue(t, tlstest.Leaf{Names: []string{"a.example"}})
	e, _ := mustEdge(t, Config{Mode: ModeFlexible, SNIAllow: []string{"a.example"},
		Certificates: []CertFile{{cert.CertFile, cert.KeyFile}}})
	addr, res := serveTerminate(t, e, nil)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write(helloWithTrailingDot(t, "a.example"))
	r := wait(t, res)
	if r.status != 400 || r.err == nil || !strings.Contains(r.err.Error(), "ends in a dot") ||
		r.ev.ClientTLS.Status != StatusInvalidSNI || r.ev.ClientTLS.ServerName != "a.example." {
		t.Fatalf("terminate: status %d ClientTLS %+v err %v, want 400 INVALID_SNI saying the name ends in a dot", r.status, r.ev.ClientTLS, r.err)
	}
	alert := make([]byte, 7)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(c, alert); err != nil || alert[0] != 0x15 || alert[6] != alertUnrecognizedName {
		t.Errorf("terminate: client got % x (%v), want an unrecognized_name alert", alert, err)
	}

	p, _ := mustEdge(t, Config{Mode: ModeOff, SNIAllow: []string{"a.example"}})
	paddr, pres := passthrough(t, p, "")
	pc, err := net.Dial("tcp", paddr)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	pc.Write(helloWithTrailingDot(t, "a.example"))
	if pr := wait(t, pres); pr.err != nil || pr.sni != "a.example." {
		t.Errorf("passthrough: sni %q status %d err %v, want it admitted", pr.sni, pr.status, pr.err)
	}
}
