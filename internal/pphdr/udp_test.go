package pphdr

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"net/netip"
	"strings"
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
			_, n, _, err := ParseUDP(in)
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
		name  string
		in    []byte
		src   string
		n     int
		local bool
		err   bool
	}{
		{"v2 udp4", b4, "192.0.2.1:1000", len(b4), false, false},
		{"v2 udp6", b6, "[2001:db8::1]:2000", len(b6), false, false},
		{"v2 local", bl, "", len(bl), true, false},
		{"v2 truncated", b4[:20], "", 0, false, true},
		{"v1 tcp4", []byte("PROXY TCP4 198.51.100.7 127.0.0.1 4000 53\r\npayload"), "198.51.100.7:4000", 43, false, false},
		{"v1 unknown", []byte("PROXY UNKNOWN\r\n"), "", 15, false, false}, // the peer is the client, as on TCP
		{"v1 garbage", []byte("PROXY TCP4 nope\r\n"), "", 0, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !HasUDPHeader(tt.in) {
				t.Fatal("not recognised as a PROXY header")
			}
			src, n, local, err := ParseUDP(tt.in)
			if (err != nil) != tt.err || n != tt.n || local != tt.local || (tt.src != "" && src != netip.MustParseAddrPort(tt.src)) || (tt.src == "" && src.IsValid()) {
				t.Fatalf("src %v n %d local %v err %v", src, n, local, err)
			}
		})
	}
	if HasUDPHeader([]byte("PROXYish query")) || HasUDPHeader(spp.AppendHeader(nil, netip.AddrPort{}, netip.AddrPort{})) {
		t.Fatal("a plain datagram taken for a PROXY header")
	}
	if n := testing.AllocsPerRun(100, func() { _, _, _, _ = ParseUDP(b6) }); n != 0 {
		t.Fatalf("v2 parse allocates %v", n)
	}
}

func FuzzParseUDP(f *testing.F) {
	b, _ := proxyproto.HeaderProxyFromAddrs(2, &net.UDPAddr{IP: net.IPv4(1, 2, 3, 4), Port: 5}, &net.UDPAddr{IP: net.IPv4(6, 7, 8, 9), Port: 10}).Format()
	f.Add(b)
	f.Add([]byte("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n"))
	f.Add(spp.AppendHeader(nil, netip.AddrPort{}, netip.AddrPort{}))
	f.Add([]byte("PROXY UNKNOWN\r\n"))
	f.Add(v2Raw(0x20, 0x00, []byte{0x04, 0, 0}))
	f.Fuzz(func(t *testing.T, in []byte) {
		src, n, local, err := ParseUDP(in)
		if err == nil && (n > len(in) || n < 0) {
			t.Fatalf("header length %d of %d bytes", n, len(in))
		}
		// One header, one meaning: what the stream path accepts, and the
		// source, length and LOCAL command it reads, ParseUDP does too.
		if ok, tsrc, tn, tlocal := tcpVerdict(in); (err == nil) != ok || src != tsrc || n != tn || local != tlocal {
			t.Fatalf("ParseUDP(%q): src %v n %d local %v err %v; ReadTCP: valid %v src %v n %d local %v", in, src, n, local, err, ok, tsrc, tn, tlocal)
		}
	})
}

// tcpVerdict is what the stream path makes of in: whether ReadTCP accepts
// its header, the client TCPSource reads from it (of either transport
// family; none for LOCAL, UNKNOWN or AF_UNIX), how many bytes the header
// took and whether it is a v2 LOCAL one (the TCP path's health check).
func tcpVerdict(in []byte) (ok bool, src netip.AddrPort, n int, local bool) {
	br := bufio.NewReader(bytes.NewReader(in))
	h, err := ReadTCP(br)
	if err != nil {
		return false, netip.AddrPort{}, 0, false
	}
	rest, _ := io.ReadAll(br)
	src, _ = TCPSource(h)
	return true, src, len(in) - len(rest), h.Version == 2 && h.Command.IsLocal()
}

// v2Raw is a PROXY v2 header with the given version/command and family
// bytes and body (address block and TLVs) verbatim.
func v2Raw(verCmd, fam byte, body []byte) []byte {
	b := append(append([]byte(nil), v2sig...), verCmd, fam, 0, 0)
	binary.BigEndian.PutUint16(b[14:16], uint16(len(body)))
	return append(b, body...)
}

// TestParseUDPAsStrictAsTCP: ParseUDP accepted headers the stream path
// refuses (a v1 line with an unknown protocol token, an address of the
// other family, a port out of range or with a leading zero, tabs or
// double spaces; v2 family bytes the spec leaves undefined) and read a
// client address from some of them. One header now means the same on both
// transports: each case gets ReadTCP's verdict, source and length.
func TestParseUDPAsStrictAsTCP(t *testing.T) {
	ip4 := []byte{198, 51, 100, 7, 127, 0, 0, 1, 0x0f, 0xa0, 0, 53}
	ip6 := make([]byte, 36)
	copy(ip6, net.ParseIP("2001:db8::7"))
	copy(ip6[16:], net.ParseIP("2001:db8::1"))
	ip6[32], ip6[33] = 0x0f, 0xa0
	unix := make([]byte, 216)
	copy(unix, "/run/front.sock")
	tlv := []byte{0x04, 0, 2, 'o', 'k'}
	cases := []struct {
		name  string
		in    string
		valid bool // what ReadTCP says; checked against it too
	}{
		{"v1 tcp4", "PROXY TCP4 198.51.100.7 127.0.0.1 4000 53\r\n", true},
		{"v1 tcp6", "PROXY TCP6 2001:db8::7 2001:db8::1 4000 53\r\n", true},
		{"v1 tcp6 mapped", "PROXY TCP6 ::ffff:198.51.100.7 ::1 4000 53\r\n", true},
		{"v1 port 0 and 65535", "PROXY TCP4 198.51.100.7 127.0.0.1 0 65535\r\n", true},
		{"v1 unknown", "PROXY UNKNOWN\r\n", true},
		{"v1 unknown with fields", "PROXY UNKNOWN 198.51.100.7 127.0.0.1 4000 53\r\n", true},
		{"v1 longest line", "PROXY UNKNOWN " + strings.Repeat("f", 107-16) + "\r\n", true},
		{"v1 a byte too long", "PROXY UNKNOWN " + strings.Repeat("f", 108-16) + "\r\n", false},
		{"v1 garbage protocol", "PROXY GARBAGE 198.51.100.7 nonsense 4000 zzz\r\n", false},
		{"v1 udp4 token", "PROXY UDP4 198.51.100.7 127.0.0.1 4000 53\r\n", false},
		{"v1 tcp4 with ipv6 source", "PROXY TCP4 2001:db8::7 127.0.0.1 4000 53\r\n", false},
		{"v1 tcp4 with mapped source", "PROXY TCP4 ::ffff:198.51.100.7 127.0.0.1 4000 53\r\n", false},
		{"v1 tcp6 with ipv4 source", "PROXY TCP6 198.51.100.7 2001:db8::1 4000 53\r\n", false},
		{"v1 tcp6 zoned", "PROXY TCP6 fe80::1%eth0 2001:db8::1 4000 53\r\n", false},
		{"v1 bad destination", "PROXY TCP4 198.51.100.7 nonsense 4000 53\r\n", false},
		{"v1 port too big", "PROXY TCP4 198.51.100.7 127.0.0.1 99999 53\r\n", false},
		{"v1 port leading zero", "PROXY TCP4 198.51.100.7 127.0.0.1 04000 53\r\n", false},
		{"v1 port signed", "PROXY TCP4 198.51.100.7 127.0.0.1 +4000 53\r\n", false},
		{"v1 bad destination port", "PROXY TCP4 198.51.100.7 127.0.0.1 4000 zzz\r\n", false},
		{"v1 tab", "PROXY TCP4\t198.51.100.7 127.0.0.1 4000 53\r\n", false},
		{"v1 double space", "PROXY TCP4  198.51.100.7 127.0.0.1 4000 53\r\n", false},
		{"v1 trailing space", "PROXY TCP4 198.51.100.7 127.0.0.1 4000 53 \r\n", false},
		{"v1 seven fields", "PROXY TCP4 198.51.100.7 127.0.0.1 4000 53 9\r\n", false},
		{"v1 five fields", "PROXY TCP4 198.51.100.7 127.0.0.1 4000\r\n", false},
		{"v1 lf without cr", "PROXY TCP4 198.51.100.7 127.0.0.1 4000 53\n", false},
		{"v1 lf before the crlf", "PROXY UNKNOWN\nx\r\n", false},
		{"v1 no line end", "PROXY TCP4 198.51.100.7 127.0.0.1 4000 53", false},
		{"v2 tcp4", string(v2Raw(0x21, 0x11, ip4)), true},
		{"v2 udp4 with tlv", string(v2Raw(0x21, 0x12, append(ip4, tlv...))), true},
		{"v2 tcp6", string(v2Raw(0x21, 0x21, ip6)), true},
		{"v2 udp6", string(v2Raw(0x21, 0x22, ip6)), true},
		{"v2 unix stream", string(v2Raw(0x21, 0x31, unix)), true},
		{"v2 unix datagram", string(v2Raw(0x21, 0x32, unix)), true},
		{"v2 local", string(v2Raw(0x20, 0x00, nil)), true},
		{"v2 local with tlv", string(v2Raw(0x20, 0x00, tlv)), true},
		{"v2 local with a short block", string(v2Raw(0x20, 0x11, ip4[:5])), true},
		{"v2 local with addresses", string(v2Raw(0x20, 0x12, ip4)), true},
		{"v2 local with a bad tlv", string(v2Raw(0x20, 0x00, []byte{0x04, 0, 9})), false},
		{"v2 proxy unspec", string(v2Raw(0x21, 0x00, nil)), false},
		{"v2 family 0x10", string(v2Raw(0x21, 0x10, ip4)), false},
		{"v2 family 0x13", string(v2Raw(0x21, 0x13, ip4)), false},
		{"v2 family 0x1f", string(v2Raw(0x21, 0x1f, ip4)), false},
		{"v2 family 0x23", string(v2Raw(0x21, 0x23, ip6)), false},
		{"v2 family 0x41", string(v2Raw(0x21, 0x41, ip6)), false},
		{"v2 local family 0x13", string(v2Raw(0x20, 0x13, ip4)), false},
		{"v2 command 2", string(v2Raw(0x22, 0x11, ip4)), false},
		{"v2 version 1", string(v2Raw(0x11, 0x11, ip4)), false},
		{"v2 short block", string(v2Raw(0x21, 0x11, ip4[:11])), false},
		{"v2 short unix block", string(v2Raw(0x21, 0x31, unix[:215])), false},
		{"v2 longer than MaxV2HeaderSize", string(v2Raw(0x21, 0x11, append(ip4, append([]byte{0x04, 0x10, 0x00}, make([]byte, 4096)...)...))), false},
		{"v2 length past the end", string(v2Raw(0x21, 0x11, ip4))[:20], false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := []byte(tc.in + "payload")
			ok, tsrc, tn, tlocal := tcpVerdict(in)
			if ok != tc.valid {
				t.Fatalf("ReadTCP says valid=%v, the case says %v", ok, tc.valid)
			}
			src, n, local, err := ParseUDP(in)
			if (err == nil) != ok || src != tsrc || n != tn || local != tlocal {
				t.Fatalf("ParseUDP: src %v n %d local %v err %v; ReadTCP: valid %v src %v n %d local %v", src, n, local, err, ok, tsrc, tn, tlocal)
			}
			if err == nil && string(in[n:]) != "payload" {
				t.Fatalf("payload %q", in[n:])
			}
		})
	}
}
