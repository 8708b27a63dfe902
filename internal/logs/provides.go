package logs

import (
	"sort"
	"strings"

	"github.com/prismproxy/prism/internal/render"
)

// What each source dataset can say, and what each target field needs. A
// target field whose facet the source lacks is written the way the target
// writes unknown (Spectrum "", 0, "UNK", "none", "UNKNOWN"; EdgeOne "-",
// -1; CloudConnexa null; OCSF leaves the attribute out or writes 0
// Unknown), and convert says so once before it starts.

type facet string

const (
	fApp         facet = "the app"
	fSession     facet = "a session id"
	fClientIP    facet = "the client address"
	fClientPort  facet = "the client port"
	fCountry     facet = "the client country"
	fASN         facet = "the client AS number"
	fOrigin      facet = "the origin address"
	fLocal       facet = "the edge address"
	fProto       facet = "the transport"
	fOriginProto facet = "the origin transport"
	fRTT         facet = "round-trip times"
	fTLS         facet = "TLS"
	fTLSMode     facet = "the origin TLS mode"
	fProxyProto  facet = "the PROXY protocol"
	fFirewall    facet = "the firewall state"
	fColo        facet = "the location code"
	fNodeID      facet = "the node id"
	fRegionName  facet = "the region name"
	fStart       facet = "the session start"
	fConnect     facet = "the time both legs were up"
	fEnd         facet = "the disconnect time"
	fTotals      facet = "session byte totals"
	fDeltas      facet = "bytes per record"
	fStatus      facet = "the Spectrum status"
	fCloseCause  facet = "who closed and why"
	fDetail      facet = "the error detail"
	fPeriodic    facet = "periodic records"
	fTrace       facet = "a trace id"
)

// sourceLacks lists what each readable dataset cannot provide. What it
// lacks in one record and a sibling record of the session has (the app of
// a cloudconnexa client-disconnected record) is carried over by convert.
var sourceLacks = map[string][]facet{
	render.Spectrum: {fSession, fLocal, fNodeID, fRegionName, fStart, fDetail, fPeriodic, fTrace, fCloseCause},
	render.EdgeOne: {fClientPort, fASN, fOrigin, fOriginProto, fRTT, fTLS, fTLSMode, fProxyProto, fFirewall,
		fColo, fNodeID, fRegionName, fConnect, fDetail, fTrace},
	render.CloudConnexa: {fClientPort, fCountry, fASN, fRTT, fTLS, fTLSMode, fProxyProto, fFirewall,
		fPeriodic, fLocal},
}

// sourceDerives says what a source gives only indirectly. Byte totals and
// per-record bytes are always exact: convert sums EdgeOne's per-record
// bytes and takes differences of the others' totals.
var sourceDerives = map[string]string{
	render.EdgeOne:      "the Spectrum status and event are read back from DisconnetReason",
	render.CloudConnexa: "the Spectrum status and event are read back from eventName, allowed and sessionDisconnectReason",
}

// targetNeeds maps target fields to the facet they are made from (fields
// not listed are constants or come from what every source has).
var targetNeeds = map[string]map[string]facet{
	render.Spectrum: {
		"Application": fApp, "ClientAsn": fASN, "ClientCountry": fCountry, "ClientIP": fClientIP,
		"ClientMatchedIpFirewall": fFirewall, "ClientPort": fClientPort, "ClientProto": fProto,
		"ClientTcpRtt": fRTT, "ClientTlsCipher": fTLS, "ClientTlsClientHelloServerName": fTLS,
		"ClientTlsProtocol": fTLS, "ClientTlsStatus": fTLS, "ColoCode": fColo,
		"ConnectTimestamp": fConnect, "DisconnectTimestamp": fEnd, "IpFirewall": fFirewall,
		"ClientBytes": fTotals, "OriginBytes": fTotals,
		"OriginIP": fOrigin, "OriginPort": fOrigin, "OriginProto": fOriginProto, "OriginTcpRtt": fRTT,
		"OriginTlsCipher": fTLS, "OriginTlsFingerprint": fTLS, "OriginTlsMode": fTLSMode,
		"OriginTlsProtocol": fTLS, "OriginTlsStatus": fTLS, "ProxyProtocol": fProxyProto, "Status": fStatus,
	},
	render.EdgeOne: {
		"ClientRealIP": fClientIP, "ClientRegion": fCountry, "ConnectTimeStamp": fStart,
		"DisconnetReason": fCloseCause, "DisconnetTimeStamp": fEnd, "EdgeIP": fLocal, "ForwardPort": fLocal,
		"ForwardProtocol": fProto, "ReceivedBytes": fDeltas, "SentBytes": fDeltas, "ServiceID": fApp,
		"SessionID": fSession,
	},
	render.CloudConnexa: {
		"traceId": fTrace, "publicIp": fClientIP,
		"log": fSession, // clientSessionId; the rest of log is listed by logNeeds
	},
	render.OCSF: {
		"start_time": fStart, "end_time": fEnd, "duration": fStart, "status_code": fStatus,
		"status_detail": fDetail, "app_name": fApp, "src_endpoint": fClientIP, "dst_endpoint": fOrigin,
		"proxy_endpoint": fLocal, "traffic": fDeltas, "cumulative_traffic": fTotals, "tls": fTLS,
		"proxy_tls": fTLS, "disposition": fFirewall, "disposition_id": fFirewall, "action": fFirewall,
		"action_id": fFirewall, "connection_info": fSession, "proxy_connection_info": fOriginProto,
	},
}

// Missing lists, for a conversion, the target fields the source cannot
// fill and why, one "Field (no facet)" entry per field, sorted.
func Missing(from, to string, fields []string) []string {
	if from == to {
		return nil
	}
	lacks := map[facet]bool{}
	for _, f := range sourceLacks[from] {
		lacks[f] = true
	}
	if len(fields) == 0 {
		fields, _ = render.FieldNames(to)
	}
	var out []string
	for _, name := range fields {
		if f, ok := targetNeeds[to][name]; ok && lacks[f] {
			out = append(out, name+" ("+string(f)+")")
		}
	}
	if to == render.CloudConnexa {
		for _, f := range []facet{fOrigin, fTotals, fEnd, fColo, fNodeID, fRegionName, fDetail, fApp} {
			if lacks[f] {
				out = append(out, "log ("+string(f)+")")
			}
		}
	}
	sort.Strings(out)
	return out
}

// missingNote is the one line convert prints about Missing.
func missingNote(from, to string, fields []string) string {
	var notes []string
	if m := Missing(from, to, fields); len(m) > 0 {
		notes = append(notes, "prism logs convert: "+from+" cannot provide these "+to+" fields; they are written as "+to+
			" writes unknown: "+strings.Join(m, ", "))
	}
	if d := sourceDerives[from]; d != "" && from != to && (to == render.Spectrum || to == render.OCSF) {
		notes = append(notes, "prism logs convert: "+d+" (docs/logs-cli.md)")
	}
	if from != to && render.Periodic(to) && !render.Periodic(from) {
		notes = append(notes, "prism logs convert: "+from+" has no periodic records; "+to+" gets each session's final record only")
	}
	return strings.Join(notes, "\n")
}
