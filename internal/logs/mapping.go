package logs

import (
	"github.com/prismproxy/prism/internal/event"
)

// The reverse mapping: what a vendor record says about the canonical
// event. These tables are the inverse of the renderers' (internal/render)
// and of spec §2, §4, §5 and §7; docs/logs-cli.md lists what each source
// cannot say.

// cause is a closing cause in canonical terms.
type cause struct {
	typ    event.Type
	status int
	side   event.Side
	reason event.Reason
}

// spectrumEvents are the Event values of spectrum_events.
var spectrumEvents = map[string]event.Type{
	"connect":        event.Connect,
	"disconnect":     event.Disconnect,
	"clientFiltered": event.ClientFiltered,
	"tlsError":       event.TLSError,
	"resolveOrigin":  event.ResolveOrigin,
	"originError":    event.OriginError,
}

// spectrumStatus is spec §2: for every Status the one Event it goes with
// (TypeNone: any terminal event) and the closing cause a Spectrum
// disconnect with that status stands for. Spectrum does not say which side
// closed a normal disconnect; prism reads 200 as the client closing.
var spectrumStatus = map[int]cause{
	0:   {typ: event.Connect},
	200: {typ: event.Disconnect, side: event.SideClient, reason: event.ReasonPeerClose},
	400: {typ: event.TLSError},
	403: {typ: event.ClientFiltered},
	443: {typ: event.TLSError},
	444: {typ: event.Disconnect, side: event.SideOrigin, reason: event.ReasonPeerError},
	445: {typ: event.Disconnect, side: event.SideOrigin, reason: event.ReasonTimeout},
	446: {typ: event.Disconnect, side: event.SideOrigin, reason: event.ReasonPeerError},
	447: {typ: event.Disconnect, side: event.SideOrigin, reason: event.ReasonPeerError},
	448: {typ: event.Disconnect, side: event.SideOrigin, reason: event.ReasonPeerError},
	490: {typ: event.Disconnect, side: event.SideClient, reason: event.ReasonPeerError},
	495: {typ: event.Disconnect, side: event.SideClient, reason: event.ReasonPeerError},
	496: {typ: event.Disconnect, side: event.SideClient, reason: event.ReasonPeerError},
	497: {typ: event.Disconnect, side: event.SideClient, reason: event.ReasonTimeout},
	498: {typ: event.Disconnect, side: event.SideClient, reason: event.ReasonPeerError},
	499: {typ: event.Disconnect, side: event.SideClient, reason: event.ReasonPeerError},
	500: {typ: event.TypeNone, side: event.SideProxy, reason: event.ReasonClosed},
	503: {typ: event.TLSError},
	520: {typ: event.OriginError},
	521: {typ: event.OriginError},
	522: {typ: event.OriginError},
	523: {typ: event.OriginError},
	524: {typ: event.OriginError},
	530: {typ: event.ResolveOrigin},
	531: {typ: event.ResolveOrigin},
	532: {typ: event.ResolveOrigin},
	533: {typ: event.ResolveOrigin},
	540: {typ: event.TLSError},
	999: {typ: event.TypeNone, side: event.SideProxy, reason: event.ReasonClosed},
}

// statusCause looks a status up in spectrumStatus through a table.
func statusCause(status int) (cause, bool) {
	if status < 0 || status >= len(statusTable) {
		return cause{}, false
	}
	c := statusTable[status]
	return c.cause, c.ok
}

var statusTable = func() (t [1000]struct {
	cause
	ok bool
}) {
	for s, c := range spectrumStatus {
		t[s].cause, t[s].ok = c, true
	}
	return t
}()

// spectrumPairOK reports whether Event and Status go together (spec §2;
// §7.1 adds clientFiltered with 497 for an inbound PROXY header timeout).
func spectrumPairOK(t event.Type, status int) bool {
	c, ok := statusCause(status)
	if !ok {
		return false
	}
	if c.typ == event.TypeNone {
		return t.Terminal()
	}
	if t == event.ClientFiltered && status == event.StatusClientTimeout {
		return true
	}
	return c.typ == t
}

var spectrumFirewall = set("UNKNOWN", "ALLOW", "BLOCK_ERROR", "BLOCK_IP", "BLOCK_COUNTRY", "BLOCK_ASN",
	"WHITELIST_IP", "WHITELIST_COUNTRY", "WHITELIST_ASN")
var spectrumProtos = set(event.ProtoTCP, event.ProtoUDP, event.ProtoUnix)
var spectrumTLSProtocols = set("unknown", "none", "SSLv3", "TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3")
var spectrumTLSStatus = set("UNKNOWN", "OK", "INTERNAL_ERROR", "INVALID_CONFIG", "INVALID_SNI", "HANDSHAKE_FAILED", "KEYLESS_RPC")
var spectrumTLSModes = set("unknown", "off", "flexible", "full", "strict")
var spectrumProxyProtocols = set("off", "v1", "v2", "simple")

// edgeoneReasons are the reasons of DisconnetReason (spec §4).
var edgeoneReasons = map[string]event.Reason{
	"net_exception_peer_close":      event.ReasonPeerClose,
	"net_exception_peer_error":      event.ReasonPeerError,
	"net_exception_timeout":         event.ReasonTimeout,
	"net_exception_closed":          event.ReasonClosed,
	"create_peer_channel_exception": event.ReasonCreatePeer,
	"channel_eof_exception":         event.ReasonChannelEOF,
}

// edgeoneCause turns a DisconnetReason into the terminal event it stands
// for. EdgeOne cannot tell a firewall refusal from a close by the edge
// (both down:net_exception_closed, §7.5) nor a resolve failure from a dial
// failure (create_peer_channel_exception): they read back as a disconnect
// closed by the proxy and as an originError (Status 520).
func edgeoneCause(up bool, r event.Reason) cause {
	side := event.SideClient
	if up {
		side = event.SideOrigin
	}
	switch r {
	case event.ReasonCreatePeer:
		return cause{typ: event.OriginError, status: event.StatusOriginUnknown, side: side, reason: r}
	case event.ReasonPeerError:
		if up {
			return cause{typ: event.Disconnect, status: event.StatusOriginReset, side: side, reason: r}
		}
		return cause{typ: event.Disconnect, status: event.StatusClientReset, side: side, reason: r}
	case event.ReasonTimeout:
		if up {
			return cause{typ: event.Disconnect, status: event.StatusOriginTimeout, side: side, reason: r}
		}
		// the edge's own idle timeout is written down: (§4) with Status 200
		return cause{typ: event.Disconnect, status: event.StatusOK, side: event.SideProxy, reason: r}
	case event.ReasonClosed:
		if !up {
			side = event.SideProxy
		}
		return cause{typ: event.Disconnect, status: event.StatusOK, side: side, reason: r}
	}
	return cause{typ: event.Disconnect, status: event.StatusOK, side: side, reason: r}
}

// ccReasons inverts render.CloudConnexaReason.
var ccReasons = map[string]cause{
	"TLS Handshake Failed":    {typ: event.TLSError, status: event.StatusClientHandshake},
	"Origin Resolve Failed":   {typ: event.ResolveOrigin, status: event.StatusResolveFailed},
	"Origin Connect Failed":   {typ: event.OriginError, status: event.StatusOriginUnknown},
	"Blocked By Firewall":     {typ: event.ClientFiltered, status: event.StatusFiltered},
	"Client Disconnected":     {typ: event.Disconnect, status: event.StatusOK, side: event.SideClient, reason: event.ReasonPeerClose},
	"Origin Disconnected":     {typ: event.Disconnect, status: event.StatusOK, side: event.SideOrigin, reason: event.ReasonPeerClose},
	"Client Connection Error": {typ: event.Disconnect, status: event.StatusClientReset, side: event.SideClient, reason: event.ReasonPeerError},
	"Origin Connection Error": {typ: event.Disconnect, status: event.StatusOriginReset, side: event.SideOrigin, reason: event.ReasonPeerError},
	"Timeout":                 {typ: event.Disconnect, status: event.StatusOK, side: event.SideProxy, reason: event.ReasonTimeout},
	"Closed By Proxy":         {typ: event.Disconnect, status: event.StatusOK, side: event.SideProxy, reason: event.ReasonClosed},
	"Session Ended":           {typ: event.Disconnect, status: event.StatusOK, side: event.SideClient, reason: event.ReasonChannelEOF},
	"Disconnected":            {typ: event.Disconnect, status: event.StatusOK},
}

// ccOtherReason is a sessionDisconnectReason prism does not write (a VPN
// client's "User Disconnected"): a disconnect by the client.
var ccOtherReason = cause{typ: event.Disconnect, status: event.StatusOK, side: event.SideClient, reason: event.ReasonPeerClose}

func set(vals ...string) map[string]bool {
	m := make(map[string]bool, len(vals))
	for _, v := range vals {
		m[v] = true
	}
	return m
}
