package render

import (
	"math"
	"net/netip"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prismproxy/prism/internal/event"
)

// The ocsf dataset: OCSF 1.8.0 Network Activity (class_uid 4001, category
// Network Activity, uid 4) with the network_proxy and security_control
// profiles. One record per lifecycle step, periodic records included:
//
//	connect                        activity 1 Open
//	disconnect, normal close,
//	timeout, unreachable, refused  activity 2 Close
//	disconnect, RST, EPIPE, TLS or
//	other read/write error         activity 3 Reset
//	tlsError, resolveOrigin,
//	originError                    activity 4 Fail
//	clientFiltered                 activity 5 Refuse (disposition Blocked)
//	interim                        activity 6 Traffic
//
// The client is src_endpoint, the origin dst_endpoint, the edge listener
// proxy_endpoint. traffic holds the bytes since the previous record of the
// session in the job (the deltas), cumulative_traffic the session totals.
// tls is the client leg, proxy_tls the origin leg. Times are epoch
// milliseconds. The Spectrum Status is status_code; status_detail says
// what it means. Attributes that do not apply to a record are left out
// (OCSF has no "unknown" for them); enumerations use 0 Unknown.
// docs/logging.md has the mapping field by field.

// OCSFVersion is the OCSF schema version the ocsf dataset writes.
const OCSFVersion = "1.8.0"

// OCSF class and category of every record.
const (
	ocsfCategoryUID = 4
	ocsfClassUID    = 4001
)

// OCSF activity ids of Network Activity.
const (
	OCSFActivityOpen    = 1
	OCSFActivityClose   = 2
	OCSFActivityReset   = 3
	OCSFActivityFail    = 4
	OCSFActivityRefuse  = 5
	OCSFActivityTraffic = 6
)

var ocsfActivityNames = [...]string{"Unknown", "Open", "Close", "Reset", "Fail", "Refuse", "Traffic"}

var ocsfTypeNames = func() (t [len(ocsfActivityNames)]string) {
	for i, n := range ocsfActivityNames {
		t[i] = "Network Activity: " + n
	}
	return t
}()

var productVersion atomic.Pointer[string]

// SetProductVersion sets metadata.product.version of ocsf records (the
// prism version); "dev" until it is set.
func SetProductVersion(v string) { productVersion.Store(&v) }

func ocsfProductVersion() string {
	if p := productVersion.Load(); p != nil && *p != "" {
		return *p
	}
	return "dev"
}

func init() {
	register(&dataset{
		name:     OCSF,
		periodic: true,
		wants:    func(t event.Type) bool { return t != event.TypeNone },
		fields:   ocsfFields,
		required: ocsfRequired,
	})
}

// OCSFActivity is the Network Activity activity_id of an event.
func OCSFActivity(e *event.Event) int {
	switch e.Type {
	case event.Connect:
		return OCSFActivityOpen
	case event.Interim:
		return OCSFActivityTraffic
	case event.ClientFiltered:
		return OCSFActivityRefuse
	case event.TLSError, event.ResolveOrigin, event.OriginError:
		return OCSFActivityFail
	case event.Disconnect:
		if ocsfReset(e) {
			return OCSFActivityReset
		}
		return OCSFActivityClose
	}
	return 0
}

// ocsfReset reports a disconnect that OCSF calls a Reset (the connection
// was "abnormally terminated"), decided by the Spectrum status because the
// close reason is too coarse: errstatus gives ReasonPeerError to a refused
// or unreachable peer as well as to an RST.
//
//	444, 499 RST; 448, 498 EPIPE (the peer reset or   Reset
//	abandoned the connection); 490 TLS error (a
//	fatal alert aborted it)
//	200; 445-447, 495-497 timed out, unreachable,     Close
//	refused (the peer went away, nothing tore the
//	connection down)
//	anything else (500, 999)                          Reset when closed on a
//	                                                  read/write error
func ocsfReset(e *event.Event) bool {
	switch e.Status {
	case event.StatusOriginReset, event.StatusClientReset, event.StatusOriginPipe, event.StatusClientPipe,
		event.StatusClientTLSError:
		return true
	case event.StatusOK, event.StatusOriginTimeout, event.StatusClientTimeout,
		event.StatusOriginUnreachable, event.StatusClientUnreachable,
		event.StatusOriginRefused, event.StatusClientRefused:
		return false
	}
	return e.CloseReason == event.ReasonPeerError
}

// ocsfSeverity: 1 Informational for opens, closes and traffic; 2 Low for
// resets, failures and refusals.
func ocsfSeverity(e *event.Event) int {
	switch OCSFActivity(e) {
	case OCSFActivityReset, OCSFActivityFail, OCSFActivityRefuse:
		return 2
	}
	return 1
}

var ocsfSeverityNames = [...]string{"Unknown", "Informational", "Low"}

// ocsfStatus: 1 Success for Status 0 and 200 (and periodic records), 2
// Failure for every other Spectrum status.
func ocsfStatus(e *event.Event) int {
	if e.Type == event.Interim || e.Status == event.StatusConnect || e.Status == event.StatusOK {
		return 1
	}
	return 2
}

var ocsfStatusNames = [...]string{"Unknown", "Success", "Failure"}

// ocsfDisposition is the firewall outcome: 2 Blocked for a refused client,
// 1 Allowed when the firewall was on and let the client through, 0 when the
// firewall played no part (the attributes are then left out).
func ocsfDisposition(e *event.Event) int {
	if e.Type == event.ClientFiltered {
		return 2
	}
	if e.Firewall {
		return 1
	}
	return 0
}

var ocsfDispositionNames = [...]string{"Unknown", "Allowed", "Blocked"}
var ocsfActionNames = [...]string{"Unknown", "Allowed", "Denied"}

func ocsfNoDisposition(r *rec) bool { return ocsfDisposition(r.e) == 0 }

func epochMilli(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

const ocsfNoFilter = "it is a nested object"

// ocsfRequired are the attributes OCSF requires of every Network Activity
// record (base_event's, and src_endpoint for the class's at_least_one of
// src_endpoint / dst_endpoint, dst_endpoint being absent when no origin
// was chosen): written whatever fields a job selects.
var ocsfRequired = []string{"activity_id", "category_uid", "class_uid", "type_uid", "severity_id", "time", "src_endpoint", "metadata"}

var ocsfFields = []field{
	{name: "activity_id", kind: KindInt, num: func(r *rec) int64 { return int64(OCSFActivity(r.e)) }},
	{name: "activity_name", kind: KindString, str: func(r *rec) string { return ocsfActivityNames[OCSFActivity(r.e)] }},
	{name: "category_uid", kind: KindInt, num: func(*rec) int64 { return ocsfCategoryUID }},
	{name: "category_name", kind: KindString, str: func(*rec) string { return "Network Activity" }},
	{name: "class_uid", kind: KindInt, num: func(*rec) int64 { return ocsfClassUID }},
	{name: "class_name", kind: KindString, str: func(*rec) string { return "Network Activity" }},
	{name: "type_uid", kind: KindInt, num: func(r *rec) int64 { return ocsfClassUID*100 + int64(OCSFActivity(r.e)) }},
	{name: "type_name", kind: KindString, str: func(r *rec) string { return ocsfTypeNames[OCSFActivity(r.e)] }},
	{name: "severity_id", kind: KindInt, num: func(r *rec) int64 { return int64(ocsfSeverity(r.e)) }},
	{name: "severity", kind: KindString, str: func(r *rec) string { return ocsfSeverityNames[ocsfSeverity(r.e)] }},
	{name: "time", kind: KindInt, num: func(r *rec) int64 { return epochMilli(r.e.Time) }},
	{name: "start_time", kind: KindInt, num: func(r *rec) int64 { return epochMilli(r.e.StartTime) },
		omit: func(r *rec) bool { return r.e.StartTime.IsZero() }},
	{name: "end_time", kind: KindInt, num: func(r *rec) int64 { return epochMilli(r.e.DisconnectTime) },
		omit: func(r *rec) bool { return !r.e.Type.Terminal() || r.e.DisconnectTime.IsZero() }},
	{name: "duration", kind: KindInt, num: func(r *rec) int64 { return r.e.Duration().Milliseconds() },
		omit: func(r *rec) bool { return r.e.StartTime.IsZero() }},
	{name: "status_id", kind: KindInt, num: func(r *rec) int64 { return int64(ocsfStatus(r.e)) }},
	{name: "status", kind: KindString, str: func(r *rec) string { return ocsfStatusNames[ocsfStatus(r.e)] }},
	{name: "status_code", kind: KindString, text: func(r *rec, b []byte) []byte { return strconv.AppendInt(b, int64(r.e.Status), 10) },
		omit: func(r *rec) bool { return r.e.Type == event.Interim }},
	{name: "status_detail", kind: KindString, str: func(r *rec) string { return ocsfStatusDetail(r.e) },
		omit: func(r *rec) bool { return r.e.Type == event.Interim }},
	{name: "message", kind: KindString, str: func(r *rec) string { return r.e.Type.String() }},
	{name: "app_name", kind: KindString, str: func(r *rec) string { return r.e.App }},
	{name: "is_src_dst_assignment_known", kind: KindBool, bl: func(*rec) bool { return true }},
	{name: "connection_info", kind: KindObject, obj: appendOCSFConnInfo, nofilter: ocsfNoFilter},
	{name: "proxy_connection_info", kind: KindObject, obj: appendOCSFProxyConnInfo, nofilter: ocsfNoFilter,
		omit: func(r *rec) bool { return !ocsfHasOrigin(r.e) }},
	{name: "src_endpoint", kind: KindObject, obj: appendOCSFSrc, nofilter: ocsfNoFilter},
	{name: "dst_endpoint", kind: KindObject, obj: appendOCSFDst, nofilter: ocsfNoFilter,
		omit: func(r *rec) bool { return !ocsfHasOrigin(r.e) && r.e.OriginName == "" }},
	{name: "proxy_endpoint", kind: KindObject, obj: appendOCSFProxy, nofilter: ocsfNoFilter},
	{name: "traffic", kind: KindObject, nofilter: ocsfNoFilter, obj: func(r *rec, b []byte) []byte {
		return appendOCSFTraffic(b, r.e.ClientBytesDelta, r.e.OriginBytesDelta)
	}},
	{name: "cumulative_traffic", kind: KindObject, nofilter: ocsfNoFilter, obj: func(r *rec, b []byte) []byte {
		return appendOCSFTraffic(b, r.e.ClientBytes, r.e.OriginBytes)
	}},
	{name: "tls", kind: KindObject, nofilter: ocsfNoFilter,
		obj:  func(r *rec, b []byte) []byte { return appendOCSFTLS(b, &r.e.ClientTLS) },
		omit: func(r *rec) bool { return !ocsfTLSKnown(&r.e.ClientTLS) }},
	{name: "proxy_tls", kind: KindObject, nofilter: ocsfNoFilter,
		obj:  func(r *rec, b []byte) []byte { return appendOCSFTLS(b, &r.e.OriginTLS) },
		omit: func(r *rec) bool { return !ocsfTLSKnown(&r.e.OriginTLS) }},
	{name: "disposition_id", kind: KindInt, num: func(r *rec) int64 { return int64(ocsfDisposition(r.e)) }, omit: ocsfNoDisposition},
	{name: "disposition", kind: KindString, str: func(r *rec) string { return ocsfDispositionNames[ocsfDisposition(r.e)] }, omit: ocsfNoDisposition},
	{name: "action_id", kind: KindInt, num: func(r *rec) int64 { return int64(ocsfDisposition(r.e)) }, omit: ocsfNoDisposition},
	{name: "action", kind: KindString, str: func(r *rec) string { return ocsfActionNames[ocsfDisposition(r.e)] }, omit: ocsfNoDisposition},
	{name: "metadata", kind: KindObject, obj: appendOCSFMetadata, nofilter: ocsfNoFilter},
	{name: "unmapped", kind: KindObject, obj: appendOCSFUnmapped, nofilter: ocsfNoFilter},
}

func ocsfHasOrigin(e *event.Event) bool { return e.OriginAddr.IsValid() || e.OriginPath != "" }

// ocsfTLSKnown reports whether a leg gets a tls object: TLS was spoken and
// its protocol version is known. tls.version is required and means the
// negotiated version, so a leg whose version prism could not tell (a
// failed handshake; a passthrough app, which only peeks the ClientHello)
// has no tls object rather than one with the placeholder "unknown"; its
// SNI and fingerprint go to unmapped (appendOCSFUnmappedTLS).
func ocsfTLSKnown(t *event.TLS) bool {
	return t.Protocol != "" && t.Protocol != event.TLSProtocolNone && t.Protocol != event.TLSProtocolUnknown
}

// ocsfStatusDetail is the detail text of the record, or what the Spectrum
// status means when there is none.
func ocsfStatusDetail(e *event.Event) string {
	if e.Detail != "" {
		return e.Detail
	}
	return StatusText(e.Status)
}

// StatusText is what a Spectrum status code means (spec §2).
func StatusText(status int) string {
	switch status {
	case 0:
		return "connection opened"
	case 200:
		return "normal close"
	case 400:
		return "invalid SNI in the ClientHello"
	case 403:
		return "client matched a firewall block rule"
	case 443:
		return "client TLS handshake failed"
	case 444:
		return "origin sent RST"
	case 445:
		return "origin connection timed out"
	case 446:
		return "origin host unreachable"
	case 447:
		return "origin refused reading or writing"
	case 448:
		return "broken pipe writing the origin"
	case 490:
		return "client TLS error on an established connection"
	case 495:
		return "client refused"
	case 496:
		return "client host unreachable"
	case 497:
		return "client timed out"
	case 498:
		return "broken pipe writing the client"
	case 499:
		return "client sent RST"
	case 500:
		return "internal error"
	case 503:
		return "keyless TLS handshake error"
	case 520:
		return "unknown origin connection error"
	case 521:
		return "origin refused the connection"
	case 522:
		return "origin connect timed out"
	case 523:
		return "origin unreachable"
	case 524:
		return "origin connect failed, internal error"
	case 530, 533:
		return "internal error resolving the origin"
	case 531:
		return "origin name could not be resolved"
	case 532:
		return "origin resolved to a blocked IP"
	case 540:
		return "edge TLS misconfigured"
	}
	return "unknown"
}

func ocsfProtoNum(p string) int64 {
	switch p {
	case event.ProtoTCP:
		return 6
	case event.ProtoUDP:
		return 17
	}
	return 0
}

func appendOCSFConnInfo(r *rec, b []byte) []byte {
	e := r.e
	return appendOCSFConn(b, e, e.ClientProto, e.ClientAddr, 1, "Inbound")
}

func appendOCSFProxyConnInfo(r *rec, b []byte) []byte {
	e := r.e
	return appendOCSFConn(b, e, e.OriginProto, e.OriginAddr, 2, "Outbound")
}

// appendOCSFConn writes a connection_info object for one leg of e.
func appendOCSFConn(b []byte, e *event.Event, proto string, addr netip.AddrPort, dirID int64, dir string) []byte {
	b = append(b, '{')
	b = kv(b, true, "uid")
	b = append(b, '"')
	b = e.SessionID.AppendHex(b)
	b = append(b, '"')
	b = appendOCSFProto(b, proto, addr.Addr().Unmap().Is4(), addr.IsValid())
	b = kvInt(b, "direction_id", dirID)
	b = kvString(b, "direction", dir)
	return append(b, '}')
}

func appendOCSFProto(b []byte, proto string, v4, ip bool) []byte {
	if proto != "" {
		b = kvString(b, "protocol_name", proto)
	}
	if n := ocsfProtoNum(proto); n != 0 {
		b = kvInt(b, "protocol_num", n)
	}
	if ip {
		v := int64(6)
		if v4 {
			v = 4
		}
		b = kvInt(b, "protocol_ver_id", v)
		if v == 4 {
			b = kvString(b, "protocol_ver", "Internet Protocol version 4 (IPv4)")
		} else {
			b = kvString(b, "protocol_ver", "Internet Protocol version 6 (IPv6)")
		}
	}
	return b
}

// appendOCSFSrc writes the client: address and port (after an inbound PROXY
// header), country and AS number; a unix-socket client is named by its
// socket path. autonomous_system.number is an integer_t (32-bit signed),
// so an AS number above 2^31-1 (the private 4200000000-4294967294 range
// among them) is left out here and written to unmapped.client_asn.
func appendOCSFSrc(r *rec, b []byte) []byte {
	e := r.e
	b = append(b, '{')
	if e.ClientAddr.IsValid() {
		b = kv(b, true, "ip")
		b = append(b, '"')
		b = e.ClientAddr.Addr().Unmap().AppendTo(b)
		b = append(b, '"')
		if e.ClientAddr.Port() != 0 {
			b = kvInt(b, "port", int64(e.ClientAddr.Port()))
		}
	} else {
		b = AppendJSONString(kv(b, true, "name"), orString(e.ClientPath, "unix"))
	}
	if e.Country != "" {
		b = kv(b, false, "location")
		b = append(b, `{"country":"`...)
		b = appendUpperCode(b, e.Country, "")
		b = append(b, '"', '}')
	}
	if e.ASN != 0 && e.ASN <= math.MaxInt32 {
		b = kv(b, false, "autonomous_system")
		b = append(b, `{"number":`...)
		b = strconv.AppendUint(b, uint64(e.ASN), 10)
		b = append(b, '}')
	}
	return append(b, '}')
}

// appendOCSFDst writes the origin: the address dialed (or blocked), the
// configured name it was resolved from, or a unix socket path.
func appendOCSFDst(r *rec, b []byte) []byte {
	e := r.e
	b = append(b, '{')
	first := true
	if e.OriginAddr.IsValid() {
		b = kv(b, true, "ip")
		b = append(b, '"')
		b = e.OriginAddr.Addr().Unmap().AppendTo(b)
		b = append(b, '"')
		b = kvInt(b, "port", int64(e.OriginAddr.Port()))
		first = false
	}
	if e.OriginName != "" {
		b = AppendJSONString(kv(b, first, "hostname"), e.OriginName)
		first = false
	}
	if e.OriginPath != "" {
		b = AppendJSONString(kv(b, first, "name"), e.OriginPath)
	}
	return append(b, '}')
}

// appendOCSFProxy writes the edge: the listener address that accepted the
// client, the node id as name, the app as svc_name.
func appendOCSFProxy(r *rec, b []byte) []byte {
	e := r.e
	b = append(b, '{')
	b = AppendJSONString(kv(b, true, "svc_name"), e.App)
	if e.LocalAddr.IsValid() {
		b = kv(b, false, "ip")
		b = append(b, '"')
		b = e.LocalAddr.Addr().Unmap().AppendTo(b)
		b = append(b, '"')
		b = kvInt(b, "port", int64(e.LocalAddr.Port()))
	}
	if r.node.ID != "" {
		b = kvString(b, "name", r.node.ID)
	}
	if r.node.Colo != "" {
		b = append(b, `,"location":{"region":`...)
		b = AppendJSONString(b, r.node.Colo)
		b = append(b, '}')
	}
	return append(b, '}')
}

// appendOCSFTraffic writes a network_traffic object: bytes_out went from
// the client (source) towards the origin, bytes_in came back to it.
func appendOCSFTraffic(b []byte, fromClient, fromOrigin int64) []byte {
	b = append(b, `{"bytes_in":`...)
	b = strconv.AppendInt(b, fromOrigin, 10)
	b = kvInt(b, "bytes_out", fromClient)
	b = kvInt(b, "bytes", fromClient+fromOrigin)
	return append(b, '}')
}

// appendOCSFTLS writes one TLS leg: the protocol as prism spells it
// (TLSv1.3), the cipher unless unknown, the SNI, and for the origin leg the
// SHA-256 fingerprint of the leaf certificate. prism does not keep the
// leaf's issuer or serial number, which the certificate object requires;
// they are written as empty strings.
func appendOCSFTLS(b []byte, t *event.TLS) []byte {
	b = append(b, `{"version":`...)
	b = AppendJSONString(b, t.Protocol)
	if t.Cipher != "" && t.Cipher != event.TLSCipherUnknown {
		b = kvString(b, "cipher", t.Cipher)
	}
	if t.ServerName != "" {
		b = kvString(b, "sni", t.ServerName)
	}
	if t.Fingerprint != "" {
		b = append(b, `,"certificate":{"fingerprints":[{"algorithm_id":3,"algorithm":"SHA-256","value":`...)
		b = AppendJSONString(b, t.Fingerprint)
		b = append(b, `}],"issuer":"","serial_number":""}`...)
	}
	return append(b, '}')
}

func appendOCSFMetadata(r *rec, b []byte) []byte {
	b = append(b, `{"version":"`+OCSFVersion+`","product":{"name":"prism","vendor_name":"prism","version":`...)
	b = AppendJSONString(b, ocsfProductVersion())
	b = append(b, `},"profiles":["network_proxy","security_control"],"log_name":"`+OCSF+`"`...)
	if r.e.Type.Terminal() || r.e.Type == event.Connect {
		b = append(b, `,"correlation_uid":"`...)
		b = r.e.SessionID.AppendHex(b)
		b = append(b, '"')
	}
	return append(b, '}')
}

// appendOCSFUnmapped keeps the prism values that OCSF has no attribute for:
// the Spectrum event name, the edge location code, the TLS mode, the PROXY
// protocol sent to the origin, the firewall match, the TLS statuses, the
// closing side and reason, the round-trip times in nanoseconds, the SNI
// and fingerprint of a TLS leg that has no tls object, and the client's AS
// number when it does not fit autonomous_system.number.
func appendOCSFUnmapped(r *rec, b []byte) []byte {
	e := r.e
	b = append(b, `{"event":`...)
	b = AppendJSONString(b, e.Type.String())
	b = kvString(b, "colo", r.node.Colo)
	b = kvString(b, "tls_mode", orString(e.TLSMode, "unknown"))
	b = kvString(b, "proxy_protocol", orString(e.ProxyProtocol, "off"))
	b = kv(b, false, "ip_firewall")
	b = strconv.AppendBool(b, e.Firewall)
	b = kvString(b, "firewall_match", orString(e.FirewallMatch, event.FirewallUnknown))
	b = kvString(b, "client_tls_status", tlsStatus(&e.ClientTLS))
	b = kvString(b, "origin_tls_status", tlsStatus(&e.OriginTLS))
	b = kvString(b, "close_side", e.CloseSide.String())
	b = kvString(b, "close_reason", e.CloseReason.String())
	b = kvInt(b, "client_tcp_rtt_ns", int64(e.ClientRTT))
	b = kvInt(b, "origin_tcp_rtt_ns", int64(e.OriginRTT))
	b = appendOCSFUnmappedTLS(b, &e.ClientTLS, "client_tls_sni", "")
	b = appendOCSFUnmappedTLS(b, &e.OriginTLS, "origin_tls_sni", "origin_tls_fingerprint")
	if e.ASN > math.MaxInt32 {
		b = kvInt(b, "client_asn", int64(e.ASN))
	}
	return append(b, '}')
}

// appendOCSFUnmappedTLS keeps the SNI (and fingerprint) of a leg that has
// no tls / proxy_tls object because its version is unknown, so that a
// failed handshake or a passthrough connection still says which name the
// client asked for or the edge sent.
func appendOCSFUnmappedTLS(b []byte, t *event.TLS, sniKey, fpKey string) []byte {
	if ocsfTLSKnown(t) {
		return b
	}
	if t.ServerName != "" {
		b = kvString(b, sniKey, t.ServerName)
	}
	if fpKey != "" && t.Fingerprint != "" {
		b = kvString(b, fpKey, t.Fingerprint)
	}
	return b
}
