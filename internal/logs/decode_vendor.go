package logs

import (
	"encoding/hex"
	"net/netip"
	"strings"
	"time"

	"github.com/prismproxy/prism/internal/event"
	"github.com/prismproxy/prism/internal/render"
)

// ---- edgeone_l4 ------------------------------------------------------

// Field indexes of edgeone_l4 (render's order; checked in init).
const (
	eoClientRealIP = iota
	eoClientRegion
	eoConnectTimeStamp
	eoDisconnetReason
	eoDisconnetTimeStamp
	eoEdgeIP
	eoForwardPort
	eoForwardProtocol
	eoLogTimeStamp
	eoReceivedBytes
	eoSentBytes
	eoServiceID
	eoSessionID
)

const eoEmpty = "-"

// eoTime reads an ISO 8601 UTC time, "-" for none.
func (d *decoder) eoTime(m *member) time.Time {
	s, ok := d.getStr(m)
	if !ok || s == eoEmpty {
		return time.Time{}
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		d.bad(string(m.key), "%q is not an ISO 8601 timestamp", s)
		return time.Time{}
	}
	return t.UTC()
}

func (d *decoder) eoStr(m *member) string {
	s, _ := d.getStr(m)
	if s == eoEmpty {
		return ""
	}
	return s
}

func (d *decoder) eoAddr(m *member) netip.Addr {
	return d.getIP(m, eoEmpty)
}

func (d *decoder) edgeone(ms []member, out *Decoded) {
	e := &out.Event
	var edgeIP netip.Addr
	port := int64(-1)
	reason, disc := "", time.Time{}
	reasonSet := false
	for i := range ms {
		m := &ms[i]
		if !d.mark(m.key, out) || !d.needed(m) {
			continue
		}
		switch d.cur {
		case eoClientRealIP:
			if a := d.eoAddr(m); a.IsValid() {
				e.ClientAddr = netip.AddrPortFrom(a, 0)
				e.PeerAddr = e.ClientAddr
			}
		case eoClientRegion:
			s := d.eoStr(m)
			if s != "" && !isCountry(s) {
				d.warn("ClientRegion", "%q is not a two-letter ISO-3166 code", s)
			}
			e.Country = strings.ToUpper(s)
		case eoConnectTimeStamp:
			e.StartTime = d.eoTime(m)
		case eoDisconnetReason:
			reason, reasonSet = d.eoStr(m), true
		case eoDisconnetTimeStamp:
			disc = d.eoTime(m)
		case eoEdgeIP:
			edgeIP = d.eoAddr(m)
		case eoForwardPort:
			if n, ok := d.getInt(m); ok {
				if n < -1 || n > 65535 {
					d.bad("ForwardPort", "port %d is outside 0..65535 (or -1)", n)
				}
				port = n
			}
		case eoForwardProtocol:
			switch s := d.eoStr(m); s {
			case "TCP":
				e.ClientProto = event.ProtoTCP
			case "UDP":
				e.ClientProto = event.ProtoUDP
			case "UNIX":
				// written by prism before spec §7.6
				d.warn("ForwardProtocol", `"UNIX" is not an EdgeOne protocol (TCP, UDP)`)
				e.ClientProto = event.ProtoUnix
			case "":
			default:
				d.warn("ForwardProtocol", "%q is not one of TCP, UDP", s)
				e.ClientProto = strings.ToLower(s)
			}
		case eoLogTimeStamp:
			e.Time = d.eoTime(m)
		case eoReceivedBytes:
			n, _ := d.getInt(m)
			e.ClientBytesDelta = max(n, 0)
		case eoSentBytes:
			n, _ := d.getInt(m)
			e.OriginBytesDelta = max(n, 0)
		case eoServiceID:
			e.App = d.eoStr(m)
		case eoSessionID:
			if s := d.eoStr(m); s != "" {
				e.SessionID, _ = parseID(s)
				out.sessionKnown = true
			}
		}
	}
	if edgeIP.IsValid() {
		p := uint16(0)
		if port >= 0 {
			p = uint16(port)
		}
		e.LocalAddr = netip.AddrPortFrom(edgeIP, p)
	}
	e.OriginProto = e.ClientProto
	e.Type = event.Interim
	if reasonSet && reason != "" {
		dir, r, ok := strings.Cut(reason, ":")
		rs, known := edgeoneReasons[r]
		if !ok || (dir != "up" && dir != "down") || !known {
			d.bad("DisconnetReason", "%q is not direction:reason (up|down, spec §4)", reason)
		}
		c := edgeoneCause(dir == "up", rs)
		e.Type, e.Status, e.CloseSide, e.CloseReason = c.typ, c.status, c.side, c.reason
		if disc.IsZero() {
			d.warn("DisconnetTimeStamp", "a final record (DisconnetReason %s) without a disconnect time", reason)
			disc = e.Time
		}
		e.DisconnectTime = disc
	} else if !disc.IsZero() {
		d.warn("DisconnetReason", "empty in a record with a disconnect time")
	}
	// ConnectTimeStamp is when the edge accepted the client (§7.4); for a
	// session that reached its origin that is the best connect time there is.
	if e.Type != event.OriginError {
		e.ConnectTime = e.StartTime
	}
}

// ---- cloudconnexa ----------------------------------------------------

// The keys of the two log objects (seeds 002, 004).
var ccFlowKeys = []string{"clientSessionId", "sourceParentId", "sourceParentType", "sourceEntityId",
	"sourceEntityType", "sourceIp", "sourceGatewayRegion", "destinationParentId", "destinationParentType",
	"destinationEntityId", "destinationEntityType", "destinationEntityIp", "destinationPort",
	"destinationGatewayRegion", "allowed", "protocolName", "protocol", "sourceGatewayRegionName",
	"destinationGatewayRegionName", "sourceParentName", "sourceEntityName", "destinationEntityName",
	"destinationParentName"}

var ccDisconnectKeys = []string{"sessionBytesIn", "sessionBytesOut", "clientUUID", "sessionDisconnectReason",
	"clientOsType", "clientOsVersion", "sessionProtocol", "clientPublicIp", "sessionDurationSeconds",
	"sessionEndTime", "sessionStartTime", "clientTunnelIpV4", "clientTunnelIpV6", "clientSessionId",
	"gatewayRegionName", "gatewayRegion", "gatewayId", "sessionTunnelProtocol",
	"sessionDisconnectReasonDescription"}

var ccFlowSet, ccDisconnectSet = set(ccFlowKeys...), set(ccDisconnectKeys...)

func (d *decoder) ccTime(m *member) time.Time {
	s, ok := d.getStr(m)
	if !ok {
		return time.Time{}
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		d.bad(string(m.key), "%q is not an RFC 3339 timestamp", s)
		return time.Time{}
	}
	if t.Unix() == 0 && t.Nanosecond() == 0 {
		return time.Time{}
	}
	return t.UTC()
}

func parseUUID(s string, u *[16]byte) bool {
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return false
	}
	var buf [32]byte
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] == '-' {
			continue
		}
		buf[n] = s[i]
		n++
	}
	_, err := hex.Decode(u[:], buf[:])
	return err == nil
}

func (d *decoder) cloudconnexa(ms []member, out *Decoded) {
	e := &out.Event
	eventName := ""
	var logRaw *member
	var headerIP netip.Addr
	category := ""
	for i := range ms {
		m := &ms[i]
		if !d.mark(m.key, out) {
			continue
		}
		switch string(m.key) {
		case "CloudConnexaLogVersion":
			if n, ok := d.getInt(m); ok && n != 1 {
				d.warn("CloudConnexaLogVersion", "version %d (prism reads version 1)", n)
			}
		case "timestamp":
			e.Time = d.ccTime(m)
		case "cloudId":
			out.CC.CloudID, _ = d.getStr(m)
		case "service":
			out.CC.Service, _ = d.getStr(m)
		case "traceId":
			if s, ok := d.getStr(m); ok {
				if out.HasTrace = parseUUID(s, &out.Trace); !out.HasTrace {
					d.warn("traceId", "%q is not a UUID", s)
				}
			}
		case "publicIp", "clientPublicIp", "initiatorPublicIp":
			if s, null, ok := d.getStrNull(m); ok && !null {
				headerIP = d.getAddr(m, s)
			}
		case "initiator", "initiatorType", "initiatorName", "parentEntity", "parentEntityType", "parentEntityName":
			// a VPN identity: a proxy has none, and the canonical event
			// cannot hold one (it is null when rendered)
			_, _, _ = d.getStrNull(m)
		case "category":
			category, _ = d.getStr(m)
		case "eventName":
			eventName, _ = d.getStr(m)
		case "log":
			if m.val.kind != vObject {
				d.bad("log", "want an object, got %s", m.val.kind)
				continue
			}
			logRaw = m
		}
	}
	switch eventName {
	case render.FlowEstablished:
		out.CC.Categories.FlowEstablished = category
	case render.ClientDisconnected:
		out.CC.Categories.ClientDisconnected = category
	default:
		d.bad("eventName", "%q is not one of %s, %s", eventName, render.FlowEstablished, render.ClientDisconnected)
		return
	}
	if logRaw == nil {
		d.bad("log", "missing")
		return
	}
	var err error
	d.logMs, err = d.sc.nested(logRaw.val.b, d.logMs[:0])
	if err != nil {
		d.bad("log", "%v", err)
		return
	}
	if headerIP.IsValid() {
		e.ClientAddr = netip.AddrPortFrom(headerIP, 0)
		e.PeerAddr = e.ClientAddr
	}
	d.prefix, d.cur = "log.", -1
	if eventName == render.FlowEstablished {
		d.ccFlow(d.logMs, out)
	} else {
		d.ccDisconnect(d.logMs, out)
	}
	d.prefix = ""
}

func (d *decoder) ccKeys(ms []member, want map[string]bool, list []string, name string) {
	seen := make(map[string]bool, len(ms))
	for i := range ms {
		k := string(ms[i].key)
		if !want[k] {
			d.bad(k, "unknown field of a %s log object", name)
		}
		if seen[k] {
			d.bad(k, "field appears twice")
		}
		seen[k] = true
	}
	for _, k := range list {
		if !seen[k] {
			d.warn(k, "missing from the %s log object", name)
		}
	}
}

func (d *decoder) ccFlow(ms []member, out *Decoded) {
	e := &out.Event
	d.ccKeys(ms, ccFlowSet, ccFlowKeys, render.FlowEstablished)
	var dstIP netip.Addr
	var dstPort uint16
	allowed := true
	for i := range ms {
		m := &ms[i]
		switch string(m.key) {
		case "clientSessionId":
			if s, ok := d.getStr(m); ok && s != "" {
				e.SessionID, _ = parseID(s)
				out.sessionKnown = true
			}
		case "sourceIp":
			if s, null, ok := d.getStrNull(m); ok && !null && !e.ClientAddr.IsValid() {
				if a := d.getAddr(m, s); a.IsValid() {
					e.ClientAddr = netip.AddrPortFrom(a, 0)
				}
			}
		case "sourceGatewayRegion":
			out.Node.Colo, _ = d.getStr(m)
		case "destinationEntityId":
			if s, null, ok := d.getStrNull(m); ok && !null {
				e.App = s
			}
		case "destinationEntityIp":
			if s, null, ok := d.getStrNull(m); ok && !null {
				dstIP = d.getAddr(m, s)
			}
		case "destinationPort":
			if m.val.kind != vNull {
				dstPort = d.getPort(m)
			}
		case "allowed":
			allowed, _ = d.getBool(m)
		case "protocolName":
			if s, null, ok := d.getStrNull(m); ok && !null {
				e.ClientProto = strings.ToLower(s)
			}
		case "protocol":
			if m.val.kind != vNull {
				_, _ = d.getInt(m)
			}
		case "sourceGatewayRegionName":
			if s, null, ok := d.getStrNull(m); ok && !null {
				out.Node.RegionName = s
			}
		case "sourceParentId", "sourceParentType", "sourceEntityId", "sourceEntityType",
			"destinationParentId", "destinationParentType", "destinationEntityType",
			"destinationGatewayRegion", "destinationGatewayRegionName", "sourceParentName",
			"sourceEntityName", "destinationEntityName", "destinationParentName":
			_, _, _ = d.getStrNull(m)
		}
	}
	e.OriginProto = e.ClientProto
	if allowed {
		e.Type, e.Status = event.Connect, event.StatusConnect
		e.ConnectTime = e.Time
		if dstIP.IsValid() {
			e.OriginAddr = netip.AddrPortFrom(dstIP, dstPort)
		}
	} else {
		// a refused flow's destination is the edge listener (§5)
		e.Type, e.Status = event.ClientFiltered, event.StatusFiltered
		e.DisconnectTime = e.Time
		if dstIP.IsValid() {
			e.LocalAddr = netip.AddrPortFrom(dstIP, dstPort)
		}
	}
	e.StartTime = e.Time
}

func (d *decoder) ccDisconnect(ms []member, out *Decoded) {
	e := &out.Event
	d.ccKeys(ms, ccDisconnectSet, ccDisconnectKeys, render.ClientDisconnected)
	var dur int64 = -1
	for i := range ms {
		m := &ms[i]
		switch string(m.key) {
		case "sessionBytesIn":
			e.OriginBytes, _ = d.getInt(m)
		case "sessionBytesOut":
			e.ClientBytes, _ = d.getInt(m)
		case "sessionDisconnectReason":
			if s, ok := d.getStr(m); ok {
				c, known := ccReasons[s]
				if !known {
					c = ccOtherReason
				}
				e.Type, e.Status, e.CloseSide, e.CloseReason = c.typ, c.status, c.side, c.reason
			}
		case "sessionProtocol":
			if s, null, ok := d.getStrNull(m); ok && !null {
				e.ClientProto = strings.ToLower(s)
				if s != "TCP" && s != "UDP" {
					d.warn("sessionProtocol", "%q is not one of TCP, UDP", s)
				}
			}
		case "clientPublicIp":
			if s, null, ok := d.getStrNull(m); ok && !null && !e.ClientAddr.IsValid() {
				if a := d.getAddr(m, s); a.IsValid() {
					e.ClientAddr = netip.AddrPortFrom(a, 0)
				}
			}
		case "sessionDurationSeconds":
			dur, _ = d.getInt(m)
		case "sessionEndTime":
			e.DisconnectTime = d.ccTime(m)
		case "sessionStartTime":
			e.StartTime = d.ccTime(m)
		case "clientSessionId":
			if s, ok := d.getStr(m); ok && s != "" {
				e.SessionID, _ = parseID(s)
				out.sessionKnown = true
			}
		case "gatewayRegionName":
			if s, null, ok := d.getStrNull(m); ok && !null {
				out.Node.RegionName = s
			}
		case "gatewayRegion":
			if s, null, ok := d.getStrNull(m); ok && !null {
				out.Node.Colo = s
			}
		case "gatewayId":
			if s, null, ok := d.getStrNull(m); ok && !null {
				out.Node.ID = s
			}
		case "sessionDisconnectReasonDescription":
			if s, null, ok := d.getStrNull(m); ok && !null {
				e.Detail = s
			}
		case "clientUUID", "clientOsType", "clientOsVersion", "clientTunnelIpV4", "clientTunnelIpV6", "sessionTunnelProtocol":
			_, _, _ = d.getStrNull(m)
		}
	}
	if e.Type == event.TypeNone {
		e.Type, e.Status = event.Disconnect, event.StatusOK
	}
	e.OriginProto = e.ClientProto
	if e.DisconnectTime.IsZero() {
		e.DisconnectTime = e.Time
	}
	if e.Type == event.Disconnect {
		e.ConnectTime = e.StartTime
	}
	if dur >= 0 && !e.StartTime.IsZero() && !e.DisconnectTime.IsZero() {
		if got := int64(e.DisconnectTime.Sub(e.StartTime) / time.Second); got != dur {
			d.warn("sessionDurationSeconds", "%d, but the start and end times are %d s apart", dur, got)
		}
	}
}

// The switches above use field indexes: they must be render's.
func init() {
	for ds, want := range map[string][]string{
		render.Spectrum: {"Application", "ClientAsn", "ClientBytes", "ClientCountry", "ClientIP", "ClientMatchedIpFirewall", "ClientPort", "ClientProto", "ClientTcpRtt", "ClientTlsCipher", "ClientTlsClientHelloServerName", "ClientTlsProtocol", "ClientTlsStatus", "ColoCode", "ConnectTimestamp", "DisconnectTimestamp", "Event", "IpFirewall", "OriginBytes", "OriginIP", "OriginPort", "OriginProto", "OriginTcpRtt", "OriginTlsCipher", "OriginTlsFingerprint", "OriginTlsMode", "OriginTlsProtocol", "OriginTlsStatus", "ProxyProtocol", "Status", "Timestamp"},
		render.EdgeOne:  {"ClientRealIP", "ClientRegion", "ConnectTimeStamp", "DisconnetReason", "DisconnetTimeStamp", "EdgeIP", "ForwardPort", "ForwardProtocol", "LogTimeStamp", "ReceivedBytes", "SentBytes", "ServiceID", "SessionID"},
	} {
		got, _ := render.FieldNames(ds)
		if strings.Join(got, ",") != strings.Join(want, ",") {
			panic("logs: the " + ds + " fields changed in internal/render; update the field indexes in internal/logs")
		}
	}
}
