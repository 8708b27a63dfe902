// Package event defines the canonical connection event: the one record the
// proxy produces for every lifecycle step of a TCP connection or UDP session,
// and the only thing the data path (relay, listeners) and the log side
// (renderers, jobs, destinations) share.
//
// The proxy fills events in vendor-neutral terms (who closed, why, how many
// bytes); renderers in internal/render turn them into the Spectrum, EdgeOne
// and CloudConnexa shapes. Nothing here knows a vendor field name, and
// nothing here touches a socket.
package event

import (
	"net/netip"
	"time"
)

// Type is the lifecycle step an event records.
type Type uint8

const (
	TypeNone Type = iota
	// Connect: both legs are up (Status 0).
	Connect
	// Disconnect: an established connection ended; Status says why.
	Disconnect
	// ClientFiltered: the IP firewall blocked the client (Status 403), or a
	// trusted front sent an invalid inbound PROXY header (500) or none
	// within the header timeout (497) (spec §7.1).
	ClientFiltered
	// TLSError: the edge TLS handshake failed (Status 400, 443, 503, 540).
	TLSError
	// ResolveOrigin: the origin could not be resolved or resolved to a
	// blocked address (Status 530-533).
	ResolveOrigin
	// OriginError: the origin leg could not be created (Status 520-524).
	OriginError
	// Interim: a periodic record of a connection that is still open. It is
	// not a Spectrum event; datasets without periodic records skip it.
	Interim
)

var typeNames = [...]string{
	TypeNone:       "none",
	Connect:        "connect",
	Disconnect:     "disconnect",
	ClientFiltered: "clientFiltered",
	TLSError:       "tlsError",
	ResolveOrigin:  "resolveOrigin",
	OriginError:    "originError",
	Interim:        "interim",
}

// String returns the Spectrum spelling of the event type ("connect",
// "clientFiltered", ...); Interim is "interim".
func (t Type) String() string {
	if int(t) < len(typeNames) {
		return typeNames[t]
	}
	return "unknown"
}

// Terminal reports whether t ends a session: no record of the session follows it.
func (t Type) Terminal() bool {
	switch t {
	case Disconnect, ClientFiltered, TLSError, ResolveOrigin, OriginError:
		return true
	}
	return false
}

// Status codes: Spectrum's status code set (spec §2), adopted as prism's
// shared vocabulary for how a session step ended. They are not HTTP codes.
//
// There is one set, and every renderer maps from it: the data path says
// how a session ended once, in these codes plus the neutral Side and Reason
// (internal/event/errstatus turns socket errors into them), and never in a
// vendor's terms. spectrum_events emits Status verbatim; OCSF's status and
// status_code come from it; EdgeOne's DisconnetReason and CloudConnexa's
// sessionDisconnectReason come from the Type, Side and Reason recorded
// with it. Spectrum's set was chosen because it is the richest of the
// schemas: it tells the client leg from the origin leg, and an established
// flow (444-499) from a leg that could not be created (520-524) or
// resolved (530-533), so the shorter lists of the others can be derived
// from it but not the other way round. A new status goes here, into
// errstatus if a socket error leads to it, and into each renderer's
// mapping.
const (
	StatusConnect               = 0
	StatusOK                    = 200
	StatusInvalidSNI            = 400
	StatusFiltered              = 403
	StatusClientHandshake       = 443
	StatusOriginReset           = 444
	StatusOriginTimeout         = 445
	StatusOriginUnreachable     = 446
	StatusOriginRefused         = 447
	StatusOriginPipe            = 448
	StatusClientTLSError        = 490
	StatusClientRefused         = 495
	StatusClientUnreachable     = 496
	StatusClientTimeout         = 497
	StatusClientPipe            = 498
	StatusClientReset           = 499
	StatusInternal              = 500
	StatusKeylessHandshake      = 503
	StatusOriginUnknown         = 520
	StatusOriginConnRefused     = 521
	StatusOriginConnTimeout     = 522
	StatusOriginConnUnreachable = 523
	StatusOriginConnInternal    = 524
	StatusResolveInternal       = 530
	StatusResolveFailed         = 531
	StatusResolveBlocked        = 532
	StatusResolveInternal2      = 533
	StatusEdgeTLSConfig         = 540
	StatusUnknown               = 999
)

// Side says which leg a close came from.
type Side uint8

const (
	SideNone   Side = iota
	SideClient      // the client ("down" in EdgeOne terms)
	SideOrigin      // the origin ("up")
	SideProxy       // the proxy itself (shutdown, idle timeout, limits)
)

func (s Side) String() string {
	switch s {
	case SideClient:
		return "client"
	case SideOrigin:
		return "origin"
	case SideProxy:
		return "proxy"
	}
	return "none"
}

// Reason is the vendor-neutral closing cause. Renderers map it to their
// own vocabulary (EdgeOne's net_exception_*, CloudConnexa's text).
type Reason uint8

const (
	ReasonNone Reason = iota
	// ReasonPeerClose: the peer on CloseSide closed normally (FIN).
	ReasonPeerClose
	// ReasonPeerError: RST, EPIPE or another read/write error on CloseSide.
	ReasonPeerError
	// ReasonTimeout: a read/write/idle timeout.
	ReasonTimeout
	// ReasonClosed: the proxy closed the session (shutdown, drain deadline,
	// reload, an operator's close), or refused it (the IP firewall, spec §7.5).
	ReasonClosed
	// ReasonCreatePeer: the origin leg could not be created (resolve, dial,
	// origin TLS or PROXY header failure).
	ReasonCreatePeer
	// ReasonChannelEOF: the session ended because the other leg's end was
	// propagated to this one.
	ReasonChannelEOF
)

func (r Reason) String() string {
	switch r {
	case ReasonPeerClose:
		return "peer_close"
	case ReasonPeerError:
		return "peer_error"
	case ReasonTimeout:
		return "timeout"
	case ReasonClosed:
		return "closed"
	case ReasonCreatePeer:
		return "create_peer"
	case ReasonChannelEOF:
		return "channel_eof"
	}
	return "none"
}

// Transport protocol names as Spectrum writes them.
const (
	ProtoTCP  = "tcp"
	ProtoUDP  = "udp"
	ProtoUnix = "unix"
)

// TLS protocol, status and cipher values for a leg that spoke no TLS
// (spec §3).
const (
	TLSProtocolNone    = "none"
	TLSProtocolUnknown = "unknown"
	TLSStatusUnknown   = "UNKNOWN"
	TLSCipherUnknown   = "UNK"
)

// TLS is what happened on one TLS leg.
type TLS struct {
	Protocol    string // none|unknown|SSLv3|TLSv1|TLSv1.1|TLSv1.2|TLSv1.3
	Cipher      string // OpenSSL-style name; TLS 1.3 as AEAD-...; UNK when unknown
	Status      string // UNKNOWN|OK|INTERNAL_ERROR|INVALID_CONFIG|INVALID_SNI|HANDSHAKE_FAILED|KEYLESS_RPC
	ServerName  string // client leg: SNI in the ClientHello; origin leg: SNI sent
	Fingerprint string // origin leg: lowercase hex SHA-256 of the leaf (DER); "" unknown
}

// NoTLS is the value of a leg on which no TLS was spoken.
var NoTLS = TLS{Protocol: TLSProtocolNone, Cipher: TLSCipherUnknown, Status: TLSStatusUnknown}

// Firewall match values (Spectrum ClientMatchedIpFirewall).
const (
	FirewallUnknown          = "UNKNOWN"
	FirewallBlockError       = "BLOCK_ERROR"
	FirewallBlockIP          = "BLOCK_IP"
	FirewallBlockCountry     = "BLOCK_COUNTRY"
	FirewallBlockASN         = "BLOCK_ASN"
	FirewallWhitelistIP      = "WHITELIST_IP"
	FirewallWhitelistCountry = "WHITELIST_COUNTRY"
	FirewallWhitelistASN     = "WHITELIST_ASN"
)

// Event is one canonical record. It is a plain value: the proxy fills it and
// hands a copy to the log side, which never shares it back. All strings are
// either constants or set once per session, so copying an Event allocates
// nothing.
type Event struct {
	Type Type
	// Status is one of the Status constants: Spectrum's code set, the
	// vocabulary every renderer maps from (see there). 0 on connect.
	Status int
	Time   time.Time // when this event took place

	SessionID ID
	App       string // the app's id from config

	// Transport on each leg: ProtoTCP, ProtoUDP or ProtoUnix. Before an
	// origin was chosen OriginProto is the app's origin transport (spec
	// §7.3); it is never "" in an emitted event.
	ClientProto string
	OriginProto string

	// ClientAddr is the real client: the socket peer, or the source from a
	// trusted inbound PROXY header. PeerAddr is always the socket peer.
	// For unix-socket listeners both are zero and ClientPath names the socket.
	ClientAddr netip.AddrPort
	PeerAddr   netip.AddrPort
	ClientPath string
	// LocalAddr is the edge address that accepted the client.
	LocalAddr netip.AddrPort
	// OriginAddr is the origin that was dialed (or blocked); zero if none.
	// OriginPath is set instead for unix-socket origins. OriginName is the
	// configured DNS name when the origin was resolved from one.
	OriginAddr netip.AddrPort
	OriginPath string
	OriginName string

	StartTime      time.Time // accept (TCP) or first datagram (UDP)
	ConnectTime    time.Time // both legs up; zero if never
	DisconnectTime time.Time // terminal record; zero while open

	// Totals since the session started: bytes read from the client and
	// bytes read from the origin.
	ClientBytes int64
	OriginBytes int64
	// Deltas since the previous record of this session in the same log job.
	// Filled by the log job just before rendering; the proxy leaves them 0.
	ClientBytesDelta int64
	OriginBytesDelta int64

	ClientRTT time.Duration // smoothed TCP RTT of the client leg; 0 for UDP/unix
	OriginRTT time.Duration

	ProxyProtocol string // to origin: off|v1|v2|simple

	TLSMode   string // off|flexible|full|strict
	ClientTLS TLS
	OriginTLS TLS

	Firewall      bool   // the app's IP firewall was on for this session
	FirewallMatch string // one of the Firewall* values
	Country       string // ISO-3166 alpha-2 of ClientAddr, "" unknown
	ASN           uint32 // AS number of ClientAddr, 0 unknown

	// Closing cause, set on terminal records.
	CloseSide   Side
	CloseReason Reason
	Detail      string // short human-readable detail (an error text), "" none
}

// New returns an event with every field at its "nothing happened yet"
// value: TLS legs at NoTLS, firewall UNKNOWN, proxy protocol off.
func New(app string, id ID) Event {
	return Event{
		SessionID:     id,
		App:           app,
		ClientTLS:     NoTLS,
		OriginTLS:     NoTLS,
		ProxyProtocol: "off",
		TLSMode:       "off",
		FirewallMatch: FirewallUnknown,
	}
}

// Duration is how long the session lasted up to this record.
func (e *Event) Duration() time.Duration {
	end := e.DisconnectTime
	if end.IsZero() {
		end = e.Time
	}
	if e.StartTime.IsZero() || end.Before(e.StartTime) {
		return 0
	}
	return end.Sub(e.StartTime)
}
