package tlsedge

import (
	"github.com/pires/go-proxyproto"

	"github.com/prismproxy/prism/internal/event"
	"github.com/prismproxy/prism/internal/pphdr"
)

// ProxyTLVs returns the PROXY v2 TLVs describing the client's TLS for the
// origin (tls.proxy_protocol_tlvs), from what the edge recorded in the
// event: the SNI, and, when the edge terminated the client's TLS (its
// status is StatusOK), the version and cipher. pphdr.TLSTLVs builds them.
func ProxyTLVs(ev *event.Event) ([]proxyproto.TLV, error) {
	t := &ev.ClientTLS
	return pphdr.TLSTLVs(t.ServerName, t.Status == StatusOK, t.Protocol, t.Cipher)
}
