package proxy

import (
	"net/netip"
	"time"

	"github.com/prismproxy/prism/internal/limit"
	"github.com/prismproxy/prism/internal/netspec"
	"github.com/prismproxy/prism/internal/origin"
	"github.com/prismproxy/prism/internal/relay"
	"github.com/prismproxy/prism/internal/tlsedge"
)

// App is one TCP app as a Server runs it: plain values and parts already
// built from the validated config (internal/daemon/appbuild does that).
// The caller owns the parts: the Server starts the pools' health checks
// but closes none of them; close them after Shutdown.
type App struct {
	ID     string
	Listen []netspec.Listen // at least one
	// Pool chooses the origins; Routes are the passthrough SNI routes'
	// pools, by tlsedge route index.
	Pool   *origin.Pool
	Routes []*origin.Pool
	// Edge is the TLS side (nil: no TLS handling at all). Terminate says
	// edge TLS is terminated (flexible, full, strict); OriginTLS that TLS
	// is spoken to the origin (full, strict).
	Edge      *tlsedge.Edge
	Terminate bool
	OriginTLS bool
	// MaxTLSHandshakes is the edge's handshake limit, reported by
	// LimitRefusals when set (the Edge enforces it).
	MaxTLSHandshakes int
	Firewall         Firewall       // nil: none
	Limiter          *limit.Limiter // per-client limits; nil: none
	MaxConnections   int            // open connections of this app; 0: no limit
	// ProxyProtocol is the header written to the origin: "off", "v1" or
	// "v2" (recorded in every event as it is spelled here).
	ProxyProtocol string
	// Trusted are the front proxies whose inbound PROXY v1/v2 header is
	// read, within HeaderTimeout.
	Trusted        []netip.Prefix
	HeaderTimeout  time.Duration
	ConnectTimeout time.Duration // origin dial, per attempt
	IdleTimeout    time.Duration // no bytes either way (relay.Options.IdleTimeout says what counts)
	RelayMode      relay.Mode
}
