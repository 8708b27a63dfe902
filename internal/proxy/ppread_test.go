package proxy

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"net"
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

// TestV2TLVPastEnd: a v2 header whose TLV says it is longer than what the
// header holds was once accepted. Whole TLVs still are.
func TestV2TLVPastEnd(t *testing.T) {
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
			h, err := readInboundHeader(bufio.NewReader(bytes.NewReader(in)))
			if tc.ok != (err == nil) {
				t.Fatalf("header %x: %v, %v; want ok=%v", in, h, err, tc.ok)
			}
		})
	}
}

// FuzzReadInboundHeader: any bytes from a trusted peer either fail or give
// a header whose TLVs split and whose addresses match its transport.
func FuzzReadInboundHeader(f *testing.F) {
	f.Add([]byte("PROXY TCP4 127.0.0.9 127.0.0.1 4000 443\r\nhello"))
	f.Add([]byte("PROXY TCP6 ::1 ::1 1 2\r\n"))
	f.Add([]byte("PROXY UNKNOWN\r\n"))
	f.Add(v2WithTLV(nil))
	f.Add(v2WithTLV([]byte{0x02, 0, 3, 'a', '.', 'b'}))
	f.Add(v2WithTLV([]byte{0x02, 0, 10, 'a'}))
	f.Fuzz(func(t *testing.T, in []byte) {
		h, err := readInboundHeader(bufio.NewReader(bytes.NewReader(in)))
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
	})
}
