package udpproxy

import (
	"context"
	"net/netip"
	"runtime"
	"time"

	"github.com/prismproxy/prism/internal/cfgerr"
	"github.com/prismproxy/prism/internal/event"
	"github.com/prismproxy/prism/internal/limit"
	"github.com/prismproxy/prism/internal/netspec"
	"github.com/prismproxy/prism/internal/origin"
)

// Defaults of an app's `udp:` section.
const (
	DefaultIdleTimeout          = 60 * time.Second
	DefaultMaxSessions          = 100000
	DefaultMaxSessionsPerClient = 1024
	DefaultMaxDatagramSize      = 8192
	DefaultReceiveBuffer        = 4 << 20
	// MaxDatagramSize is the largest UDP payload over IPv4/IPv6 without jumbograms.
	MaxDatagramSize = 65535
)

// PROXY v2 placements on UDP (udp.proxy_v2_placement).
const (
	// PlacementFirst puts the PROXY v2 header on the first datagram of a
	// session only, as Cloudflare Spectrum and EdgeOne do.
	PlacementFirst = "first"
	// PlacementEvery puts it on every datagram, as the PROXY protocol spec
	// (2026-04 UDP clarification) requires.
	PlacementEvery = "every"
)

// Config is an app's `udp:` section.
type Config struct {
	// IdleTimeout ends a session after this long without a datagram in
	// either direction (default 60s).
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// MaxSessions caps the open sessions of the app (default 100000). A
	// datagram that would open one more is dropped and counted.
	MaxSessions int `yaml:"max_sessions"`
	// MaxSessionsPerClient caps the open sessions of one client IP (default
	// 1024, or MaxSessions when that is lower). A datagram that would open
	// one more is dropped and counted.
	MaxSessionsPerClient int `yaml:"max_sessions_per_client"`
	// ProxyV2Placement is "first" (default) or "every"; it matters only when
	// the app's proxy_protocol is v2.
	ProxyV2Placement string `yaml:"proxy_v2_placement"`
	// MaxDatagramSize is the largest datagram relayed, in bytes (default
	// 8192, at most 65535): its payload, after the inbound PROXY header of
	// a trusted front (which gets inboundRoom bytes more) or an origin's
	// SPP header. Larger datagrams are truncated by the kernel and dropped
	// (counted), never forwarded cut short. The receive buffers of a busy
	// listener are 64 datagrams of this size.
	MaxDatagramSize int `yaml:"max_datagram_size"`
	// ReceiveBuffer is the SO_RCVBUF asked for on every listener socket, in
	// bytes (default 4 MiB; the kernel caps it at net.core.rmem_max). A
	// burst that arrives while the proxy is off the CPU waits here instead
	// of being dropped by the kernel.
	ReceiveBuffer int `yaml:"receive_buffer"`
	// Sockets is how many SO_REUSEPORT sockets each listen port opens,
	// each with its own receive loop and replier, so that one listener's
	// datagrams spread over the cores (the kernel hashes a client's
	// 4-tuple to one socket; the port's sockets share one session table).
	// Default (0): GOMAXPROCS, one per usable core.
	Sockets int `yaml:"sockets"`
}

// MaxSockets bounds udp.sockets.
const MaxSockets = 256

// SetDefaults fills unset values.
func (c *Config) SetDefaults() {
	if c.IdleTimeout == 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	if c.MaxSessions == 0 {
		c.MaxSessions = DefaultMaxSessions
	}
	if c.MaxSessionsPerClient == 0 {
		// The default never exceeds the app's cap: max_sessions: 500 alone
		// means 500 for one client too, not a refusal of the config.
		c.MaxSessionsPerClient = DefaultMaxSessionsPerClient
		if c.MaxSessions > 0 && c.MaxSessions < c.MaxSessionsPerClient {
			c.MaxSessionsPerClient = c.MaxSessions
		}
	}
	if c.ProxyV2Placement == "" {
		c.ProxyV2Placement = PlacementFirst
	}
	if c.MaxDatagramSize == 0 {
		c.MaxDatagramSize = DefaultMaxDatagramSize
	}
	if c.ReceiveBuffer == 0 {
		c.ReceiveBuffer = DefaultReceiveBuffer
	}
	if c.Sockets == 0 {
		c.Sockets = min(runtime.GOMAXPROCS(0), MaxSockets)
	}
}

// Validate checks the section; keys are relative to `udp`.
func (c *Config) Validate() []*cfgerr.Error {
	var errs cfgerr.List
	if c.IdleTimeout < 0 {
		errs.Add("idle_timeout", "must not be negative (0 means the default, %v)", DefaultIdleTimeout)
	}
	if c.MaxSessions < 0 {
		errs.Add("max_sessions", "must not be negative (0 means the default, %d)", DefaultMaxSessions)
	}
	if c.MaxSessionsPerClient < 0 {
		errs.Add("max_sessions_per_client", "must not be negative (0 means the default, %d)", DefaultMaxSessionsPerClient)
	}
	if c.MaxSessions > 0 && c.MaxSessionsPerClient > c.MaxSessions {
		errs.Add("max_sessions_per_client", "%d is more than max_sessions (%d)", c.MaxSessionsPerClient, c.MaxSessions)
	}
	switch c.ProxyV2Placement {
	case "", PlacementFirst, PlacementEvery:
	default:
		errs.Add("proxy_v2_placement", "unknown value %q (use first or every)", c.ProxyV2Placement)
	}
	if c.MaxDatagramSize != 0 && (c.MaxDatagramSize < 512 || c.MaxDatagramSize > MaxDatagramSize) {
		errs.Add("max_datagram_size", "%d is out of range (512-%d)", c.MaxDatagramSize, MaxDatagramSize)
	}
	if c.ReceiveBuffer != 0 && (c.ReceiveBuffer < 64<<10 || c.ReceiveBuffer > 1<<30) {
		errs.Add("receive_buffer", "%d is out of range (65536-1073741824 bytes)", c.ReceiveBuffer)
	}
	if c.Sockets < 0 || c.Sockets > MaxSockets {
		errs.Add("sockets", "%d is out of range (0-%d; 0 means one per core)", c.Sockets, MaxSockets)
	}
	return errs
}

// Origins produces the origin candidates of a session; *origin.Pool
// satisfies it.
type Origins interface {
	Candidates(ctx context.Context, client netip.Addr, portOffset int) ([]origin.Target, *origin.Failure)
	Acquire(t origin.Target) (release func())
}

// Firewall decides for a client and fills the event's firewall and geo
// fields; *firewall.Firewall satisfies it.
type Firewall interface {
	Apply(client netip.Addr, e *event.Event) (blocked bool)
}

// Proxy protocol values of App.ProxyProtocol.
const (
	ProxyOff    = "off"
	ProxyV2     = "v2"
	ProxySimple = "simple"
)

// App is one UDP app, as the proxy passes it in (filled from the config).
type App struct {
	ID string
	// Listen entries, parsed (netspec.ParseListen): "host:port" or
	// "host:low-high" ("" or "::" host: all addresses, IPv4 and IPv6;
	// "0.0.0.0": all IPv4 addresses). Port 0 binds an ephemeral port
	// (tests).
	Listen []netspec.Listen
	// Pool chooses origins (balancer pick first, then failover order).
	Pool Origins
	// ProxyProtocol to the origin: off, v2 or simple ("" is off; v1 is a
	// TCP-only format and is refused).
	ProxyProtocol string
	// Trusted lists the front proxies whose datagrams may carry an inbound
	// PROXY v2 (or v1) header naming the real client.
	Trusted []netip.Prefix
	// Firewall, if not nil, decides per new session.
	Firewall Firewall
	// UDP is the app's `udp:` section.
	UDP Config
	// Limits are the app's per-client limits (max_tls_handshakes aside):
	// a datagram that would open a session over one is dropped, and
	// counted by limit, like the session caps.
	Limits limit.Config
}
