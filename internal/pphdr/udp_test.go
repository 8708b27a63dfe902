package pphdr

import (
	"encoding/binary"
	"net"
	"net/netip"
	"testing"

	"github.com/pires/go-proxyproto"

	"github.com/prismproxy/prism/internal/spp"
)

// TestUDPTLVPastEnd: a v2 header on a datagram whose TLV runs past the
// header's end was accepted; it is malformed. Whole TLVs still pass.
func TestUDPTLVPastEnd(t *testing.T) {
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
			_, n, err := ParseUDP(in)
			if tc.ok != (err == nil) || tc.ok && n != len(b) {
				t.Errorf("v6=%v TLV %x: n=%d err=%v, want ok=%v", v6, tc.tlv, n, err, tc.ok)
			}
		}
	}
}

func TestParseUDP(t *testing.T) {
	v4 := proxyproto.HeaderProxyFromAddrs(2, &net.UDPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 1000}, &net.UDPAddr{IP: net.IPv4(192, 0, 2, 2), Port: 53})
	v6 := proxyproto.HeaderProxyFromAddrs(2, &net.UDPAddr{IP: net.ParseIP("2001:db8::1"), Port: 2000}, &net.UDPAddr{IP: net.ParseIP("2001:db8::2"), Port: 53})
	local := &proxyproto.Header{Version: 2, Command: proxyproto.LOCAL, TransportProtocol: proxyproto.UNSPEC}
	b4, _ := v4.Format()
	b6, _ := v6.Format()
	bl, _ := local.Format()
	tests := []struct {
		name string
		in   []byte
		src  string
		n    int
		err  bool
	}{
		{"v2 udp4", b4, "192.0.2.1:1000", len(b4), false},
		{"v2 udp6", b6, "[2001:db8::1]:2000", len(b6), false},
		{"v2 local", bl, "", len(bl), false},
		{"v2 truncated", b4[:20], "", 0, true},
		{"v1 tcp4", []byte("PROXY TCP4 198.51.100.7 127.0.0.1 4000 53\r\npayload"), "198.51.100.7:4000", 43, false},
		{"v1 unknown", []byte("PROXY UNKNOWN\r\n"), "", 15, false},
		{"v1 garbage", []byte("PROXY TCP4 nope\r\n"), "", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !HasUDPHeader(tt.in) {
				t.Fatal("not recognised as a PROXY header")
			}
			src, n, err := ParseUDP(tt.in)
			if (err != nil) != tt.err || n != tt.n || (tt.src != "" && src != netip.MustParseAddrPort(tt.src)) || (tt.src == "" && src.IsValid()) {
				t.Fatalf("src %v n %d err %v", src, n, err)
			}
		})
	}
	if HasUDPHeader([]byte("PROXYish query")) || HasUDPHeader(spp.AppendHeader(nil, netip.AddrPort{}, netip.AddrPort{})) {
		t.Fatal("a plain datagram taken for a PROXY header")
	}
	if n := testing.AllocsPerRun(100, func() { _, _, _ = ParseUDP(b6) }); n != 0 {
		t.Fatalf("v2 parse allocates %v", n)
	}
}

func FuzzParseUDP(f *testing.F) {
	b, _ := proxyproto.HeaderProxyFromAddrs(2, &net.UDPAddr{IP: net.IPv4(1, 2, 3, 4), Port: 5}, &net.UDPAddr{IP: net.IPv4(6, 7, 8, 9), Port: 10}).Format()
	f.Add(b)
	f.Add([]byte("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n"))
	f.Add(spp.AppendHeader(nil, netip.AddrPort{}, netip.AddrPort{}))
	f.Fuzz(func(t *testing.T, in []byte) {
		src, n, err := ParseUDP(in)
		if err == nil && (n > len(in) || n < 0) {
			t.Fatalf("header length %d of %d bytes", n, len(in))
		}
		// Whatever go-proxyproto accepts as v2 with an address, we read the same source.
		if h, _, perr := proxyproto.ParseUDPDatagram(in); perr == nil && h.Version == 2 && err == nil && src.IsValid() {
			if s, ok := h.SourceAddr.(*net.UDPAddr); ok {
				ap := s.AddrPort()
				if netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()) != src {
					t.Fatalf("source %v, go-proxyproto says %v", src, ap)
				}
			}
		}
	})
}
