package pphdr

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/pires/go-proxyproto"
)

// sig is the v2 signature in hex, for the expected headers below.
const sig = "0d0a0d0a000d0a515549540a"

// unhex decodes hex written with spaces between the fields.
func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestTCPHeaderBytes: the headers for a TCP origin, written out field by
// field from proxy-protocol.txt. Mixed families (an IPv4 client on an IPv6
// listener, or the other way round) become TCP6 with the IPv4 address
// IPv4-mapped; a client without an IP address gets v1 UNKNOWN / v2 LOCAL.
func TestTCPHeaderBytes(t *testing.T) {
	c4, l4 := netip.MustParseAddrPort("192.0.2.1:1000"), netip.MustParseAddrPort("127.0.0.1:443")
	c6, l6 := netip.MustParseAddrPort("[2001:db8::7]:1000"), netip.MustParseAddrPort("[::1]:443")
	for _, tc := range []struct {
		name          string
		version       byte
		client, local netip.AddrPort
		v1            string // expected v1 line
		v2            string // expected v2 header, hex
	}{
		{"v4", 1, c4, l4, "PROXY TCP4 192.0.2.1 127.0.0.1 1000 443\r\n", ""},
		{"v6", 1, c6, l6, "PROXY TCP6 2001:db8::7 ::1 1000 443\r\n", ""},
		{"v4 client, v6 local", 1, c4, l6, "PROXY TCP6 ::ffff:192.0.2.1 ::1 1000 443\r\n", ""},
		{"v6 client, v4 local", 1, c6, l4, "PROXY TCP6 2001:db8::7 ::ffff:127.0.0.1 1000 443\r\n", ""},
		{"mapped client", 1, netip.MustParseAddrPort("[::ffff:192.0.2.1]:1000"), l4, "PROXY TCP4 192.0.2.1 127.0.0.1 1000 443\r\n", ""},
		{"unix client", 1, netip.AddrPort{}, l4, "PROXY UNKNOWN\r\n", ""},
		{"v4", 2, c4, l4, "", sig + "21 11 000c c0000201 7f000001 03e8 01bb"},
		{"v6", 2, c6, l6, "", sig + "21 21 0024 20010db8000000000000000000000007 00000000000000000000000000000001 03e8 01bb"},
		{"v4 client, v6 local", 2, c4, l6, "", sig + "21 21 0024 00000000000000000000ffffc0000201 00000000000000000000000000000001 03e8 01bb"},
		{"unix client", 2, netip.AddrPort{}, l4, "", sig + "20 00 0000"},
	} {
		t.Run(tc.name+" v"+string('0'+tc.version), func(t *testing.T) {
			got, err := TCPHeader(tc.version, tc.client, tc.local, nil)
			if err != nil {
				t.Fatal(err)
			}
			want := []byte(tc.v1)
			if tc.version == 2 {
				want = unhex(t, tc.v2)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("header\n got %x %q\nwant %x", got, got, want)
			}
			// go-proxyproto reads back the client it was given.
			h, err := ReadTCP(bufio.NewReader(bytes.NewReader(got)))
			if err != nil {
				t.Fatal(err)
			}
			if src, ok := TCPSource(h); ok != tc.client.IsValid() || ok && src != netip.AddrPortFrom(tc.client.Addr().Unmap(), tc.client.Port()) {
				t.Fatalf("read back source %v %v", src, ok)
			}
		})
	}
}

// TestTCPHeaderTLVs: TLVs go into a v2 header (and its length), never into v1.
func TestTCPHeaderTLVs(t *testing.T) {
	c, l := netip.MustParseAddrPort("192.0.2.1:1000"), netip.MustParseAddrPort("127.0.0.1:443")
	tlvs := []proxyproto.TLV{{Type: proxyproto.PP2_TYPE_AUTHORITY, Value: []byte("a.b")}}
	got, err := TCPHeader(2, c, l, tlvs)
	if err != nil {
		t.Fatal(err)
	}
	if want := unhex(t, sig+"21 11 0012 c0000201 7f000001 03e8 01bb 02 0003 612e62"); !bytes.Equal(got, want) {
		t.Fatalf("header\n got %x\nwant %x", got, want)
	}
	if got, _ := TCPHeader(1, c, l, tlvs); string(got) != "PROXY TCP4 192.0.2.1 127.0.0.1 1000 443\r\n" {
		t.Fatalf("v1 with TLVs: %q", got)
	}
	if _, err := TCPHeader(2, c, l, []proxyproto.TLV{{Type: proxyproto.PP2_TYPE_NOOP, Value: make([]byte, 1<<16)}}); err == nil {
		t.Fatal("a TLV longer than 65535 bytes was formatted")
	}
}

// TestTCPHeaderAsBefore: for addresses of one family the header is what
// go-proxyproto's HeaderProxyFromAddrs gives, as prism wrote it before.
func TestTCPHeaderAsBefore(t *testing.T) {
	for _, pair := range [][2]string{{"192.0.2.1:1000", "127.0.0.1:443"}, {"[2001:db8::7]:1", "[::1]:65535"}} {
		c, l := netip.MustParseAddrPort(pair[0]), netip.MustParseAddrPort(pair[1])
		for _, v := range []byte{1, 2} {
			want, err := proxyproto.HeaderProxyFromAddrs(v, net.TCPAddrFromAddrPort(c), net.TCPAddrFromAddrPort(l)).Format()
			if err != nil {
				t.Fatal(err)
			}
			if got, err := TCPHeader(v, c, l, nil); err != nil || !bytes.Equal(got, want) {
				t.Errorf("%v v%d: %x %v, want %x", pair, v, got, err, want)
			}
		}
	}
}

// TestUDPHeaderBytes: the v2 DGRAM header for a UDP origin, field by field,
// mixed families as for TCP.
func TestUDPHeaderBytes(t *testing.T) {
	c4, l4 := netip.MustParseAddrPort("192.0.2.1:1000"), netip.MustParseAddrPort("127.0.0.1:53")
	l6 := netip.MustParseAddrPort("[::1]:53")
	for _, tc := range []struct {
		name          string
		client, local netip.AddrPort
		want          string
	}{
		{"v4", c4, l4, sig + "21 12 000c c0000201 7f000001 03e8 0035"},
		{"v4 client, v6 local", c4, l6, sig + "21 22 0024 00000000000000000000ffffc0000201 00000000000000000000000000000001 03e8 0035"},
		{"v6 client, v4 local", l6, c4, sig + "21 22 0024 00000000000000000000000000000001 00000000000000000000ffffc0000201 0035 03e8"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := UDPHeader(tc.client, tc.local)
			if err != nil {
				t.Fatal(err)
			}
			if want := unhex(t, tc.want); !bytes.Equal(got, want) {
				t.Fatalf("header\n got %x\nwant %x", got, want)
			}
			h, _, err := proxyproto.ParseUDPDatagram(append(got, "q"...))
			if err != nil || h.TransportProtocol.IsStream() {
				t.Fatalf("go-proxyproto reads %+v, %v", h, err)
			}
			if src, n, local, err := ParseUDP(got); err != nil || n != len(got) || src != tc.client || local {
				t.Fatalf("ParseUDP: %v %d %v", src, n, err)
			}
		})
	}
}
