package render

import (
	"time"

	"github.com/prismproxy/prism/internal/event"
)

// The edgeone_l4 dataset: Tencent EdgeOne's 13 L4 proxy log fields (seed
// 003), spelled exactly as EdgeOne spells them (DisconnetReason and
// DisconnetTimeStamp are misspelled on purpose). EdgeOne writes one record
// per log cycle while a connection lives and a final record when it ends,
// but none at connect. Byte counts are the deltas since the previous record
// of the session in the same job (Event.ClientBytesDelta/OriginBytesDelta,
// filled by the log job). Empty values are "-" for strings and -1 for
// integers; times are ISO 8601 in UTC with seconds precision.

func init() {
	register(&dataset{
		name:     EdgeOne,
		periodic: true,
		wants: func(t event.Type) bool {
			return t == event.Interim || t.Terminal()
		},
		fields: edgeoneFields,
	})
}

const edgeoneEmpty = "-"

var edgeoneFields = []field{
	{name: "ClientRealIP", kind: KindString, text: func(r *rec, b []byte) []byte { return appendAddr(b, r.e.ClientAddr.Addr(), edgeoneEmpty) }},
	{name: "ClientRegion", kind: KindString, text: func(r *rec, b []byte) []byte { return appendUpperCode(b, r.e.Country, edgeoneEmpty) }},
	// When the edge accepted the client (TCP) or got the first datagram
	// (UDP), also for sessions that never reached an origin (spec §7.4);
	// Spectrum's ConnectTimestamp stays "both legs up".
	{name: "ConnectTimeStamp", kind: KindString, text: func(r *rec, b []byte) []byte {
		if r.e.StartTime.IsZero() {
			return appendISO(b, r.e.Time)
		}
		return appendISO(b, r.e.StartTime)
	}},
	{name: "DisconnetReason", kind: KindString, str: func(r *rec) string { return EdgeOneReason(r.e) }},
	{name: "DisconnetTimeStamp", kind: KindString, text: func(r *rec, b []byte) []byte {
		if !r.e.Type.Terminal() {
			return append(b, edgeoneEmpty...)
		}
		return appendISO(b, r.e.DisconnectTime)
	}},
	{name: "EdgeIP", kind: KindString, text: func(r *rec, b []byte) []byte { return appendAddr(b, r.e.LocalAddr.Addr(), edgeoneEmpty) }},
	{name: "ForwardPort", kind: KindInt, num: func(r *rec) int64 {
		if !r.e.LocalAddr.IsValid() {
			return -1
		}
		return int64(r.e.LocalAddr.Port())
	}},
	{name: "ForwardProtocol", kind: KindString, str: func(r *rec) string { return edgeoneProto(r.e.ClientProto) }},
	{name: "LogTimeStamp", kind: KindString, text: func(r *rec, b []byte) []byte { return appendISO(b, r.e.Time) }},
	{name: "ReceivedBytes", kind: KindInt, num: func(r *rec) int64 { return r.e.ClientBytesDelta }},
	{name: "SentBytes", kind: KindInt, num: func(r *rec) int64 { return r.e.OriginBytesDelta }},
	{name: "ServiceID", kind: KindString, str: func(r *rec) string { return orString(r.e.App, edgeoneEmpty) }},
	{name: "SessionID", kind: KindString, text: func(r *rec, b []byte) []byte {
		if r.e.SessionID.IsZero() {
			return append(b, edgeoneEmpty...)
		}
		return r.e.SessionID.AppendHex(b)
	}},
}

// edgeoneProto is EdgeOne's ForwardProtocol (and CloudConnexa's
// sessionProtocol, which writes null where this writes "-"): TCP or UDP. Neither enumeration has unix sockets, so a
// unix stream is reported as the stream it is, TCP (spec §7.6).
func edgeoneProto(p string) string {
	switch p {
	case event.ProtoTCP, event.ProtoUnix:
		return "TCP"
	case event.ProtoUDP:
		return "UDP"
	}
	return edgeoneEmpty
}

// appendISO writes t as ISO 8601 UTC with seconds precision, "-" when zero.
func appendISO(b []byte, t time.Time) []byte {
	if t.IsZero() {
		return append(b, edgeoneEmpty...)
	}
	return appendUTCSeconds(b, t, false)
}

// appendUpperCode writes an ISO-3166 code in upper case (letters and digits
// only), or alt when there is none.
func appendUpperCode(b []byte, s, alt string) []byte {
	n := len(b)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z':
			b = append(b, c-('a'-'A'))
		case c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
			b = append(b, c)
		}
	}
	if len(b) == n {
		b = append(b, alt...)
	}
	return b
}

var edgeoneReasons = [...]string{
	event.ReasonPeerClose:  "net_exception_peer_close",
	event.ReasonPeerError:  "net_exception_peer_error",
	event.ReasonTimeout:    "net_exception_timeout",
	event.ReasonClosed:     "net_exception_closed",
	event.ReasonCreatePeer: "create_peer_channel_exception",
	event.ReasonChannelEOF: "channel_eof_exception",
}

// edgeoneReasonText holds every "direction:reason" string so that
// rendering one concatenates nothing: [0] is "down:", [1] is "up:".
var edgeoneReasonText = func() (t [2][len(edgeoneReasons)]string) {
	for i, r := range edgeoneReasons {
		if r == "" {
			continue
		}
		t[0][i] = "down:" + r
		t[1][i] = "up:" + r
	}
	return t
}()

// EdgeOneReason maps the closing cause of a terminal event to EdgeOne's
// DisconnetReason (spec §4), "-" for a record of a session that is still
// open.
//
// Direction: a close on the client leg is "down:", on the origin leg "up:".
// A close by the proxy itself (idle timeout, shutdown drain, an operator)
// is written "down:": from the edge's point of view it is the client-facing
// connection that the edge ends, which is what EdgeOne reports for its own
// closes. A record without a side or reason gets one from its event type:
// origin-leg failures (resolveOrigin, originError) are
// "up:create_peer_channel_exception", a firewall refusal is
// "down:net_exception_closed", an edge TLS failure
// "down:net_exception_peer_error", a plain disconnect
// "down:net_exception_peer_close".
func EdgeOneReason(e *event.Event) string {
	if !e.Type.Terminal() {
		return edgeoneEmpty
	}
	reason, side := e.CloseReason, e.CloseSide
	if reason == event.ReasonNone || int(reason) >= len(edgeoneReasons) {
		switch e.Type {
		case event.ResolveOrigin, event.OriginError:
			reason, side = event.ReasonCreatePeer, event.SideOrigin
		case event.ClientFiltered:
			reason = event.ReasonClosed
		case event.TLSError:
			reason = event.ReasonPeerError
		default:
			reason = event.ReasonPeerClose
		}
	}
	dir := 0
	if side == event.SideOrigin || (side == event.SideNone && reason == event.ReasonCreatePeer) {
		dir = 1
	}
	return edgeoneReasonText[dir][reason]
}
