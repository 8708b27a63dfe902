package tlsedge

import (
	"bufio"
	"bytes"
	"net"
	"testing"

	"github.com/pires/go-proxyproto"
	"github.com/pires/go-proxyproto/tlvparse"

	"github.com/prismproxy/prism/internal/event"
)

// TestProxyTLVs writes the TLVs into a real PROXY v2 header and reads it
// back with go-proxyproto's parser.
func TestProxyTLVs(t *testing.T) {
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

	ev := event.New("app", event.ID{})
	ev.ClientTLS = event.TLS{Protocol: "TLSv1.3", Cipher: "AEAD-AES128-GCM-SHA256", Status: "OK", ServerName: "a.example"}
	h := roundTrip(ProxyTLVs(&ev))
	tlvs, err := h.TLVs()
	if err != nil {
		t.Fatal(err)
	}
	var authority string
	for _, tlv := range tlvs {
		if tlv.Type == proxyproto.PP2_TYPE_AUTHORITY {
			authority = string(tlv.Value)
		}
	}
	if authority != "a.example" {
		t.Errorf("authority %q", authority)
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
	ev.ClientTLS = event.TLS{Protocol: "unknown", Cipher: "UNK", Status: "UNKNOWN", ServerName: "b.example"}
	if got := ProxyTLVs(&ev); len(got) != 1 || got[0].Type != proxyproto.PP2_TYPE_AUTHORITY || string(got[0].Value) != "b.example" {
		t.Errorf("passthrough TLVs %+v", got)
	}
	// No TLS at all: nothing.
	ev.ClientTLS = event.NoTLS
	if got := ProxyTLVs(&ev); len(got) != 0 {
		t.Errorf("plain TLVs %+v", got)
	}
}
