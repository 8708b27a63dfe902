package pphdr

import (
	"github.com/pires/go-proxyproto"
	"github.com/pires/go-proxyproto/tlvparse"
)

// TLSTLVs returns the PROXY v2 TLVs that describe the client's TLS to the
// origin: PP2_TYPE_AUTHORITY with the SNI when there is one, and, when the
// edge terminated the client's TLS (terminated), PP2_TYPE_SSL with the
// PP2_CLIENT_SSL bit and the version and cipher sub-TLVs. In passthrough
// only the SNI is known, so only AUTHORITY is sent. The SSL verify field
// is non-zero because the edge does not ask clients for certificates
// (proxy-protocol.txt §2.2.6: zero only when a client certificate was
// presented and verified).
func TLSTLVs(sni string, terminated bool, version, cipher string) ([]proxyproto.TLV, error) {
	var tlvs []proxyproto.TLV
	if sni != "" && terminated {
		tlvs = make([]proxyproto.TLV, 0, 2) // one allocation, not two appends' worth
	}
	if sni != "" {
		tlvs = append(tlvs, proxyproto.TLV{Type: proxyproto.PP2_TYPE_AUTHORITY, Value: []byte(sni)})
	}
	if terminated {
		ssl, err := tlvparse.PP2SSL{
			Client: tlvparse.PP2_BITFIELD_CLIENT_SSL,
			Verify: 1,
			TLV: []proxyproto.TLV{
				{Type: proxyproto.PP2_SUBTYPE_SSL_VERSION, Value: []byte(version)},
				{Type: proxyproto.PP2_SUBTYPE_SSL_CIPHER, Value: []byte(cipher)},
			},
		}.Marshal()
		if err != nil {
			return nil, err
		}
		tlvs = append(tlvs, ssl)
	}
	return tlvs, nil
}
