package spp

import (
	"bytes"
	"encoding/hex"
	"errors"
	"net/netip"
	"testing"
)

// The expected bytes are written out field by field from the layout in
// Cloudflare's documentation, independently of the encoder.
func TestHeaderLayout(t *testing.T) {
	tests := []struct {
		name          string
		client, proxy string
		want          string
	}{
		{
			name:   "ipv4 mapped",
			client: "192.0.2.10:53000", proxy: "198.51.100.1:53",
			want: "56ec" +
				"00000000000000000000ffffc000020a" +
				"00000000000000000000ffffc6336401" +
				"cf08" + "0035",
		},
		{
			name:   "ipv6",
			client: "[2001:db8::1]:1", proxy: "[2001:db8::ff]:65535",
			want: "56ec" +
				"20010db8000000000000000000000001" +
				"20010db80000000000000000000000ff" +
				"0001" + "ffff",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, p := netip.MustParseAddrPort(tt.client), netip.MustParseAddrPort(tt.proxy)
			got := AppendHeader(nil, c, p)
			if hex.EncodeToString(got) != tt.want {
				t.Fatalf("header\n got %x\nwant %s", got, tt.want)
			}
			gc, gp, payload, err := Parse(append(got, "hello"...))
			if err != nil {
				t.Fatal(err)
			}
			if gc != c || gp != p || string(payload) != "hello" {
				t.Fatalf("parse: client %v proxy %v payload %q", gc, gp, payload)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	valid := AppendHeader(nil, netip.MustParseAddrPort("192.0.2.1:1"), netip.MustParseAddrPort("192.0.2.2:2"))
	bad := bytes.Clone(valid)
	bad[1] = 0xED
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"empty", nil, ErrShort},
		{"one short", valid[:HeaderLen-1], ErrShort},
		{"bad magic", bad, ErrBadMagic},
		{"header only", valid, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, p, err := Parse(tt.in)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if err == nil && len(p) != 0 {
				t.Fatalf("payload %q, want empty", p)
			}
			if Valid(tt.in) != (tt.want == nil) {
				t.Fatalf("Valid = %v", Valid(tt.in))
			}
		})
	}
}

func TestNoAllocs(t *testing.T) {
	c, p := netip.MustParseAddrPort("[2001:db8::1]:4000"), netip.MustParseAddrPort("10.0.0.1:53")
	buf := make([]byte, 0, 128)
	pkt := append(AppendHeader(nil, c, p), "payload"...)
	n := testing.AllocsPerRun(1000, func() {
		buf = AppendHeader(buf[:0], c, p)
		_, _, _, _ = Parse(pkt)
		PutHeader(buf[:HeaderLen], c, p)
	})
	if n != 0 {
		t.Fatalf("%v allocations per run, want 0", n)
	}
}

// FuzzParse: Parse never panics, and any datagram it accepts re-encodes to
// exactly its first 38 bytes (the header carries no state Parse loses).
func FuzzParse(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{0x56, 0xEC})
	f.Add(append(AppendHeader(nil, netip.MustParseAddrPort("192.0.2.1:1"), netip.MustParseAddrPort("[::1]:2")), 1, 2, 3))
	f.Add(AppendHeader(nil, netip.AddrPort{}, netip.AddrPort{}))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, p, payload, err := Parse(b)
		if err != nil {
			if Valid(b) {
				t.Fatalf("Valid but Parse failed: %v", err)
			}
			return
		}
		if !Valid(b) {
			t.Fatal("Parse accepted what Valid rejects")
		}
		if !bytes.Equal(AppendHeader(nil, c, p), b[:HeaderLen]) {
			t.Fatalf("re-encoded header differs:\n in %x\nout %x", b[:HeaderLen], AppendHeader(nil, c, p))
		}
		if len(payload) != len(b)-HeaderLen || (len(payload) > 0 && &payload[0] != &b[HeaderLen]) {
			t.Fatal("payload does not alias the input after the header")
		}
	})
}

// FuzzRoundTrip: any pair of addresses survives encode → parse, with IPv4
// (and IPv4-mapped) addresses coming back as plain IPv4.
func FuzzRoundTrip(f *testing.F) {
	f.Add([]byte{192, 0, 2, 1}, uint16(53), []byte{0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}, uint16(443), []byte("x"))
	f.Add([]byte{}, uint16(0), []byte{127, 0, 0, 1}, uint16(65535), []byte(nil))
	f.Fuzz(func(t *testing.T, ca []byte, cport uint16, pa []byte, pport uint16, payload []byte) {
		addr := func(b []byte) netip.Addr {
			a, _ := netip.AddrFromSlice(b) // 4 or 16 bytes; anything else is invalid
			return a
		}
		c := netip.AddrPortFrom(addr(ca), cport)
		p := netip.AddrPortFrom(addr(pa), pport)
		pkt := append(AppendHeader(make([]byte, 0, HeaderLen+len(payload)), c, p), payload...)
		gc, gp, gpl, err := Parse(pkt)
		if err != nil {
			t.Fatal(err)
		}
		norm := func(ap netip.AddrPort) netip.AddrPort {
			if !ap.Addr().IsValid() {
				return netip.AddrPortFrom(netip.IPv6Unspecified(), ap.Port())
			}
			return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
		}
		if gc != norm(c) || gp != norm(p) {
			t.Fatalf("round trip: client %v→%v proxy %v→%v", c, gc, p, gp)
		}
		if !bytes.Equal(gpl, payload) {
			t.Fatalf("payload %x, want %x", gpl, payload)
		}
	})
}

func BenchmarkParse(b *testing.B) {
	pkt := append(AppendHeader(nil, netip.MustParseAddrPort("192.0.2.1:1"), netip.MustParseAddrPort("192.0.2.2:2")), make([]byte, 512)...)
	b.ReportAllocs()
	for b.Loop() {
		_, _, _, _ = Parse(pkt)
	}
}

func BenchmarkPutHeader(b *testing.B) {
	c, p := netip.MustParseAddrPort("192.0.2.1:1"), netip.MustParseAddrPort("[2001:db8::1]:2")
	buf := make([]byte, HeaderLen)
	b.ReportAllocs()
	for b.Loop() {
		PutHeader(buf, c, p)
	}
}
