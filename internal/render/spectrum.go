package render

import (
	"time"

	"github.com/prismproxy/prism/internal/event"
)

// The spectrum_events dataset: Cloudflare Spectrum's 31 fields (seed 000)
// with their documented JSON types. Every lifecycle record except Interim
// is written: one connect, then one disconnect or error record. Byte counts
// are session totals (Spectrum has no deltas).

func init() {
	register(&dataset{
		name:    Spectrum,
		timeFmt: true,
		wants: func(t event.Type) bool {
			return t != event.Interim && t != event.TypeNone
		},
		fields: spectrumFields,
	})
}

var spectrumFields = []field{
	{name: "Application", kind: KindString, str: func(r *rec) string { return r.e.App }},
	{name: "ClientAsn", kind: KindInt, num: func(r *rec) int64 { return int64(r.e.ASN) }},
	{name: "ClientBytes", kind: KindInt, num: func(r *rec) int64 { return r.e.ClientBytes }},
	// Cloudflare's logs write country codes in lower case ("gb"), and its
	// Logpush filter examples compare against lower case too.
	{name: "ClientCountry", kind: KindString, text: func(r *rec, b []byte) []byte { return appendLowerCode(b, r.e.Country) }},
	{name: "ClientIP", kind: KindString, text: func(r *rec, b []byte) []byte { return appendAddr(b, r.e.ClientAddr.Addr(), "") }},
	{name: "ClientMatchedIpFirewall", kind: KindString, str: func(r *rec) string { return orString(r.e.FirewallMatch, event.FirewallUnknown) }},
	{name: "ClientPort", kind: KindInt, num: func(r *rec) int64 { return int64(r.e.ClientAddr.Port()) }},
	{name: "ClientProto", kind: KindString, str: func(r *rec) string { return r.e.ClientProto }},
	{name: "ClientTcpRtt", kind: KindInt, num: func(r *rec) int64 { return int64(r.e.ClientRTT) }},
	{name: "ClientTlsCipher", kind: KindString, str: func(r *rec) string { return tlsCipher(&r.e.ClientTLS) }},
	{name: "ClientTlsClientHelloServerName", kind: KindString, str: func(r *rec) string { return r.e.ClientTLS.ServerName }},
	{name: "ClientTlsProtocol", kind: KindString, str: func(r *rec) string { return tlsProtocol(&r.e.ClientTLS) }},
	{name: "ClientTlsStatus", kind: KindString, str: func(r *rec) string { return tlsStatus(&r.e.ClientTLS) }},
	{name: "ColoCode", kind: KindString, str: func(r *rec) string { return r.node.Colo }},
	{name: "ConnectTimestamp", kind: kindTime, tm: func(r *rec) time.Time { return r.e.ConnectTime }},
	{name: "DisconnectTimestamp", kind: kindTime, tm: func(r *rec) time.Time { return r.e.DisconnectTime }},
	{name: "Event", kind: KindString, str: func(r *rec) string { return r.e.Type.String() }},
	{name: "IpFirewall", kind: KindBool, bl: func(r *rec) bool { return r.e.Firewall }},
	{name: "OriginBytes", kind: KindInt, num: func(r *rec) int64 { return r.e.OriginBytes }},
	{name: "OriginIP", kind: KindString, text: func(r *rec, b []byte) []byte { return appendAddr(b, r.e.OriginAddr.Addr(), "") }},
	{name: "OriginPort", kind: KindInt, num: func(r *rec) int64 { return int64(r.e.OriginAddr.Port()) }},
	{name: "OriginProto", kind: KindString, str: func(r *rec) string { return r.e.OriginProto }},
	{name: "OriginTcpRtt", kind: KindInt, num: func(r *rec) int64 { return int64(r.e.OriginRTT) }},
	{name: "OriginTlsCipher", kind: KindString, str: func(r *rec) string { return tlsCipher(&r.e.OriginTLS) }},
	{name: "OriginTlsFingerprint", kind: KindString, str: func(r *rec) string { return r.e.OriginTLS.Fingerprint }},
	{name: "OriginTlsMode", kind: KindString, str: func(r *rec) string { return orString(r.e.TLSMode, "unknown") }},
	{name: "OriginTlsProtocol", kind: KindString, str: func(r *rec) string { return tlsProtocol(&r.e.OriginTLS) }},
	{name: "OriginTlsStatus", kind: KindString, str: func(r *rec) string { return tlsStatus(&r.e.OriginTLS) }},
	{name: "ProxyProtocol", kind: KindString, str: func(r *rec) string { return orString(r.e.ProxyProtocol, "off") }},
	{name: "Status", kind: KindInt, num: func(r *rec) int64 { return int64(r.e.Status) }},
	{name: "Timestamp", kind: kindTime, tm: func(r *rec) time.Time { return r.e.Time }},
}

// TLS values of a leg that was never filled in are the no-TLS values
// (spec §3): protocol "none", cipher "UNK", status "UNKNOWN".
func tlsProtocol(t *event.TLS) string { return orString(t.Protocol, event.TLSProtocolNone) }
func tlsCipher(t *event.TLS) string   { return orString(t.Cipher, event.TLSCipherUnknown) }
func tlsStatus(t *event.TLS) string   { return orString(t.Status, event.TLSStatusUnknown) }

// appendLowerCode writes a country code in lower case, keeping only ASCII
// letters and digits (the value comes from a GeoIP database; anything else
// in it is dropped rather than escaped).
func appendLowerCode(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'A' && c <= 'Z':
			b = append(b, c+('a'-'A'))
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
			b = append(b, c)
		}
	}
	return b
}
