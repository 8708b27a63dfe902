package logs

import (
	"slices"
	"sort"
	"strings"

	"github.com/prismproxy/prism/internal/event"
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

// sourceApproximates lists facets a source lacks but convert fills with a
// stand-in rather than the target's unknown, and what stands in.
var sourceApproximates = map[string]map[facet]string{
	render.Spectrum: {
		fSession:    "hashed from start time, colo, app and client address",
		fStart:      "the connect time",
		fCloseCause: "a normal close is read as the client's",
		fTrace:      "a fresh random id",
	},
	render.EdgeOne: {
		fConnect: "its ConnectTimeStamp, the accept",
		fTrace:   "a fresh random id",
	},
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
		// log: its keys are listed by logNeeds
	},
	render.OCSF: {
		"start_time": fStart, "end_time": fEnd, "duration": fStart, "status_code": fStatus,
		"status_detail": fDetail, "app_name": fApp, "src_endpoint": fClientIP, "dst_endpoint": fOrigin,
		"proxy_endpoint": fLocal, "traffic": fDeltas, "cumulative_traffic": fTotals, "tls": fTLS,
		"proxy_tls": fTLS, "disposition": fFirewall, "disposition_id": fFirewall, "action": fFirewall,
		"action_id": fFirewall, "connection_info": fSession, "proxy_connection_info": fOriginProto,
	},
}

// logNeeds names the keys of a CloudConnexa record's log object that are
// made from each facet (the log field as a whole counts as present).
var logNeeds = []struct {
	facet facet
	keys  string
}{
	{fSession, "log.clientSessionId"},
	{fProto, "log.protocolName/protocol/sessionProtocol"},
	{fOrigin, "log.destinationEntityIp/destinationPort"},
	{fTotals, "log.sessionBytesIn/sessionBytesOut"},
	{fEnd, "log.sessionEndTime"},
	{fColo, "log.gatewayRegion/sourceGatewayRegion/destinationGatewayRegion"},
	{fNodeID, "log.gatewayId"},
	{fRegionName, "log.gatewayRegionName/sourceGatewayRegionName/destinationGatewayRegionName"},
	{fDetail, "log.sessionDisconnectReasonDescription"},
	{fApp, "log.destinationEntityId/destinationEntityName"},
}

// Missing lists, for a conversion, the target fields the source cannot
// fill and why, one "Field (no facet)" entry per field, sorted.
func Missing(from, to string, fields []string) []string {
	return lacking(from, to, fields, false)
}

// Approximated lists, like Missing, the target fields the source cannot
// fill that convert fills with a stand-in: "Field (facet: stand-in)".
func Approximated(from, to string, fields []string) []string {
	return lacking(from, to, fields, true)
}

func lacking(from, to string, fields []string, approximated bool) []string {
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
	approx := sourceApproximates[from]
	var out []string
	for _, name := range fields {
		if f, ok := targetNeeds[to][name]; ok && lacks[f] && (approx[f] == "") == !approximated {
			out = append(out, name+" ("+string(f)+note(approx[f])+")")
		}
	}
	if to == render.CloudConnexa && slices.Contains(fields, "log") {
		for _, l := range logNeeds {
			if lacks[l.facet] && (approx[l.facet] == "") == !approximated {
				out = append(out, l.keys+" ("+string(l.facet)+note(approx[l.facet])+")")
			}
		}
	}
	sort.Strings(out)
	return out
}

func note(approx string) string {
	if approx == "" {
		return ""
	}
	return ": " + approx
}

// missingNote is the one line convert prints about Missing.
func missingNote(from, to string, fields []string) string {
	var notes []string
	if m := Missing(from, to, fields); len(m) > 0 {
		notes = append(notes, "prism logs convert: "+from+" cannot provide these "+to+" fields; they are written as "+to+
			" writes unknown: "+strings.Join(m, ", "))
	}
	if a := Approximated(from, to, fields); len(a) > 0 {
		notes = append(notes, "prism logs convert: "+from+" cannot provide these "+to+" fields either; they are filled with a stand-in: "+
			strings.Join(a, ", "))
	}
	if d := sourceDerives[from]; d != "" && from != to && (to == render.Spectrum || to == render.OCSF) {
		notes = append(notes, "prism logs convert: "+d+" (docs/logs-cli.md)")
	}
	if from != to && render.Periodic(to) && !render.Periodic(from) {
		// what the target gets is what it writes of the source's records:
		// ocsf has connect records too, edgeone_l4 none
		got := "each session's final record only"
		if render.Wants(to, event.Connect) {
			got = "each session's connect and final records only, no in-flight ones"
		}
		notes = append(notes, "prism logs convert: "+from+" has no periodic records; "+to+" gets "+got)
	}
	return strings.Join(notes, "\n")
}
