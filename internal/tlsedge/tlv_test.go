package tlsedge

import (
	"testing"

	"github.com/pires/go-proxyproto"
	"github.com/pires/go-proxyproto/tlvparse"

	"github.com/prismproxy/prism/internal/event"
)

// TestProxyTLVs: what the edge recorded decides the TLVs (their bytes are
// pphdr's tests): a terminated handshake gives AUTHORITY and SSL, a
// passthrough one only AUTHORITY, no TLS nothing.
func TestProxyTLVs(t *testing.T) {
	ev := event.New("app", event.ID{})
	ev.ClientTLS = event.TLS{Protocol: "TLSv1.3", Cipher: "AEAD-AES128-GCM-SHA256", Status: "OK", ServerName: "a.example"}
	tlvs, err := ProxyTLVs(&ev)
	if err != nil {
		t.Fatal(err)
	}
	if len(tlvs) != 2 || tlvs[0].Type != proxyproto.PP2_TYPE_AUTHORITY || string(tlvs[0].Value) != "a.example" {
		t.Fatalf("terminated TLVs %+v", tlvs)
	}
	ssl, err := tlvparse.SSL(tlvs[1])
	if err != nil {
		t.Fatal(err)
	}
	ver, _ := ssl.SSLVersion()
	cipher, _ := ssl.SSLCipher()
	if !ssl.ClientSSL() || ver != "TLSv1.3" || cipher != "AEAD-AES128-GCM-SHA256" {
		t.Errorf("ssl TLV: client %v version %q cipher %q", ssl.ClientSSL(), ver, cipher)
	}

	// Passthrough: only the SNI is known.
	ev.ClientTLS = event.TLS{Protocol: "unknown", Cipher: "UNK", Status: "UNKNOWN", ServerName: "b.example"}
	if got, err := ProxyTLVs(&ev); err != nil || len(got) != 1 || got[0].Type != proxyproto.PP2_TYPE_AUTHORITY || string(got[0].Value) != "b.example" {
		t.Errorf("passthrough TLVs %+v %v", got, err)
	}
	// No TLS at all: nothing.
	ev.ClientTLS = event.NoTLS
	if got, err := ProxyTLVs(&ev); err != nil || len(got) != 0 {
		t.Errorf("plain TLVs %+v %v", got, err)
	}
}
