package pphdr

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/netip"
	"testing"

	"github.com/pires/go-proxyproto"
)

// v2WithTLV is a PROXY v2 TCP4 header whose TLV vector is tlv verbatim.
func v2WithTLV(tlv []byte) []byte {
	h := proxyproto.HeaderProxyFromAddrs(2, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 9), Port: 4000}, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 443})
	b, err := h.Format()
	if err != nil {
		panic(err)
	}
	b = append(b, tlv...)
	binary.BigEndian.PutUint16(b[14:16], uint16(len(b)-16))
	return b
}

// TestTCPTLVPastEnd: a v2 header whose TLV says it is longer than what the
// header holds was once accepted. Whole TLVs still are.
func TestTCPTLVPastEnd(t *testing.T) {
	for _, tc := range []struct {
		name string
		tlv  []byte
		ok   bool
	}{
		{"no TLV", nil, true},
		{"whole authority TLV", []byte{0x02, 0, 3, 'a', '.', 'b'}, true},
		{"length past the end", []byte{0x02, 0, 10, 'a', '.'}, false},
		{"length cut short", []byte{0x02, 0}, false},
		{"second TLV past the end", []byte{0x04, 0, 0, 0x02, 0xff, 0xff, 'x'}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := append(v2WithTLV(tc.tlv), "payload"...)
			h, err := ReadTCP(bufio.NewReader(bytes.NewReader(in)))
			if tc.ok != (err == nil) {
				t.Fatalf("header %x: %v, %v; want ok=%v", in, h, err, tc.ok)
			}
		})
	}
}

// TestReadTCP: the client a header names, and the stream left just after it.
// A v2 header of a UDP family (DGRAM) names its client too, as it does on
// a UDP listener (ParseUDP): TCPSource read only TCP families, so over TCP
// the front proxy silently became the client.
func TestReadTCP(t *testing.T) {
	local, _ := (&proxyproto.Header{Version: 2, Command: proxyproto.LOCAL, TransportProtocol: proxyproto.UNSPEC}).Format()
	udp4, _ := proxyproto.HeaderProxyFromAddrs(2, &net.UDPAddr{IP: net.IPv4(198, 51, 100, 7), Port: 4000}, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 443}).Format()
	udp6, _ := proxyproto.HeaderProxyFromAddrs(2, &net.UDPAddr{IP: net.ParseIP("::ffff:198.51.100.7"), Port: 4000}, &net.UDPAddr{IP: net.ParseIP("2001:db8::1"), Port: 443}).Format()
	for _, tc := range []struct {
		name string
		in   []byte
		src  string // "" : no client named
	}{
		{"v1 tcp4", []byte("PROXY TCP4 198.51.100.7 127.0.0.1 4000 443\r\n"), "198.51.100.7:4000"},
		{"v1 tcp6 mapped", []byte("PROXY TCP6 ::ffff:198.51.100.7 ::1 4000 443\r\n"), "198.51.100.7:4000"},
		{"v1 unknown", []byte("PROXY UNKNOWN\r\n"), ""},
		{"v2 tcp4", v2WithTLV(nil), "127.0.0.9:4000"},
		{"v2 local", local, ""},
		{"v2 udp4", udp4, "198.51.100.7:4000"},
		{"v2 udp6 mapped", udp6, "198.51.100.7:4000"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			br := bufio.NewReader(bytes.NewReader(append(tc.in, "payload"...)))
			h, err := ReadTCP(br)
			if err != nil {
				t.Fatal(err)
			}
			src, ok := TCPSource(h)
			if ok != (tc.src != "") || ok && src != netip.MustParseAddrPort(tc.src) {
				t.Fatalf("source %v %v, want %q", src, ok, tc.src)
			}
			if rest, _ := io.ReadAll(br); string(rest) != "payload" {
				t.Fatalf("left %q after the header", rest)
			}
		})
	}
	if _, err := ReadTCP(bufio.NewReader(bytes.NewReader([]byte("GET / HTTP/1.1\r\n")))); !errors.Is(err, proxyproto.ErrNoProxyProtocol) {
		t.Fatalf("no header: %v", err)
	}
}

// chunks is a reader that returns one chunk per Read, then err.
type chunks struct {
	c   [][]byte
	err error
}

func (r *chunks) Read(p []byte) (int, error) {
	if len(r.c) == 0 {
		return 0, r.err
	}
	n := copy(p, r.c[0])
	r.c = r.c[1:]
	return n, nil
}

// TestBufferV1: a v1 line in several segments is buffered whole; a read
// error before the line is whole is returned; other bytes are not waited
// for.
func TestBufferV1(t *testing.T) {
	errStop := errors.New("stop")
	line := "PROXY TCP4 198.51.100.7 127.0.0.1 4000 443\r\n"
	r := &chunks{c: [][]byte{[]byte(line[:3]), []byte(line[3:20]), []byte(line[20:])}, err: errStop}
	br := bufio.NewReader(r)
	if err := BufferV1(br); err != nil {
		t.Fatal(err)
	}
	if br.Buffered() != len(line) {
		t.Fatalf("%d bytes buffered, want %d", br.Buffered(), len(line))
	}
	h, err := ReadTCP(br)
	if err != nil || h.Version != 1 {
		t.Fatalf("%v %v", h, err)
	}

	br = bufio.NewReader(&chunks{c: [][]byte{[]byte(line[:10])}, err: errStop})
	if err := BufferV1(br); !errors.Is(err, errStop) {
		t.Fatalf("cut line: %v", err)
	}
	br = bufio.NewReader(&chunks{c: [][]byte{v2WithTLV(nil)[:5]}, err: errStop})
	_, _ = br.Peek(1)
	if err := BufferV1(br); err != nil {
		t.Fatalf("v2 start: %v", err)
	}
}

// FuzzReadTCP: any bytes from a trusted peer either fail or give a header
// whose TLVs split and whose addresses match its transport.
func FuzzReadTCP(f *testing.F) {
	f.Add([]byte("PROXY TCP4 127.0.0.9 127.0.0.1 4000 443\r\nhello"))
	f.Add([]byte("PROXY TCP6 ::1 ::1 1 2\r\n"))
	f.Add([]byte("PROXY UNKNOWN\r\n"))
	f.Add(v2WithTLV(nil))
	f.Add(v2WithTLV([]byte{0x02, 0, 3, 'a', '.', 'b'}))
	f.Add(v2WithTLV([]byte{0x02, 0, 10, 'a'}))
	f.Fuzz(func(t *testing.T, in []byte) {
		h, err := ReadTCP(bufio.NewReader(bytes.NewReader(in)))
		if err != nil {
			return
		}
		if h.Version != 1 && h.Version != 2 {
			t.Fatalf("version %d accepted", h.Version)
		}
		if _, err := h.TLVs(); err != nil {
			t.Fatalf("accepted a header whose TLVs do not split: %v", err)
		}
		if h.Command.IsProxy() && h.TransportProtocol.IsStream() {
			if _, ok := h.SourceAddr.(*net.TCPAddr); !ok && h.TransportProtocol != proxyproto.UnixStream {
				t.Fatalf("stream header with source %T", h.SourceAddr)
			}
		}
		if src, ok := TCPSource(h); ok && (!src.IsValid() || src.Addr().Is4In6()) {
			t.Fatalf("source %v", src)
		}
	})
}
