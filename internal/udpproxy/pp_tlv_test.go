package udpproxy

import (
	"encoding/binary"
	"net"
	"testing"

	"github.com/pires/go-proxyproto"
)

// TestV2TLVPastEnd: a v2 header on a datagram whose TLV runs past the
// header's end was accepted; it is malformed. Whole TLVs still pass.
func TestV2TLVPastEnd(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		src, dst := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 9), Port: 5}, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 53}
		if v6 {
			src.IP, dst.IP = net.ParseIP("2001:db8::9"), net.ParseIP("2001:db8::1")
		}
		for _, tc := range []struct {
			tlv []byte
			ok  bool
		}{
			{nil, true},
			{[]byte{0x02, 0, 1, 'a', 0x04, 0, 0}, true},
			{[]byte{0x02, 0, 9, 'a'}, false},
			{[]byte{0x02}, false},
			{[]byte{0x02, 0, 1, 'a', 0x04, 0}, false},
		} {
			b, err := proxyproto.HeaderProxyFromAddrs(2, src, dst).Format()
			if err != nil {
				t.Fatal(err)
			}
			b = append(b, tc.tlv...)
			binary.BigEndian.PutUint16(b[14:16], uint16(len(b)-16))
			in := append(b, "query"...)
			_, n, err := parseInbound(in)
			if tc.ok != (err == nil) || tc.ok && n != len(b) {
				t.Errorf("v6=%v TLV %x: n=%d err=%v, want ok=%v", v6, tc.tlv, n, err, tc.ok)
			}
		}
	}
}
