package render

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prismproxy/prism/internal/event"
)

var testNode = Node{Colo: "SJC", ID: "sjc-edge-1", RegionName: "San Jose (CA)"}

// member is one key of a JSON object, in document order.
type member struct {
	key string
	typ string // string, number, bool, null, object, array
	val any
	obj []member
}

// parseOrdered decodes one JSON object keeping key order.
func parseOrdered(t *testing.T, data []byte) []member {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil || tok != json.Delim('{') {
		t.Fatalf("not a JSON object: %s (%v)", data, err)
	}
	return readObject(t, dec)
}

func readObject(t *testing.T, dec *json.Decoder) []member {
	var out []member
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		m := member{key: k.(string)}
		v, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		switch v := v.(type) {
		case json.Delim:
			if v == '{' {
				m.typ, m.obj = "object", readObject(t, dec)
			} else {
				m.typ = "array"
				for dec.More() {
					var skip any
					_ = dec.Decode(&skip)
				}
				_, _ = dec.Token()
			}
		case string:
			m.typ, m.val = "string", v
		case json.Number:
			m.typ, m.val = "number", v
		case bool:
			m.typ, m.val = "bool", v
		case nil:
			m.typ = "null"
		}
		out = append(out, m)
	}
	if _, err := dec.Token(); err != nil {
		t.Fatal(err)
	}
	return out
}

func keys(ms []member) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.key
	}
	return out
}

func readSeed(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile("testdata/seeds/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// fullEvent is a terminal TCP record with every field set.
func fullEvent() event.Event {
	t0 := time.Date(2026, 11, 22, 4, 10, 0, 123456789, time.UTC)
	e := event.New("ssh-app", event.NewID(t0))
	e.Type = event.Disconnect
	e.Status = event.StatusOK
	e.Time = t0.Add(90 * time.Second)
	e.ClientProto, e.OriginProto = event.ProtoTCP, event.ProtoTCP
	e.ClientAddr = netip.MustParseAddrPort("[::ffff:81.2.69.142]:51234")
	e.PeerAddr = e.ClientAddr
	e.LocalAddr = netip.MustParseAddrPort("127.0.0.1:2222")
	e.OriginAddr = netip.MustParseAddrPort("[2001:db8::7]:22")
	e.StartTime = t0
	e.ConnectTime = t0.Add(2 * time.Millisecond)
	e.DisconnectTime = e.Time
	e.ClientBytes, e.OriginBytes = 1234, 56789
	e.ClientBytesDelta, e.OriginBytesDelta = 34, 789
	e.ClientRTT, e.OriginRTT = 14*time.Microsecond, 20*time.Microsecond
	e.ProxyProtocol = "v2"
	e.TLSMode = "full"
	e.ClientTLS = event.TLS{Protocol: "TLSv1.3", Cipher: "AEAD-AES128-GCM-SHA256", Status: "OK", ServerName: "ssh.example.com"}
	e.OriginTLS = event.TLS{Protocol: "TLSv1.2", Cipher: "ECDHE-RSA-AES128-GCM-SHA256", Status: "OK", Fingerprint: strings.Repeat("ab", 32)}
	e.Firewall = true
	e.FirewallMatch = event.FirewallWhitelistCountry
	e.Country = "GB"
	e.ASN = 29518
	e.CloseSide, e.CloseReason = event.SideClient, event.ReasonPeerClose
	return e
}

func render1(t *testing.T, ds string, opt Options, e *event.Event) []byte {
	t.Helper()
	enc, err := NewEncoder(ds, testNode, opt)
	if err != nil {
		t.Fatal(err)
	}
	out := enc.Append(nil, e)
	if !bytes.HasSuffix(out, []byte("\n")) || bytes.Count(out, []byte("\n")) != 1 {
		t.Fatalf("record is not one line: %q", out)
	}
	return out
}

// TestSpectrumGolden checks the 31 fields of seed 000 (names, order, JSON
// types) in every timestamp format, for every event type.
func TestSpectrumGolden(t *testing.T) {
	seed := readSeed(t, "spectrum_events.txt")
	re := regexp.MustCompile(`(?m)^## (\w+)\n\nType: ([a-z ]+)\n`)
	var names, types []string
	for _, m := range re.FindAllStringSubmatch(seed, -1) {
		names = append(names, m[1])
		types = append(types, m[2])
	}
	if len(names) != 31 {
		t.Fatalf("seed parse: %d fields, want 31", len(names))
	}
	want := map[string]string{"string": "string", "int": "number", "bool": "bool"}
	formats := map[TimestampFormat]string{UnixNano: "number", Unix: "number", RFC3339: "string"}
	for ts, tsType := range formats {
		for _, typ := range []event.Type{event.Connect, event.Disconnect, event.ClientFiltered, event.TLSError, event.ResolveOrigin, event.OriginError} {
			e := fullEvent()
			e.Type = typ
			if typ == event.Connect {
				e.DisconnectTime = time.Time{}
			}
			got := parseOrdered(t, render1(t, Spectrum, Options{TimestampFormat: ts}, &e))
			if fmt.Sprint(keys(got)) != fmt.Sprint(names) {
				t.Fatalf("ts=%d %v: keys\n got %v\nwant %v", ts, typ, keys(got), names)
			}
			for i, m := range got {
				w := want[types[i]]
				if types[i] == "int or string" {
					w = tsType
				}
				if m.typ != w {
					t.Errorf("ts=%d %v: %s is %s, want %s", ts, typ, m.key, m.typ, w)
				}
			}
			if got[16].val != typ.String() {
				t.Errorf("Event = %v, want %v", got[16].val, typ)
			}
		}
	}
}

func TestSpectrumValues(t *testing.T) {
	e := fullEvent()
	got := map[string]any{}
	if err := json.Unmarshal(render1(t, Spectrum, Options{TimestampFormat: RFC3339}, &e), &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"Application": "ssh-app", "ClientAsn": 29518.0, "ClientBytes": 1234.0, "ClientCountry": "gb",
		"ClientIP": "81.2.69.142", "ClientMatchedIpFirewall": "WHITELIST_COUNTRY", "ClientPort": 51234.0,
		"ClientProto": "tcp", "ClientTcpRtt": 14000.0, "ClientTlsCipher": "AEAD-AES128-GCM-SHA256",
		"ClientTlsClientHelloServerName": "ssh.example.com", "ClientTlsProtocol": "TLSv1.3", "ClientTlsStatus": "OK",
		"ColoCode": "SJC", "ConnectTimestamp": "2026-11-22T04:10:00Z", "DisconnectTimestamp": "2026-11-22T04:11:30Z",
		"Event": "disconnect", "IpFirewall": true, "OriginBytes": 56789.0, "OriginIP": "2001:db8::7", "OriginPort": 22.0,
		"OriginProto": "tcp", "OriginTcpRtt": 20000.0, "OriginTlsCipher": "ECDHE-RSA-AES128-GCM-SHA256",
		"OriginTlsFingerprint": strings.Repeat("ab", 32), "OriginTlsMode": "full", "OriginTlsProtocol": "TLSv1.2",
		"OriginTlsStatus": "OK", "ProxyProtocol": "v2", "Status": 200.0, "Timestamp": "2026-11-22T04:11:30Z",
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s = %#v, want %#v", k, got[k], w)
		}
	}
	if len(got) != len(want) {
		t.Errorf("%d fields, want %d", len(got), len(want))
	}
}

// TestSpectrumNoTLSAndEpoch: a connect record of a plain TCP session made
// with a zero Event (no event.New): TLS legs at the no-TLS values, times
// not yet happened at the epoch.
func TestSpectrumNoTLSAndEpoch(t *testing.T) {
	e := event.Event{Type: event.Connect, Time: time.Unix(1700000000, 5), App: "a", ClientProto: "udp"}
	for ts, disc := range map[TimestampFormat]any{UnixNano: 0.0, Unix: 0.0, RFC3339: "1970-01-01T00:00:00Z"} {
		got := map[string]any{}
		if err := json.Unmarshal(render1(t, Spectrum, Options{TimestampFormat: ts}, &e), &got); err != nil {
			t.Fatal(err)
		}
		for k, w := range map[string]any{
			"ClientTlsProtocol": "none", "ClientTlsCipher": "UNK", "ClientTlsStatus": "UNKNOWN",
			"OriginTlsProtocol": "none", "OriginTlsCipher": "UNK", "OriginTlsStatus": "UNKNOWN",
			"OriginTlsFingerprint": "", "ClientMatchedIpFirewall": "UNKNOWN", "ProxyProtocol": "off",
			"DisconnectTimestamp": disc, "ConnectTimestamp": disc, "Status": 0.0, "ClientIP": "", "ClientCountry": "",
		} {
			if got[k] != w {
				t.Errorf("ts=%d %s = %#v, want %#v", ts, k, got[k], w)
			}
		}
	}
	dec := json.NewDecoder(bytes.NewReader(render1(t, Spectrum, Options{TimestampFormat: Unix}, &e)))
	dec.UseNumber()
	var raw map[string]any
	if err := dec.Decode(&raw); err != nil {
		t.Fatal(err)
	}
	if raw["Timestamp"] != json.Number("1700000000") {
		t.Errorf("unix Timestamp = %v", raw["Timestamp"])
	}
}

// TestEdgeOneGolden checks the 13 fields of seed 003 (names as spelled,
// order, types) for interim and final records.
func TestEdgeOneGolden(t *testing.T) {
	seed := readSeed(t, "edgeone_l4.txt")
	lines := strings.Split(seed, "\n")
	var names, types []string
	for i := 0; i+1 < len(lines); i++ {
		switch typ := strings.TrimSpace(lines[i+1]); typ {
		case "String", "Integer", "Timestamp ISO8601":
			if regexp.MustCompile(`^[A-Z][A-Za-z]+$`).MatchString(strings.TrimSpace(lines[i])) {
				names = append(names, strings.TrimSpace(lines[i]))
				types = append(types, typ)
			}
		}
	}
	if len(names) != 13 {
		t.Fatalf("seed parse: %d fields %v, want 13", len(names), names)
	}
	iso := regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$`)
	interim := fullEvent()
	interim.Type = event.Interim
	interim.DisconnectTime = time.Time{}
	final := fullEvent()
	for _, e := range []*event.Event{&interim, &final} {
		got := parseOrdered(t, render1(t, EdgeOne, Options{}, e))
		if fmt.Sprint(keys(got)) != fmt.Sprint(names) {
			t.Fatalf("keys\n got %v\nwant %v", keys(got), names)
		}
		for i, m := range got {
			switch types[i] {
			case "Integer":
				if m.typ != "number" {
					t.Errorf("%s is %s, want number", m.key, m.typ)
				}
			case "String":
				if m.typ != "string" {
					t.Errorf("%s is %s, want string", m.key, m.typ)
				}
			case "Timestamp ISO8601":
				s, _ := m.val.(string)
				if m.typ != "string" || !(iso.MatchString(s) || s == "-") {
					t.Errorf("%s = %v, want ISO 8601 UTC or -", m.key, m.val)
				}
			}
		}
	}
	got := map[string]any{}
	_ = json.Unmarshal(render1(t, EdgeOne, Options{}, &interim), &got)
	for k, w := range map[string]any{
		"DisconnetReason": "-", "DisconnetTimeStamp": "-", "ReceivedBytes": 34.0, "SentBytes": 789.0,
		"ClientRealIP": "81.2.69.142", "ClientRegion": "GB", "EdgeIP": "127.0.0.1", "ForwardPort": 2222.0,
		"ForwardProtocol": "TCP", "ServiceID": "ssh-app", "SessionID": interim.SessionID.String(),
		"ConnectTimeStamp": "2026-11-22T04:10:00Z", "LogTimeStamp": "2026-11-22T04:11:30Z",
	} {
		if got[k] != w {
			t.Errorf("interim %s = %#v, want %#v", k, got[k], w)
		}
	}
	got = map[string]any{}
	_ = json.Unmarshal(render1(t, EdgeOne, Options{}, &final), &got)
	if got["DisconnetReason"] != "down:net_exception_peer_close" || got["DisconnetTimeStamp"] != "2026-11-22T04:11:30Z" {
		t.Errorf("final: %v %v", got["DisconnetReason"], got["DisconnetTimeStamp"])
	}
}

// TestEdgeOneEmptyValues: "-" for strings, -1 for integers.
func TestEdgeOneEmptyValues(t *testing.T) {
	e := event.Event{Type: event.OriginError, Time: time.Unix(1700000000, 0), ClientPath: "/run/app.sock"}
	got := map[string]any{}
	if err := json.Unmarshal(render1(t, EdgeOne, Options{}, &e), &got); err != nil {
		t.Fatal(err)
	}
	for k, w := range map[string]any{
		"ClientRealIP": "-", "ClientRegion": "-", "ConnectTimeStamp": "2023-11-14T22:13:20Z", "EdgeIP": "-", "ForwardPort": -1.0,
		"ForwardProtocol": "-", "ServiceID": "-", "SessionID": "-", "DisconnetTimeStamp": "-",
		"DisconnetReason": "up:create_peer_channel_exception",
	} {
		if got[k] != w {
			t.Errorf("%s = %#v, want %#v", k, got[k], w)
		}
	}
}

func TestEdgeOneReason(t *testing.T) {
	tests := []struct {
		typ    event.Type
		side   event.Side
		reason event.Reason
		want   string
	}{
		{event.Interim, event.SideNone, event.ReasonNone, "-"},
		{event.Disconnect, event.SideClient, event.ReasonPeerClose, "down:net_exception_peer_close"},
		{event.Disconnect, event.SideOrigin, event.ReasonPeerClose, "up:net_exception_peer_close"},
		{event.Disconnect, event.SideClient, event.ReasonPeerError, "down:net_exception_peer_error"},
		{event.Disconnect, event.SideOrigin, event.ReasonPeerError, "up:net_exception_peer_error"},
		{event.Disconnect, event.SideOrigin, event.ReasonTimeout, "up:net_exception_timeout"},
		{event.Disconnect, event.SideProxy, event.ReasonTimeout, "down:net_exception_timeout"},
		{event.Disconnect, event.SideProxy, event.ReasonClosed, "down:net_exception_closed"},
		{event.Disconnect, event.SideClient, event.ReasonChannelEOF, "down:channel_eof_exception"},
		{event.Disconnect, event.SideOrigin, event.ReasonChannelEOF, "up:channel_eof_exception"},
		{event.OriginError, event.SideOrigin, event.ReasonCreatePeer, "up:create_peer_channel_exception"},
		{event.OriginError, event.SideNone, event.ReasonNone, "up:create_peer_channel_exception"},
		{event.ResolveOrigin, event.SideNone, event.ReasonNone, "up:create_peer_channel_exception"},
		{event.ClientFiltered, event.SideNone, event.ReasonNone, "down:net_exception_closed"},
		{event.TLSError, event.SideNone, event.ReasonNone, "down:net_exception_peer_error"},
		{event.Disconnect, event.SideNone, event.ReasonNone, "down:net_exception_peer_close"},
	}
	for _, tc := range tests {
		e := event.Event{Type: tc.typ, CloseSide: tc.side, CloseReason: tc.reason}
		if got := EdgeOneReason(&e); got != tc.want {
			t.Errorf("%v/%v/%v = %q, want %q", tc.typ, tc.side, tc.reason, got, tc.want)
		}
	}
}

// seedExample returns the JSON example of a CloudConnexa seed.
func seedExample(t *testing.T, name string) []member {
	s := readSeed(t, name)
	i := strings.Index(s, `{ "CloudConnexaLogVersion"`)
	if i < 0 {
		t.Fatalf("no example in %s", name)
	}
	return parseOrdered(t, []byte(s[i:]))
}

// ccNullable are the keys a proxy leaves null (no meaning for a proxy
// client); seedTypeExceptions are where the spec overrides the seed's
// example value type.
var (
	ccNullable = map[string]bool{
		"initiator": true, "initiatorType": true, "initiatorName": true,
		"parentEntity": true, "parentEntityType": true, "parentEntityName": true,
		"clientUUID": true, "clientOsType": true, "clientOsVersion": true,
		"clientTunnelIpV4": true, "clientTunnelIpV6": true, "sessionTunnelProtocol": true,
		"sessionDisconnectReasonDescription": true,
		"sourceParentId":                     true, "sourceParentType": true, "sourceEntityId": true, "sourceEntityType": true,
		"destinationParentId": true, "destinationParentType": true, "sourceParentName": true,
		"sourceEntityName": true, "destinationParentName": true,
	}
	// Seed 004 shows "protocol": "6", but its own table and spec §5 say
	// Integer.
	seedTypeExceptions = map[string]string{"protocol": "number"}
)

func compareShape(t *testing.T, what string, got, want []member) {
	t.Helper()
	if fmt.Sprint(keys(got)) != fmt.Sprint(keys(want)) {
		t.Fatalf("%s keys\n got %v\nwant %v", what, keys(got), keys(want))
	}
	for i := range got {
		g, w := got[i], want[i]
		wt := w.typ
		if x, ok := seedTypeExceptions[w.key]; ok {
			wt = x
		}
		if g.typ == wt || (g.typ == "null" && ccNullable[g.key]) {
			if g.typ == "object" {
				compareShape(t, what+"."+g.key, g.obj, w.obj)
			}
			continue
		}
		t.Errorf("%s.%s is %s, seed has %s", what, g.key, g.typ, w.typ)
	}
}

func TestCloudConnexaGolden(t *testing.T) {
	disc := fullEvent()
	disc.Detail = "read: connection reset by peer"
	conn := fullEvent()
	conn.Type, conn.Status, conn.DisconnectTime = event.Connect, 0, time.Time{}
	filtered := fullEvent()
	filtered.Type, filtered.Status = event.ClientFiltered, event.StatusFiltered
	udp := fullEvent()
	udp.ClientProto = event.ProtoUDP
	for _, tc := range []struct {
		seed string
		e    *event.Event
	}{
		{"cloudconnexa_client_disconnected.txt", &disc},
		{"cloudconnexa_client_disconnected.txt", &udp},
		{"cloudconnexa_flow_established.txt", &conn},
		{"cloudconnexa_flow_established.txt", &filtered},
	} {
		want := seedExample(t, tc.seed)
		got := parseOrdered(t, render1(t, CloudConnexa, Options{}, tc.e))
		compareShape(t, tc.seed, got, want)
	}

	// Values.
	var rec struct {
		Version   int            `json:"CloudConnexaLogVersion"`
		Timestamp string         `json:"timestamp"`
		CloudID   string         `json:"cloudId"`
		Service   string         `json:"service"`
		TraceID   string         `json:"traceId"`
		Category  string         `json:"category"`
		EventName string         `json:"eventName"`
		PublicIP  string         `json:"publicIp"`
		Log       map[string]any `json:"log"`
	}
	cfg := Options{CloudConnexa: CloudConnexaConfig{CloudID: "acme", RegionName: "Silicon Valley", Categories: CloudConnexaCategories{FlowEstablished: "Activity.Flows"}}}
	if err := json.Unmarshal(render1(t, CloudConnexa, cfg, &filtered), &rec); err != nil {
		t.Fatal(err)
	}
	uuid4 := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	if rec.Version != 1 || rec.CloudID != "acme" || rec.Service != "CloudConnexa" || !uuid4.MatchString(rec.TraceID) ||
		rec.Category != "Activity.Flows" || rec.EventName != "flow-established" || rec.PublicIP != "81.2.69.142" ||
		rec.Timestamp != "2026-11-22T04:11:30.123456Z" {
		t.Errorf("header: %+v", rec)
	}
	for k, w := range map[string]any{
		"allowed": false, "protocol": 6.0, "protocolName": "tcp", "sourceIp": "81.2.69.142",
		"destinationEntityIp": "127.0.0.1", "destinationPort": 2222.0, "clientSessionId": filtered.SessionID.String(),
		"sourceGatewayRegion": "SJC", "destinationGatewayRegionName": "Silicon Valley", "destinationEntityId": "ssh-app",
	} {
		if rec.Log[k] != w {
			t.Errorf("filtered flow log.%s = %#v, want %#v", k, rec.Log[k], w)
		}
	}
	rec.Log = nil
	_ = json.Unmarshal(render1(t, CloudConnexa, Options{}, &conn), &rec)
	if rec.Log["allowed"] != true || rec.Log["destinationEntityIp"] != "2001:db8::7" || rec.Log["destinationPort"] != 22.0 || rec.Category != "Activity.AV" {
		t.Errorf("connect flow: %v %v", rec.Category, rec.Log)
	}
	rec.Log = nil
	_ = json.Unmarshal(render1(t, CloudConnexa, Options{}, &udp), &rec)
	for k, w := range map[string]any{
		"sessionBytesIn": 56789.0, "sessionBytesOut": 1234.0, "sessionProtocol": "UDP", "sessionDurationSeconds": 90.0,
		"sessionStartTime": "2026-11-22T04:10:00.123456Z", "sessionEndTime": "2026-11-22T04:11:30.123456Z",
		"gatewayRegion": "SJC", "gatewayRegionName": "San Jose (CA)", "gatewayId": "sjc-edge-1",
		"sessionDisconnectReason": "Client Disconnected", "sessionDisconnectReasonDescription": nil,
		"clientPublicIp": "81.2.69.142",
	} {
		if rec.Log[k] != w {
			t.Errorf("client-disconnected log.%s = %#v, want %#v", k, rec.Log[k], w)
		}
	}
	if rec.Category != "Security.Logins" {
		t.Errorf("category %q", rec.Category)
	}
	a := render1(t, CloudConnexa, Options{}, &conn)
	b := render1(t, CloudConnexa, Options{}, &conn)
	if bytes.Equal(a, b) {
		t.Error("traceId is not fresh per record")
	}
}

func TestWants(t *testing.T) {
	all := []event.Type{event.Connect, event.Disconnect, event.ClientFiltered, event.TLSError, event.ResolveOrigin, event.OriginError, event.Interim}
	want := map[string]string{
		Spectrum:     "connect disconnect clientFiltered tlsError resolveOrigin originError",
		EdgeOne:      "disconnect clientFiltered tlsError resolveOrigin originError interim",
		CloudConnexa: "connect disconnect clientFiltered tlsError resolveOrigin originError",
	}
	for ds, w := range want {
		var got []string
		for _, typ := range all {
			if Wants(ds, typ) {
				got = append(got, typ.String())
			}
		}
		if strings.Join(got, " ") != w {
			t.Errorf("%s wants %v, want %s", ds, got, w)
		}
	}
}

func TestFieldSelection(t *testing.T) {
	e := fullEvent()
	got := parseOrdered(t, render1(t, Spectrum, Options{Fields: []string{"Status", "ClientIP", "Event"}}, &e))
	if fmt.Sprint(keys(got)) != "[Status ClientIP Event]" {
		t.Errorf("keys %v", keys(got))
	}
	for _, tc := range []struct {
		ds  string
		opt Options
	}{
		{Spectrum, Options{Fields: []string{"Status", "Nope"}}},
		{Spectrum, Options{Fields: []string{"Status", "Status"}}},
		{EdgeOne, Options{Fields: []string{"DisconnectReason"}}}, // EdgeOne spells it Disconnet
		{EdgeOne, Options{TimestampFormat: RFC3339}},
		{CloudConnexa, Options{TimestampFormat: Unix}},
		{"http_requests", Options{}},
	} {
		if _, err := NewEncoder(tc.ds, testNode, tc.opt); err == nil {
			t.Errorf("%s %+v: no error", tc.ds, tc.opt)
		}
	}
}

// TestJSONStringMatchesEncodingJSON compares the hand-written escaper with
// encoding/json (HTML escaping off) on awkward strings.
func TestJSONStringMatchesEncodingJSON(t *testing.T) {
	cases := []string{
		"", "plain", `quote " backslash \ slash /`, "<script>&amp;</script>", "tab\tnl\ncr\rbs\bff\f",
		"\x00\x01\x1f\x7f", "caf\u00e9 \u2028 \u2029 \U0001F600", "bad \xff utf8 \xc3", "\xed\xa0\x80 surrogate",
	}
	for c := 0; c < 256; c++ {
		cases = append(cases, string([]byte{'a', byte(c), 'z'}))
	}
	for _, s := range cases {
		checkJSONString(t, s)
	}
}

func checkJSONString(t *testing.T, s string) {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(s); err != nil {
		t.Fatal(err)
	}
	want := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	if got := AppendJSONString(nil, s); !bytes.Equal(got, want) {
		t.Errorf("%q:\n got %s\nwant %s", s, got, want)
	}
}

func FuzzAppendJSONString(f *testing.F) {
	for _, s := range []string{"", "a\"b", "\xff", "\u2028<&>", "\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) { checkJSONString(t, s) })
}

// TestRoundTrip: a record with hostile strings decodes with encoding/json
// back to the same values.
func TestRoundTrip(t *testing.T) {
	e := fullEvent()
	e.App = "app \"quoted\" <&> \u2028\n"
	e.ClientTLS.ServerName = "evil\x00name\\"
	for _, ds := range Datasets {
		var m map[string]any
		if err := json.Unmarshal(render1(t, ds, Options{}, &e), &m); err != nil {
			t.Fatalf("%s: %v", ds, err)
		}
		switch ds {
		case Spectrum:
			if m["Application"] != e.App || m["ClientTlsClientHelloServerName"] != e.ClientTLS.ServerName {
				t.Errorf("spectrum round trip: %q %q", m["Application"], m["ClientTlsClientHelloServerName"])
			}
		case EdgeOne:
			if m["ServiceID"] != e.App {
				t.Errorf("edgeone round trip: %q", m["ServiceID"])
			}
		}
	}
}

func TestCSV(t *testing.T) {
	e := fullEvent()
	e.App = `a,b "c"` + "\nd"
	e.ClientTLS.ServerName = " leading space"
	for _, ds := range Datasets {
		enc, err := NewEncoder(ds, testNode, Options{Output: CSV})
		if err != nil {
			t.Fatal(err)
		}
		data := append(append([]byte{}, enc.Header()...), enc.Append(nil, &e)...)
		data = enc.Append(data, &e)
		rows, err := csv.NewReader(bytes.NewReader(data)).ReadAll()
		if err != nil {
			t.Fatalf("%s: %v\n%s", ds, err, data)
		}
		names, _ := FieldNames(ds)
		if len(rows) != 3 || fmt.Sprint(rows[0]) != fmt.Sprint(names) {
			t.Fatalf("%s: rows %d header %v", ds, len(rows), rows[0])
		}
		row := map[string]string{}
		for i, n := range rows[0] {
			row[n] = rows[1][i]
		}
		switch ds {
		case Spectrum:
			if row["Application"] != e.App || row["ClientTlsClientHelloServerName"] != e.ClientTLS.ServerName ||
				row["IpFirewall"] != "true" || row["Status"] != "200" {
				t.Errorf("spectrum csv row: %q", row)
			}
		case EdgeOne:
			if row["ServiceID"] != e.App || row["ForwardPort"] != "2222" {
				t.Errorf("edgeone csv row: %q", row)
			}
		case CloudConnexa:
			var log map[string]any
			if err := json.Unmarshal([]byte(row["log"]), &log); err != nil || log["sessionBytesIn"] != 56789.0 {
				t.Errorf("cloudconnexa log cell %q: %v", row["log"], err)
			}
			if row["initiator"] != "" {
				t.Errorf("null cell = %q", row["initiator"])
			}
		}
	}
}

func TestCSVField(t *testing.T) {
	for in, want := range map[string]string{
		"plain": "plain", "a,b": `"a,b"`, `say "hi"`: `"say ""hi"""`, "two\nlines": "\"two\nlines\"",
		"cr\r": "\"cr\r\"", " pad": `" pad"`, "": "", `"`: `""""`,
	} {
		if got := string(AppendCSVField([]byte("x,"), in)); got != "x,"+want {
			t.Errorf("%q -> %q, want %q", in, got, "x,"+want)
		}
	}
}

// TestZeroAllocs: Spectrum and EdgeOne ndjson rendering allocate nothing.
func TestZeroAllocs(t *testing.T) {
	e := fullEvent()
	for _, ds := range []string{Spectrum, EdgeOne} {
		for _, out := range []Output{NDJSON, CSV} {
			enc, _ := NewEncoder(ds, testNode, Options{Output: out, TimestampFormat: func() TimestampFormat {
				if ds == Spectrum {
					return RFC3339
				}
				return UnixNano
			}()})
			buf := make([]byte, 0, 4096)
			n := testing.AllocsPerRun(200, func() { buf = enc.Append(buf[:0], &e) })
			if n != 0 {
				t.Errorf("%s output %d: %v allocs/record", ds, out, n)
			}
		}
	}
}

// TestPlanMatchesFieldLoop checks that the pre-encoded field plan of a
// fixed-key dataset writes what the general field loop writes, for the
// full selection, a chosen order and a job's own delimiters.
func TestPlanMatchesFieldLoop(t *testing.T) {
	e := fullEvent()
	e.App = "a\"pp\n\u2028é" // escapes on the slow path
	dash, open, close := " | ", "<", ">\n"
	for ds, two := range map[string][]string{Spectrum: {"Status", "ClientIP"}, EdgeOne: {"ClientRegion", "ClientRealIP"}} {
		for _, opt := range []Options{
			{},
			{Fields: two},
			{OutputOptions: OutputOptions{FieldDelimiter: &dash, RecordPrefix: &open, RecordSuffix: &close}},
		} {
			enc, err := NewEncoder(ds, testNode, opt)
			if err != nil {
				t.Fatal(err)
			}
			if enc.plan == nil {
				t.Fatalf("%s %+v: no plan", ds, opt)
			}
			got := string(enc.Append(nil, &e))
			enc.plan = nil
			if want := string(enc.Append(nil, &e)); got != want {
				t.Errorf("%s %+v:\nplan  %s\nloop  %s", ds, opt, got, want)
			}
		}
	}
	for _, ds := range []string{CloudConnexa, OCSF} {
		enc, err := NewEncoder(ds, testNode, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if enc.plan != nil {
			t.Errorf("%s has renamed or omitted keys but got a plan", ds)
		}
	}
}

// TestCSVQuotesTheJobsDelimiter: with a field_delimiter other than ",", a
// cell holding it is quoted, so that a CSV reader splitting on that
// delimiter gets back every cell: an app id with "|", and with ":" the
// colons of an IPv6 address and of RFC 3339 times.
func TestCSVQuotesTheJobsDelimiter(t *testing.T) {
	e := fullEvent()
	e.App = "a|b;c"
	for _, delim := range []string{"|", ";", ":", "\t"} {
		for _, ds := range []string{Spectrum, EdgeOne} {
			opt := Options{Output: CSV, OutputOptions: OutputOptions{FieldDelimiter: &delim}}
			if ds == Spectrum {
				opt.TimestampFormat = RFC3339
			}
			enc, err := NewEncoder(ds, testNode, opt)
			if err != nil {
				t.Fatal(err)
			}
			names, _ := FieldNames(ds)
			r := csv.NewReader(bytes.NewReader(append(enc.Header(), enc.Append(nil, &e)...)))
			r.Comma = rune(delim[0])
			rows, err := r.ReadAll()
			if err != nil {
				t.Fatalf("%s, delimiter %q: %v", ds, delim, err)
			}
			if len(rows) != 2 || len(rows[0]) != len(names) || len(rows[1]) != len(names) {
				t.Fatalf("%s, delimiter %q: rows %q, want a header and a record of %d cells", ds, delim, rows, len(names))
			}
			for i, name := range names {
				if name == "Application" || name == "ClientIP" || name == "OriginIP" {
					if rows[1][i] == "" {
						t.Errorf("%s, delimiter %q: %s is empty", ds, delim, name)
					}
				}
				if name == "Application" && rows[1][i] != e.App {
					t.Errorf("%s, delimiter %q: Application %q, want %q", ds, delim, rows[1][i], e.App)
				}
			}
		}
	}
}
