package pphdr

import (
	"bufio"
	"bytes"
	"net"
	"net/netip"
	"testing"

	"github.com/pires/go-proxyproto"
)

// The per-datagram parse, and the per-session and per-connection headers.

func BenchmarkParseUDPv2(b *testing.B) {
	h, _ := proxyproto.HeaderProxyFromAddrs(2, &net.UDPAddr{IP: net.ParseIP("2001:db8::1"), Port: 2000}, &net.UDPAddr{IP: net.ParseIP("2001:db8::2"), Port: 53}).Format()
	b.ReportAllocs()
	for b.Loop() {
		_, _, _, _ = ParseUDP(h)
	}
}

func BenchmarkUDPHeader(b *testing.B) {
	c, l := netip.MustParseAddrPort("192.0.2.1:1000"), netip.MustParseAddrPort("[2001:db8::2]:53")
	b.ReportAllocs()
	for b.Loop() {
		_, _ = UDPHeader(c, l)
	}
}

func BenchmarkTCPHeader(b *testing.B) {
	c, l := netip.MustParseAddrPort("192.0.2.1:1000"), netip.MustParseAddrPort("127.0.0.1:443")
	for _, v := range []byte{1, 2} {
		b.Run("v"+string('0'+v), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_, _ = TCPHeader(v, c, l, nil)
			}
		})
	}
}

func BenchmarkReadTCP(b *testing.B) {
	for _, tc := range []struct {
		name string
		in   []byte
	}{
		{"v1", []byte("PROXY TCP4 192.0.2.1 127.0.0.1 1000 443\r\nhello")},
		{"v2", v2WithTLV([]byte{0x02, 0, 3, 'a', '.', 'b'})},
	} {
		b.Run(tc.name, func(b *testing.B) {
			r := bytes.NewReader(tc.in)
			br := bufio.NewReaderSize(r, 512)
			b.ReportAllocs()
			for b.Loop() {
				r.Reset(tc.in)
				br.Reset(r)
				_ = BufferV1(br)
				_, _ = ReadTCP(br)
			}
		})
	}
}

func BenchmarkTLSTLVs(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		_, _ = TLSTLVs("a.example", true, "TLSv1.3", "TLS_AES_128_GCM_SHA256")
	}
}
