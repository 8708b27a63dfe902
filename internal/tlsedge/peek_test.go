package tlsedge

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/prismproxy/prism/internal/event"
	"github.com/prismproxy/prism/internal/origin"
	"github.com/prismproxy/prism/internal/testpeer"
	"github.com/prismproxy/prism/internal/tlstest"
)

type peekResult struct {
	sni    string
	peeked []byte
	status int
	err    error
	ev     event.Event
}

// passthrough accepts one connection, peeks it, then (on success) relays
// it, peeked bytes first, to originAddr: what the proxy does in mode off.
func passthrough(t *testing.T, e *Edge, originAddr string) (string, <-chan peekResult) {
	t.Helper()
	return passthroughCtx(t, context.Background(), e, originAddr)
}

// passthroughCtx is passthrough with ctx as the connection's context.
func passthroughCtx(t *testing.T, ctx context.Context, e *Edge, originAddr string) (string, <-chan peekResult) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	ch := make(chan peekResult, 1)
	go func() {
		defer ln.Close()
		c, err := ln.Accept()
		if err != nil {
			ch <- peekResult{err: err, status: -1}
			return
		}
		defer c.Close()
		ev := event.New("app", event.NewID(time.Now()))
		sni, peeked, st, err := e.Peek(ctx, c, &ev)
		ch <- peekResult{sni, peeked, st, err, ev}
		if err != nil || originAddr == "" {
			return
		}
		o, err := net.Dial("tcp", originAddr)
		if err != nil {
			return
		}
		defer o.Close()
		o.Write(peeked)
		go func() { io.Copy(o, c); o.(*net.TCPConn).CloseWrite() }()
		io.Copy(c, o)
	}()
	return ln.Addr().String(), ch
}

// TestPeekPassthroughOpenSSL: s_client through a peeking passthrough to an
// s_server origin. The edge learns the SNI, and the handshake completes end
// to end with the origin's certificate (nothing was consumed).
func TestPeekPassthroughOpenSSL(t *testing.T) {
	openssl := testpeer.Need(t, "openssl")
	ca := tlstest.NewCA(t, "CA")
	originCert := ca.Issue(t, tlstest.Leaf{Names: []string{"origin.example"}})
	o := startSServer(t, originCert)
	e, _ := mustEdge(t, Config{Mode: ModeOff, SNIAllow: []string{"*.example"}})
	addr, res := passthrough(t, e, o.String())
	out, err := testpeer.Run(t, 15*time.Second, openssl, "s_client", "-connect", addr, "-servername", "origin.example",
		"-CAfile", ca.CAFile, "-verify_return_error", "-verify_hostname", "origin.example")
	r := wait(t, res)
	if r.err != nil || r.status != 0 || r.sni != "origin.example" {
		t.Fatalf("peek: sni %q status %d err %v", r.sni, r.status, r.err)
	}
	if len(r.peeked) == 0 || r.peeked[0] != 0x16 {
		t.Fatalf("peeked bytes do not start a handshake record: % x", r.peeked[:min(8, len(r.peeked))])
	}
	want := event.TLS{Protocol: "unknown", Cipher: "UNK", Status: "UNKNOWN", ServerName: "origin.example"}
	if r.ev.ClientTLS != want || r.ev.TLSMode != "off" {
		t.Errorf("ClientTLS %+v mode %q, want %+v", r.ev.ClientTLS, r.ev.TLSMode, want)
	}
	if err != nil || !strings.Contains(out, "Verify return code: 0 (ok)") || !strings.Contains(out, "CN = origin.example") {
		t.Errorf("s_client through passthrough: %v\n%s", err, out)
	}
}

// TestPeek covers the non-TLS and rejection paths.
func TestPeek(t *testing.T) {
	hello := tlstest.ClientHello(t, "a.example")
	tests := []struct {
		name       string
		cfg        Config
		send       []byte // nil: send nothing and wait
		close      bool   // close the write side after sending
		wantSNI    string
		wantStatus int
		wantTLS    event.TLS
	}{
		{name: "TLS hello", cfg: Config{}, send: hello, wantSNI: "a.example",
			wantTLS: event.TLS{Protocol: "unknown", Cipher: "UNK", Status: "UNKNOWN", ServerName: "a.example"}},
		{name: "SSH banner passes through", cfg: Config{}, send: []byte("SSH-2.0-OpenSSH_9.2p1\r\n"), wantTLS: event.NoTLS},
		{name: "short non-TLS then EOF", cfg: Config{}, send: []byte("hi"), close: true, wantTLS: event.NoTLS},
		{name: "silent client (server speaks first)", cfg: Config{HandshakeTimeout: 100 * time.Millisecond}, wantTLS: event.NoTLS},
		{name: "half a hello then EOF", cfg: Config{}, send: hello[:20], close: true, wantTLS: event.NoTLS},
		{name: "allowed name", cfg: Config{SNIAllow: []string{"a.example"}}, send: hello, wantSNI: "a.example",
			wantTLS: event.TLS{Protocol: "unknown", Cipher: "UNK", Status: "UNKNOWN", ServerName: "a.example"}},
		{name: "name not allowed", cfg: Config{SNIAllow: []string{"b.example"}}, send: hello, wantSNI: "a.example", wantStatus: 400,
			wantTLS: event.TLS{Protocol: "unknown", Cipher: "UNK", Status: "INVALID_SNI", ServerName: "a.example"}},
		{name: "non-TLS with an allow list", cfg: Config{SNIAllow: []string{"a.example"}}, send: []byte("SSH-2.0-x\r\n"), wantStatus: 400,
			wantTLS: event.TLS{Protocol: "unknown", Cipher: "UNK", Status: "INVALID_SNI"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, _ := mustEdge(t, tc.cfg)
			addr, res := passthrough(t, e, "")
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if tc.send != nil {
				c.Write(tc.send)
			}
			if tc.close {
				c.(*net.TCPConn).CloseWrite()
			}
			r := wait(t, res)
			if r.status != tc.wantStatus || (r.err != nil) != (tc.wantStatus != 0) {
				t.Fatalf("status %d err %v, want %d", r.status, r.err, tc.wantStatus)
			}
			if r.sni != tc.wantSNI {
				t.Errorf("sni %q, want %q", r.sni, tc.wantSNI)
			}
			if !bytes.Equal(r.peeked, tc.send) {
				t.Errorf("peeked %q, want exactly what was sent %q", r.peeked, tc.send)
			}
			if r.ev.ClientTLS != tc.wantTLS {
				t.Errorf("ClientTLS %+v, want %+v", r.ev.ClientTLS, tc.wantTLS)
			}
		})
	}
}

func TestRouteFor(t *testing.T) {
	oc := origin.Config{Addresses: []string{"127.0.0.1:1"}}
	e, _ := mustEdge(t, Config{Mode: ModeOff, PassthroughRoutes: []Route{
		{SNI: "*.a.example", Origins: oc}, {SNI: "x.a.example", Origins: oc}, {SNI: "B.example", Origins: oc},
	}})
	if !e.NeedsPeek() {
		t.Error("NeedsPeek false with routes")
	}
	tests := []struct {
		sni string
		idx int
		ok  bool
	}{
		{"x.a.example", 1, true}, // exact beats an earlier wildcard
		{"y.a.example", 0, true},
		{"b.example.", 2, true},
		{"z.y.a.example", 0, false},
		{"a.example", 0, false},
		{"", 0, false},
	}
	for _, tc := range tests {
		idx, ok := e.RouteFor(tc.sni)
		if idx != tc.idx || ok != tc.ok {
			t.Errorf("RouteFor(%q) = %d, %v; want %d, %v", tc.sni, idx, ok, tc.idx, tc.ok)
		}
	}
	plain, _ := mustEdge(t, Config{})
	if plain.NeedsPeek() {
		t.Error("NeedsPeek true for a plain mode-off app")
	}
}

// refragment splits a single-record handshake into records of at most n
// payload bytes, as a client may legally do.
func refragment(rec []byte, n int) []byte {
	payload := rec[5:]
	var out []byte
	for len(payload) > 0 {
		k := min(n, len(payload))
		out = append(out, rec[0], rec[1], rec[2], byte(k>>8), byte(k))
		out = append(out, payload[:k]...)
		payload = payload[k:]
	}
	return out
}

// oneByteReader returns one byte per Read, like a slow network.
type oneByteReader struct{ r io.Reader }

func (o oneByteReader) Read(p []byte) (int, error) { return o.r.Read(p[:min(1, len(p))]) }

func TestReadClientHello(t *testing.T) {
	hello := tlstest.ClientHello(t, "Mixed.Case.example")
	tests := []struct {
		name    string
		in      []byte
		slow    bool
		wantSNI string
		wantErr error
	}{
		{name: "one record", in: hello, wantSNI: "Mixed.Case.example"},
		{name: "one byte at a time", in: hello, slow: true, wantSNI: "Mixed.Case.example"},
		{name: "split across records", in: refragment(hello, 100), wantSNI: "Mixed.Case.example"},
		{name: "header split from body", in: refragment(hello, 2), wantSNI: "Mixed.Case.example"},
		{name: "followed by more data", in: append(append([]byte{}, hello...), "early"...), wantSNI: "Mixed.Case.example"},
		{name: "no SNI", in: tlstest.ClientHello(t, ""), wantSNI: ""},
		{name: "plain HTTP", in: []byte("GET / HTTP/1.1\r\n\r\n"), wantErr: errNotTLS},
		{name: "SSLv2-style first byte", in: []byte{0x80, 0x2e, 0x01, 0x03, 0x01}, wantErr: errNotTLS},
		{name: "wrong handshake type", in: []byte{0x16, 0x03, 0x01, 0x00, 0x04, 0x02, 0x00, 0x00, 0x00}, wantErr: errBadHello},
		{name: "zero-length record", in: []byte{0x16, 0x03, 0x01, 0x00, 0x00}, wantErr: errBadHello},
		{name: "truncated", in: hello[:len(hello)-10], wantErr: io.ErrUnexpectedEOF},
		{name: "lying length", in: append([]byte{0x16, 0x03, 0x01, 0x00, 0x0a, 0x01, 0x00, 0x00, 0x06}, make([]byte, 6)...), wantErr: errBadHello},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var r io.Reader = bytes.NewReader(tc.in)
			if tc.slow {
				r = oneByteReader{r}
			}
			ch, buf, err := readClientHello(r)
			if err != tc.wantErr {
				t.Fatalf("err %v, want %v", err, tc.wantErr)
			}
			if !bytes.HasPrefix(tc.in, buf) {
				t.Errorf("returned bytes are not a prefix of the input")
			}
			if err == nil {
				if ch.serverName != tc.wantSNI {
					t.Errorf("sni %q, want %q", ch.serverName, tc.wantSNI)
				}
				if ch.maxVersion != tls.VersionTLS13 {
					t.Errorf("maxVersion %#x, want TLS 1.3", ch.maxVersion)
				}
			}
		})
	}
}

// FuzzReadClientHello: the parser never panics, never reads past what it
// returns, and what it returns is always a prefix of the input.
func FuzzReadClientHello(f *testing.F) {
	h := tlstest.ClientHello(f, "fuzz.example")
	f.Add(h)
	f.Add(refragment(h, 50))
	f.Add([]byte("GET / HTTP/1.1\r\n"))
	f.Add([]byte{0x16, 0x03, 0x01, 0x00, 0x05, 0x01, 0x00, 0x00, 0x01, 0x00})
	f.Fuzz(func(t *testing.T, in []byte) {
		ch, buf, err := readClientHello(bytes.NewReader(in))
		if !bytes.HasPrefix(in, buf) {
			t.Fatalf("returned bytes are not a prefix of the input")
		}
		if err == nil && len(ch.serverName) > maxServerNameLen {
			t.Fatalf("server name of %d bytes", len(ch.serverName))
		}
	})
}

func TestNameMatches(t *testing.T) {
	tests := []struct {
		pattern, name string
		want          bool
	}{
		{"a.example", "a.example", true},
		{"*.a.example", "x.a.example", true},
		{"*.a.example", "a.example", false},
		{"*.a.example", "y.x.a.example", false},
		{"*.a.example", ".a.example", false},
		{"a.example", "b.example", false},
	}
	for _, tc := range tests {
		if got := nameMatches(tc.pattern, tc.name); got != tc.want {
			t.Errorf("nameMatches(%q, %q) = %v", tc.pattern, tc.name, got)
		}
	}
}

// TestWithPrefix: bytes read before Terminate (past an inbound PROXY
// header) are part of the ClientHello.
func TestWithPrefix(t *testing.T) {
	hello := tlstest.ClientHello(t, "a.example")
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	go b.Write(hello[7:])
	ch, buf, err := readClientHello(WithPrefix(a, hello[:7]))
	if err != nil || ch.serverName != "a.example" || !bytes.Equal(buf, hello) {
		t.Fatalf("sni %q, %d bytes, err %v", ch.serverName, len(buf), err)
	}
	if WithPrefix(a, nil) != a {
		t.Error("empty prefix wraps the conn")
	}
}
