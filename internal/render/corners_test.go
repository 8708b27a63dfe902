package render

import (
	"encoding/json"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/prismproxy/prism/internal/event"
)

var zeroAP netip.AddrPort

// unixEvent is a session on a unix-socket listener to a unix-socket origin:
// no address anywhere.
func unixEvent(typ event.Type) event.Event {
	e := fullEvent()
	e.Type = typ
	e.ClientProto, e.OriginProto = event.ProtoUnix, event.ProtoUnix
	e.ClientAddr, e.PeerAddr, e.LocalAddr, e.OriginAddr = zeroAP, zeroAP, zeroAP, zeroAP
	e.ClientPath, e.OriginPath = "/run/prism/app.sock", "/run/app/origin.sock"
	e.ClientRTT, e.OriginRTT = 0, 0
	switch typ {
	case event.Connect:
		e.Status, e.DisconnectTime = 0, time.Time{}
	case event.ClientFiltered:
		e.Status = event.StatusFiltered
	}
	return e
}

// TestUnixInsideVendorEnumerations (spec §7.6): EdgeOne and CloudConnexa
// have no unix sockets, so the stream is TCP there, and the addresses a
// unix socket lacks are each schema's "unknown" in the seed's type: EdgeOne
// "-" / -1, CloudConnexa "" / 0, never null. Spectrum keeps unix.
func TestUnixInsideVendorEnumerations(t *testing.T) {
	disc, conn, filtered := unixEvent(event.Disconnect), unixEvent(event.Connect), unixEvent(event.ClientFiltered)

	for _, tc := range []struct {
		seed string
		e    *event.Event
	}{
		{"cloudconnexa_client_disconnected.txt", &disc},
		{"cloudconnexa_flow_established.txt", &conn},
		{"cloudconnexa_flow_established.txt", &filtered},
	} {
		compareShape(t, "unix "+tc.e.Type.String(), parseOrdered(t, render1(t, CloudConnexa, Options{}, tc.e)), seedExample(t, tc.seed))
	}

	var rec struct {
		PublicIP       *string        `json:"publicIp"`
		ClientPublicIP *string        `json:"clientPublicIp"`
		Log            map[string]any `json:"log"`
	}
	if err := json.Unmarshal(render1(t, CloudConnexa, Options{}, &conn), &rec); err != nil {
		t.Fatal(err)
	}
	if rec.PublicIP == nil || *rec.PublicIP != "" {
		t.Errorf("flow-established publicIp = %v, want \"\"", rec.PublicIP)
	}
	for k, w := range map[string]any{"protocolName": "tcp", "protocol": 6.0, "sourceIp": "", "destinationEntityIp": "", "destinationPort": 0.0} {
		if rec.Log[k] != w {
			t.Errorf("unix flow-established log.%s = %#v, want %#v", k, rec.Log[k], w)
		}
	}
	rec.Log = nil
	if err := json.Unmarshal(render1(t, CloudConnexa, Options{}, &disc), &rec); err != nil {
		t.Fatal(err)
	}
	if rec.ClientPublicIP == nil || *rec.ClientPublicIP != "" {
		t.Errorf("client-disconnected header clientPublicIp = %v, want \"\"", rec.ClientPublicIP)
	}
	for k, w := range map[string]any{"sessionProtocol": "TCP", "clientPublicIp": ""} {
		if rec.Log[k] != w {
			t.Errorf("unix client-disconnected log.%s = %#v, want %#v", k, rec.Log[k], w)
		}
	}

	eo := map[string]any{}
	if err := json.Unmarshal(render1(t, EdgeOne, Options{}, &disc), &eo); err != nil {
		t.Fatal(err)
	}
	for k, w := range map[string]any{"ForwardProtocol": "TCP", "ClientRealIP": "-", "EdgeIP": "-", "ForwardPort": -1.0} {
		if eo[k] != w {
			t.Errorf("unix edgeone %s = %#v, want %#v", k, eo[k], w)
		}
	}

	sp := map[string]any{}
	if err := json.Unmarshal(render1(t, Spectrum, Options{}, &disc), &sp); err != nil {
		t.Fatal(err)
	}
	if sp["ClientProto"] != "unix" || sp["OriginProto"] != "unix" {
		t.Errorf("spectrum keeps unix: ClientProto %v OriginProto %v", sp["ClientProto"], sp["OriginProto"])
	}
}

// TestEdgeOneConnectTimeStampIsAccept (spec §7.4): EdgeOne's
// ConnectTimeStamp is when the edge accepted the client, on every record,
// also for sessions that never reached an origin; Spectrum's
// ConnectTimestamp stays the epoch there.
func TestEdgeOneConnectTimeStampIsAccept(t *testing.T) {
	for _, typ := range []event.Type{event.ClientFiltered, event.TLSError, event.ResolveOrigin, event.OriginError, event.Disconnect, event.Interim} {
		e := fullEvent()
		e.Type = typ
		if typ != event.Disconnect && typ != event.Interim {
			e.ConnectTime = time.Time{}
		}
		e.StartTime = time.Date(2026, 12, 1, 9, 0, 7, 0, time.UTC)
		got := map[string]any{}
		if err := json.Unmarshal(render1(t, EdgeOne, Options{}, &e), &got); err != nil {
			t.Fatal(err)
		}
		if got["ConnectTimeStamp"] != "2026-12-01T09:00:07Z" {
			t.Errorf("%s: ConnectTimeStamp = %v, want the accept time", typ, got["ConnectTimeStamp"])
		}
		if e.ConnectTime.IsZero() {
			sp := map[string]any{}
			_ = json.Unmarshal(render1(t, Spectrum, Options{}, &e), &sp)
			if sp["ConnectTimestamp"] != 0.0 {
				t.Errorf("%s: Spectrum ConnectTimestamp = %v, want 0", typ, sp["ConnectTimestamp"])
			}
		}
	}
}

// TestEdgeOneFirewallRefusal (spec §7.5): the proxy records a firewall
// refusal as closed by the proxy, which EdgeOne writes
// down:net_exception_closed, TCP and UDP alike.
func TestEdgeOneFirewallRefusal(t *testing.T) {
	for _, proto := range []string{event.ProtoTCP, event.ProtoUDP} {
		e := fullEvent()
		e.ClientProto = proto
		e.Type, e.Status = event.ClientFiltered, event.StatusFiltered
		e.CloseSide, e.CloseReason = event.SideProxy, event.ReasonClosed
		if got := EdgeOneReason(&e); got != "down:net_exception_closed" {
			t.Errorf("%s firewall refusal: %q, want down:net_exception_closed", proto, got)
		}
	}
}

// appendUTCSeconds writes what time.AppendFormat writes for the EdgeOne
// and CloudConnexa layouts, for times across and beyond four-digit years,
// in zones other than UTC, and at every boundary of the fields.
func TestAppendUTCSecondsIsAppendFormat(t *testing.T) {
	zone := time.FixedZone("x", -(9*3600 + 30*60))
	times := []time.Time{
		time.Unix(0, 0), time.Unix(0, 999_999_999), time.Unix(-1, 0),
		time.Date(1999, 12, 31, 23, 59, 59, 999_999_000, time.UTC),
		time.Date(2024, 2, 29, 0, 0, 0, 1_000, time.UTC),
		time.Date(2026, 12, 1, 18, 4, 5, 123_456_789, zone),
		time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC),
		time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC),
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		times = append(times, time.Unix(rng.Int64N(1<<37)-1<<36, rng.Int64N(1e9)).In(zone))
	}
	for _, tm := range times {
		for _, micro := range []bool{false, true} {
			layout := "2006-01-02T15:04:05Z"
			if micro {
				layout = "2006-01-02T15:04:05.000000Z"
			}
			want := tm.UTC().AppendFormat([]byte("x"), layout)
			if got := appendUTCSeconds([]byte("x"), tm, micro); string(got) != string(want) {
				t.Fatalf("%v (micro %v): %q, want %q", tm, micro, got, want)
			}
		}
	}
}

// TestCloudConnexaDestinationUnknown (spec §5): the edge listener is the
// destination of a refused flow only. An allowed flow without an origin (a
// conversion from a source that has none) had the edge address written as
// its destination, which reads back as an origin; it is "" and 0, as a
// unix-socket origin's (§7.6). A live allowed flow keeps its origin.
func TestCloudConnexaDestinationUnknown(t *testing.T) {
	dest := func(e *event.Event) (any, any) {
		var rec struct {
			Log map[string]any `json:"log"`
		}
		if err := json.Unmarshal(render1(t, CloudConnexa, Options{}, e), &rec); err != nil {
			t.Fatal(err)
		}
		return rec.Log["destinationEntityIp"], rec.Log["destinationPort"]
	}
	e := fullEvent()
	e.Type, e.Status, e.DisconnectTime = event.Connect, 0, time.Time{}
	if ip, port := dest(&e); ip != e.OriginAddr.Addr().String() || port != float64(e.OriginAddr.Port()) {
		t.Errorf("connect: destination %v:%v, want the origin %v", ip, port, e.OriginAddr)
	}
	e.OriginAddr = zeroAP
	if ip, port := dest(&e); ip != "" || port != 0.0 {
		t.Errorf("connect without an origin: destination %v:%v, want \"\" and 0 (not the edge %v)", ip, port, e.LocalAddr)
	}
	e.Type, e.Status = event.ClientFiltered, event.StatusFiltered
	if ip, port := dest(&e); ip != e.LocalAddr.Addr().String() || port != float64(e.LocalAddr.Port()) {
		t.Errorf("clientFiltered: destination %v:%v, want the edge listener %v", ip, port, e.LocalAddr)
	}
}

// TestCloudConnexaProtocolUnknown: a record without a known transport (one
// converted from a file that does not say) has sessionProtocol,
// protocolName and protocol null: sessionProtocol was EdgeOne's "-", which
// is no CloudConnexa value (seed 002 has TCP|UDP), and flow-established
// invented tcp/6.
func TestCloudConnexaProtocolUnknown(t *testing.T) {
	for _, typ := range []event.Type{event.Connect, event.Disconnect} {
		e := fullEvent()
		e.Type, e.ClientProto, e.OriginProto = typ, "", ""
		var rec struct {
			Log map[string]any `json:"log"`
		}
		if err := json.Unmarshal(render1(t, CloudConnexa, Options{}, &e), &rec); err != nil {
			t.Fatal(err)
		}
		keys := []string{"protocolName", "protocol"}
		if typ == event.Disconnect {
			keys = []string{"sessionProtocol"}
		}
		for _, k := range keys {
			if v, ok := rec.Log[k]; !ok || v != nil {
				t.Errorf("%s: log.%s = %#v (present %v), want null", typ, k, v, ok)
			}
		}
	}
}
