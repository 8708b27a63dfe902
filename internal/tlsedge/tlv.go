package tlsedge

import (
	"encoding/binary"

	"github.com/pires/go-proxyproto"

	"github.com/prismproxy/prism/internal/event"
)

// PP2_TYPE_SSL client bit: the client connected over TLS (proxy-protocol.txt §2.2.6).
const pp2ClientSSL = 0x01

// ProxyTLVs returns the PROXY v2 TLVs describing the client's TLS for the
// origin (tls.proxy_protocol_tlvs): PP2_TYPE_AUTHORITY with the SNI when
// there is one, and PP2_TYPE_SSL with the version and cipher sub-TLVs when
// the edge terminated the client's TLS. In passthrough only the SNI is
// known, so only AUTHORITY is sent. The SSL verify field is non-zero
// because the edge does not ask clients for certificates (the spec: zero
// only when a client certificate was presented and verified).
func ProxyTLVs(ev *event.Event) []proxyproto.TLV {
	var tlvs []proxyproto.TLV
	if sni := ev.ClientTLS.ServerName; sni != "" {
		tlvs = append(tlvs, proxyproto.TLV{Type: proxyproto.PP2_TYPE_AUTHORITY, Value: []byte(sni)})
	}
	if ev.ClientTLS.Status == StatusOK {
		ver, cipher := ev.ClientTLS.Protocol, ev.ClientTLS.Cipher
		v := make([]byte, 5, 5+3+len(ver)+3+len(cipher))
		v[0] = pp2ClientSSL
		binary.BigEndian.PutUint32(v[1:5], 1)
		v = appendTLV(v, proxyproto.PP2_SUBTYPE_SSL_VERSION, ver)
		v = appendTLV(v, proxyproto.PP2_SUBTYPE_SSL_CIPHER, cipher)
		tlvs = append(tlvs, proxyproto.TLV{Type: proxyproto.PP2_TYPE_SSL, Value: v})
	}
	return tlvs
}

func appendTLV(b []byte, t proxyproto.PP2Type, val string) []byte {
	b = append(b, byte(t), byte(len(val)>>8), byte(len(val)))
	return append(b, val...)
}
