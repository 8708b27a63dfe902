package proxy

import (
	"bufio"
	"fmt"

	"github.com/pires/go-proxyproto"
)

// readInboundHeader reads one PROXY v1/v2 header from br. go-proxyproto
// splits a v2 header's TLVs only when asked, so a TLV whose length runs
// past the header's end would be accepted: it is checked here, and such a
// header is malformed.
func readInboundHeader(br *bufio.Reader) (*proxyproto.Header, error) {
	h, err := proxyproto.Read(br)
	if err != nil {
		return nil, err
	}
	if h.Version == 2 {
		if _, err := h.TLVs(); err != nil {
			return nil, fmt.Errorf("PROXY v2 header: %w", err)
		}
	}
	return h, nil
}
