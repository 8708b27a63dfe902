package render

import (
	"net/netip"
	"strconv"
	"time"

	"github.com/prismproxy/prism/internal/event"
)

// The cloudconnexa dataset: OpenVPN CloudConnexa log streaming records
// (spec §5, seeds 002 and 004). Every record is the header envelope with an
// event-specific object under "log":
//
//   - flow-established when a flow is decided: at connect (allowed true)
//     and at clientFiltered (allowed false);
//   - client-disconnected at the terminal record of every session that was
//     not filtered (disconnect, tlsError, resolveOrigin, originError).
//
// The keys and their order are the seeds'. Two details follow the seeds
// over the prose: the header names the client address "clientPublicIp" in
// client-disconnected records (seed 002) and "publicIp" in flow-established
// records (seed 004); and values that mean nothing for a proxy client
// (device UUID, OS, tunnel addresses, the VPN user/group identities of the
// header and of the flow's source) are JSON null, not invented.

// CloudConnexaConfig holds the envelope values of the cloudconnexa dataset.
type CloudConnexaConfig struct {
	// CloudID is the header's cloudId (the tenant). Default "prism".
	CloudID string `yaml:"cloud_id"`
	// Service is the header's service. Default "CloudConnexa".
	Service string `yaml:"service"`
	// RegionName overrides the node's region name (gatewayRegionName,
	// source/destinationGatewayRegionName).
	RegionName string `yaml:"region_name"`
	// Categories of the two event names.
	Categories CloudConnexaCategories `yaml:"categories"`
}

// CloudConnexaCategories sets the header's category per event name.
type CloudConnexaCategories struct {
	FlowEstablished    string `yaml:"flow_established"`    // default Activity.AV
	ClientDisconnected string `yaml:"client_disconnected"` // default Security.Logins
}

func (c *CloudConnexaConfig) setDefaults() {
	if c.CloudID == "" {
		c.CloudID = "prism"
	}
	if c.Service == "" {
		c.Service = "CloudConnexa"
	}
	if c.Categories.FlowEstablished == "" {
		c.Categories.FlowEstablished = "Activity.AV"
	}
	if c.Categories.ClientDisconnected == "" {
		c.Categories.ClientDisconnected = "Security.Logins"
	}
}

// CloudConnexa event names.
const (
	FlowEstablished    = "flow-established"
	ClientDisconnected = "client-disconnected"
)

func init() {
	register(&dataset{
		name: CloudConnexa,
		wants: func(t event.Type) bool {
			return t == event.Connect || t.Terminal()
		},
		fields: cloudconnexaFields,
	})
}

const ccNoIdentity = "a proxy client has no CloudConnexa identity; the value is always null"

func ccEventName(e *event.Event) string {
	if e.Type == event.Connect || e.Type == event.ClientFiltered {
		return FlowEstablished
	}
	return ClientDisconnected
}

func alwaysNull(*rec) bool   { return true }
func nullString(*rec) string { return "" }

var cloudconnexaFields = []field{
	{name: "CloudConnexaLogVersion", kind: KindInt, num: func(*rec) int64 { return 1 }},
	{name: "timestamp", kind: KindString, text: func(r *rec, b []byte) []byte { return appendMicro(b, r.e.Time) }},
	{name: "cloudId", kind: KindString, str: func(r *rec) string { return r.cc.CloudID }},
	{name: "service", kind: KindString, str: func(r *rec) string { return r.cc.Service }},
	{name: "traceId", kind: KindString, text: func(r *rec, b []byte) []byte { return appendUUID(b, &r.trace) },
		nofilter: "it is a fresh random UUID per record"},
	{name: "publicIp", kind: KindString,
		text: func(r *rec, b []byte) []byte { return appendAddr(b, r.e.ClientAddr.Addr(), "") }, // "" for a unix socket (spec §7.6)
		key: func(r *rec) string {
			if ccEventName(r.e) == ClientDisconnected {
				return "clientPublicIp"
			}
			return "publicIp"
		}},
	{name: "initiator", kind: KindString, str: nullString, null: alwaysNull, nofilter: ccNoIdentity},
	{name: "initiatorType", kind: KindString, str: nullString, null: alwaysNull, nofilter: ccNoIdentity},
	{name: "initiatorName", kind: KindString, str: nullString, null: alwaysNull, nofilter: ccNoIdentity},
	{name: "parentEntity", kind: KindString, str: nullString, null: alwaysNull, nofilter: ccNoIdentity},
	{name: "parentEntityType", kind: KindString, str: nullString, null: alwaysNull, nofilter: ccNoIdentity},
	{name: "parentEntityName", kind: KindString, str: nullString, null: alwaysNull, nofilter: ccNoIdentity},
	{name: "category", kind: KindString, str: func(r *rec) string {
		if ccEventName(r.e) == FlowEstablished {
			return r.cc.Categories.FlowEstablished
		}
		return r.cc.Categories.ClientDisconnected
	}},
	{name: "eventName", kind: KindString, str: func(r *rec) string { return ccEventName(r.e) }},
	{name: "log", kind: KindObject, obj: appendCCLog, nofilter: "it is a nested object"},
}

func (r *rec) regionName() string {
	if r.cc.RegionName != "" {
		return r.cc.RegionName
	}
	return r.node.RegionName
}

// appendMicro writes t as RFC 3339 with microseconds in UTC (CloudConnexa's
// "2023-12-20T10:45:14.000000Z").
func appendMicro(b []byte, t time.Time) []byte {
	if t.IsZero() {
		t = time.Unix(0, 0)
	}
	return appendUTCSeconds(b, t, true)
}

// small helpers that append `"key":value` pairs.
func kv(b []byte, first bool, key string) []byte {
	if !first {
		b = append(b, ',')
	}
	b = append(b, '"')
	b = append(b, key...)
	return append(b, '"', ':')
}

func kvNull(b []byte, key string) []byte { return append(kv(b, false, key), "null"...) }

func kvString(b []byte, key, v string) []byte { return AppendJSONString(kv(b, false, key), v) }

func kvInt(b []byte, key string, v int64) []byte {
	return strconv.AppendInt(kv(b, false, key), v, 10)
}

// kvAddr writes an address as a String field; a unix socket has none,
// which is "" (spec §7.6: unknown without breaking the seed's type).
func kvAddr(b []byte, key string, a netip.Addr) []byte {
	b = kv(b, false, key)
	if !a.IsValid() {
		return append(b, '"', '"')
	}
	b = append(b, '"')
	b = a.Unmap().AppendTo(b)
	return append(b, '"')
}

func appendCCLog(r *rec, b []byte) []byte {
	if ccEventName(r.e) == FlowEstablished {
		return appendCCFlow(r, b)
	}
	return appendCCDisconnect(r, b)
}

// appendCCFlow writes the flow-established object (seed 004 key order).
// Source is the client, destination the origin, or the edge listener for a
// filtered flow (no origin was chosen). The destination entity is the
// prism application; the source's VPN identities are null.
func appendCCFlow(r *rec, b []byte) []byte {
	e := r.e
	b = append(b, '{')
	b = kv(b, true, "clientSessionId")
	b = append(b, '"')
	b = e.SessionID.AppendHex(b)
	b = append(b, '"')
	b = kvNull(b, "sourceParentId")
	b = kvNull(b, "sourceParentType")
	b = kvNull(b, "sourceEntityId")
	b = kvNull(b, "sourceEntityType")
	b = kvAddr(b, "sourceIp", e.ClientAddr.Addr())
	b = kvString(b, "sourceGatewayRegion", r.node.Colo)
	b = kvNull(b, "destinationParentId")
	b = kvNull(b, "destinationParentType")
	b = kvString(b, "destinationEntityId", e.App)
	b = kvString(b, "destinationEntityType", "Application")
	// The edge listener stands in only for a refused flow, which reached
	// no origin (spec §5). An allowed flow's origin is always known live
	// (an address, or a unix socket: "" and 0, §7.6); one converted from a
	// source without it is unknown, "" and 0 too: the edge address there
	// would be read back as an origin the session never had.
	dst := e.OriginAddr
	if e.Type == event.ClientFiltered {
		dst = e.LocalAddr
	}
	b = kvAddr(b, "destinationEntityIp", dst.Addr())
	b = kvInt(b, "destinationPort", int64(dst.Port())) // 0 for a unix socket (spec §7.6)
	b = kvString(b, "destinationGatewayRegion", r.node.Colo)
	b = kv(b, false, "allowed")
	b = strconv.AppendBool(b, e.Type != event.ClientFiltered)
	// tcp|udp only: a unix stream is reported as TCP (spec §7.6). A
	// transport that is not known (a converted record without one; live
	// records always have one) is null, not an invented tcp.
	switch e.ClientProto {
	case event.ProtoUDP:
		b = kvString(b, "protocolName", event.ProtoUDP)
		b = kvInt(b, "protocol", 17)
	case event.ProtoTCP, event.ProtoUnix:
		b = kvString(b, "protocolName", event.ProtoTCP)
		b = kvInt(b, "protocol", 6)
	default:
		b = kvNull(b, "protocolName")
		b = kvNull(b, "protocol")
	}
	b = kvString(b, "sourceGatewayRegionName", r.regionName())
	b = kvString(b, "destinationGatewayRegionName", r.regionName())
	b = kvNull(b, "sourceParentName")
	b = kvNull(b, "sourceEntityName")
	b = kvString(b, "destinationEntityName", e.App)
	b = kvNull(b, "destinationParentName")
	return append(b, '}')
}

// appendCCDisconnect writes the client-disconnected object (seed 002 key
// order). Bytes are session totals: sessionBytesIn went to the client (read
// from the origin), sessionBytesOut came from the client.
func appendCCDisconnect(r *rec, b []byte) []byte {
	e := r.e
	b = append(b, '{')
	b = kv(b, true, "sessionBytesIn")
	b = strconv.AppendInt(b, e.OriginBytes, 10)
	b = kvInt(b, "sessionBytesOut", e.ClientBytes)
	b = kvNull(b, "clientUUID")
	b = kvString(b, "sessionDisconnectReason", CloudConnexaReason(e))
	b = kvNull(b, "clientOsType")
	b = kvNull(b, "clientOsVersion")
	// TCP|UDP (seed 002 types it String); an unknown transport is null:
	// EdgeOne's "-" (edgeoneProto) is no CloudConnexa value
	switch e.ClientProto {
	case event.ProtoTCP, event.ProtoUnix, event.ProtoUDP:
		b = kvString(b, "sessionProtocol", edgeoneProto(e.ClientProto))
	default:
		b = kvNull(b, "sessionProtocol")
	}
	b = kvAddr(b, "clientPublicIp", e.ClientAddr.Addr())
	b = kvInt(b, "sessionDurationSeconds", int64(e.Duration()/time.Second))
	end := e.DisconnectTime
	if end.IsZero() {
		end = e.Time
	}
	b = kv(b, false, "sessionEndTime")
	b = append(b, '"')
	b = appendMicro(b, end)
	b = append(b, '"')
	b = kv(b, false, "sessionStartTime")
	b = append(b, '"')
	b = appendMicro(b, e.StartTime)
	b = append(b, '"')
	b = kvNull(b, "clientTunnelIpV4")
	b = kvNull(b, "clientTunnelIpV6")
	b = kv(b, false, "clientSessionId")
	b = append(b, '"')
	b = e.SessionID.AppendHex(b)
	b = append(b, '"')
	b = kvString(b, "gatewayRegionName", r.regionName())
	b = kvString(b, "gatewayRegion", r.node.Colo)
	b = kvString(b, "gatewayId", r.node.ID)
	b = kvNull(b, "sessionTunnelProtocol")
	if e.Detail == "" {
		b = kvNull(b, "sessionDisconnectReasonDescription")
	} else {
		b = kvString(b, "sessionDisconnectReasonDescription", e.Detail)
	}
	return append(b, '}')
}

// CloudConnexaReason is the short sessionDisconnectReason text of a
// terminal event.
func CloudConnexaReason(e *event.Event) string {
	switch e.Type {
	case event.TLSError:
		return "TLS Handshake Failed"
	case event.ResolveOrigin:
		return "Origin Resolve Failed"
	case event.OriginError:
		return "Origin Connect Failed"
	case event.ClientFiltered:
		return "Blocked By Firewall"
	}
	client := e.CloseSide != event.SideOrigin
	switch e.CloseReason {
	case event.ReasonPeerClose:
		if client {
			return "Client Disconnected"
		}
		return "Origin Disconnected"
	case event.ReasonPeerError:
		if client {
			return "Client Connection Error"
		}
		return "Origin Connection Error"
	case event.ReasonTimeout:
		return "Timeout"
	case event.ReasonClosed:
		return "Closed By Proxy"
	case event.ReasonCreatePeer:
		return "Origin Connect Failed"
	case event.ReasonChannelEOF:
		return "Session Ended"
	}
	return "Disconnected"
}
