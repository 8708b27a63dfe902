package pphdr

import (
	"bufio"
	"bytes"
	"net"
	"testing"

	"github.com/pires/go-proxyproto"
	"github.com/pires/go-proxyproto/tlvparse"
)

// valueOf is the value of the first TLV of type typ.
func valueOf(tlvs []proxyproto.TLV, typ proxyproto.PP2Type) (string, bool) {
	for _, tlv := range tlvs {
		if tlv.Type == typ {
			return string(tlv.Value), true
		}
	}
	return "", false
}

// TestTLSTLVs writes the TLVs into a real PROXY v2 header and reads it
// back with go-proxyproto's parser.
func TestTLSTLVs(t *testing.T) {
	roundTrip := func(tlvs []proxyproto.TLV) *proxyproto.Header {
		t.Helper()
		h := &proxyproto.Header{Version: 2, Command: proxyproto.PROXY, TransportProtocol: proxyproto.TCPv4,
			SourceAddr:      &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 40000},
			DestinationAddr: &net.TCPAddr{IP: net.IPv4(198, 51, 100, 1), Port: 443}}
		if err := h.SetTLVs(tlvs); err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		if _, err := h.WriteTo(&buf); err != nil {
			t.Fatal(err)
		}
		got, err := proxyproto.Read(bufio.NewReader(&buf))
		if err != nil {
			t.Fatal(err)
		}
		return got
	}

	got, err := TLSTLVs("a.example", true, "TLSv1.3", "AEAD-AES128-GCM-SHA256")
	if err != nil {
		t.Fatal(err)
	}
	tlvs, err := roundTrip(got).TLVs()
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := valueOf(tlvs, proxyproto.PP2_TYPE_AUTHORITY); !ok || v != "a.example" {
		t.Errorf("authority %q (present %v)", v, ok)
	}
	ssl, ok := tlvparse.FindSSL(tlvs)
	if !ok {
		t.Fatal("no PP2_TYPE_SSL")
	}
	ver, _ := ssl.SSLVersion()
	cipher, _ := ssl.SSLCipher()
	if !ssl.ClientSSL() || ssl.Verified() || ver != "TLSv1.3" || cipher != "AEAD-AES128-GCM-SHA256" {
		t.Errorf("ssl TLV: client %v verified %v version %q cipher %q", ssl.ClientSSL(), ssl.Verified(), ver, cipher)
	}

	// Passthrough: only the SNI is known.
	if got, err := TLSTLVs("b.example", false, "unknown", "UNK"); err != nil || len(got) != 1 || got[0].Type != proxyproto.PP2_TYPE_AUTHORITY || string(got[0].Value) != "b.example" {
		t.Errorf("passthrough TLVs %+v %v", got, err)
	}
	// No TLS at all: nothing.
	if got, err := TLSTLVs("", false, "", ""); err != nil || len(got) != 0 {
		t.Errorf("plain TLVs %+v %v", got, err)
	}
}

// TestSSLTLVBytes: the PP2_TYPE_SSL value, written out field by field from
// proxy-protocol.txt §2.2.6, is the one prism built by hand before
// tlvparse built it: client PP2_CLIENT_SSL, verify 1, then the version and
// cipher sub-TLVs in that order.
func TestSSLTLVBytes(t *testing.T) {
	got, err := TLSTLVs("", true, "TLSv1.2", "AES")
	if err != nil {
		t.Fatal(err)
	}
	want := []byte{
		0x01,       // client: PP2_CLIENT_SSL
		0, 0, 0, 1, // verify: not verified (no client certificate asked for)
		0x21, 0, 7, 'T', 'L', 'S', 'v', '1', '.', '2', // PP2_SUBTYPE_SSL_VERSION
		0x23, 0, 3, 'A', 'E', 'S', // PP2_SUBTYPE_SSL_CIPHER
	}
	if len(got) != 1 || got[0].Type != proxyproto.PP2_TYPE_SSL || !bytes.Equal(got[0].Value, want) {
		t.Fatalf("TLVs %+v\nwant SSL value %x", got, want)
	}
}
