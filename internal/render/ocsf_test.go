package render

import (
	"encoding/json"
	"math"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/prismproxy/prism/internal/event"
	"github.com/prismproxy/prism/internal/render/ocsftest"
)

// ocsfCases is every event type prism writes, TCP and UDP, TLS and not,
// IPv4, IPv6 and unix sockets.
func ocsfCases() map[string]event.Event {
	out := map[string]event.Event{}
	base := fullEvent()
	for _, tc := range []struct {
		name   string
		typ    event.Type
		status int
	}{
		{"connect", event.Connect, event.StatusConnect},
		{"disconnect", event.Disconnect, event.StatusOK},
		{"reset", event.Disconnect, event.StatusClientReset},
		{"timeout", event.Disconnect, event.StatusOriginTimeout},
		{"clientFiltered", event.ClientFiltered, event.StatusFiltered},
		{"tlsError", event.TLSError, event.StatusClientHandshake},
		{"resolveOrigin", event.ResolveOrigin, event.StatusResolveFailed},
		{"originError", event.OriginError, event.StatusOriginConnRefused},
		{"interim", event.Interim, event.StatusConnect},
	} {
		e := base
		e.Type, e.Status = tc.typ, tc.status
		if !tc.typ.Terminal() {
			e.DisconnectTime = time.Time{}
			e.CloseSide, e.CloseReason = event.SideNone, event.ReasonNone
		}
		if tc.status == event.StatusClientReset {
			e.CloseReason = event.ReasonPeerError
		}
		switch tc.typ {
		case event.ClientFiltered, event.TLSError:
			e.OriginAddr, e.OriginTLS, e.ConnectTime = netip.AddrPort{}, event.NoTLS, time.Time{}
			if tc.typ == event.ClientFiltered {
				e.FirewallMatch = event.FirewallBlockCountry
			}
		case event.ResolveOrigin:
			e.OriginAddr, e.OriginTLS, e.OriginName = netip.AddrPort{}, event.NoTLS, "db.internal.example"
			e.Detail = "no such host"
		}
		out[tc.name] = e
		udp := e
		udp.ClientProto, udp.OriginProto = event.ProtoUDP, event.ProtoUDP
		udp.ClientTLS, udp.OriginTLS, udp.TLSMode = event.NoTLS, event.NoTLS, "off"
		udp.ClientRTT, udp.OriginRTT = 0, 0
		udp.ClientAddr = netip.MustParseAddrPort("192.0.2.7:5353")
		udp.Firewall, udp.FirewallMatch = false, event.FirewallUnknown
		if tc.typ == event.ClientFiltered {
			udp.Firewall, udp.FirewallMatch = true, event.FirewallBlockIP
		}
		out[tc.name+"/udp"] = udp
		unix := e
		unix.ClientProto, unix.OriginProto = event.ProtoUnix, event.ProtoUnix
		unix.ClientAddr, unix.PeerAddr, unix.LocalAddr = netip.AddrPort{}, netip.AddrPort{}, netip.AddrPort{}
		unix.ClientPath = "/run/prism/app.sock"
		unix.Country, unix.ASN = "", 0
		if unix.OriginAddr.IsValid() {
			unix.OriginAddr, unix.OriginPath = netip.AddrPort{}, "/run/origin.sock"
		}
		out[tc.name+"/unix"] = unix
	}
	// Everything unset but the time, which every event the proxy or a
	// conversion produces carries (the validator wants epoch ms, not 0).
	empty := event.New("", event.ID{})
	empty.Type, empty.Time = event.Disconnect, base.Time
	out["empty"] = empty
	return out
}

// TestOCSFValidatesAgainstSchema renders every case and checks it against
// the vendored OCSF 1.8.0 schema.
func TestOCSFValidatesAgainstSchema(t *testing.T) {
	s, err := ocsftest.Load()
	if err != nil {
		t.Fatal(err)
	}
	for name, e := range ocsfCases() {
		out := render1(t, OCSF, Options{}, &e)
		if probs := s.Validate(out); len(probs) > 0 {
			t.Errorf("%s:\n  %s\n%s", name, strings.Join(probs, "\n  "), out)
		}
	}
}

// TestOCSFValidatorCatchesProblems makes sure the checker is not vacuous.
func TestOCSFValidatorCatchesProblems(t *testing.T) {
	s, err := ocsftest.Load()
	if err != nil {
		t.Fatal(err)
	}
	e := fullEvent()
	good := string(render1(t, OCSF, Options{}, &e))
	for _, tc := range []struct{ from, to, want string }{
		{`"class_uid":4001`, `"class_uid":4002`, "class_uid"},
		{`"activity_id":2`, `"activity_id":9`, "activity_id"},
		{`"severity":"Informational"`, `"severity":"High"`, "severity"},
		{`"time":`, `"timex":`, "timex: not an attribute"},
		{`"port":51234`, `"port":"51234"`, "src_endpoint.port"},
		{`"port":51234`, `"port":70000`, "src_endpoint.port"},
		{`"ip":"81.2.69.142"`, `"ip":"not-an-ip"`, "src_endpoint.ip"},
		{`"metadata":{"version":"1.8.0",`, `"metadata":{`, "metadata.version: required"},
		{`"direction_id":1,`, ``, "direction_id: required"},
		{`"type_uid":400102`, `"type_uid":400101`, "type_uid"},
		// timestamp_t is epoch ms: seconds and nanoseconds are caught.
		{`"time":1795320690123`, `"time":1795320690`, "time: 1795320690 is not epoch milliseconds"},
		{`"time":1795320690123`, `"time":1795320690123000000`, "time: 1795320690123000000 is not epoch milliseconds"},
		{`"start_time":1795320600123`, `"start_time":1795320600123456`, "start_time: 1795320600123456 is not epoch"},
		{`"metadata":{"version":"1.8.0"`, `"metadata":{"version":"1.1.0"`, `metadata.version: "1.1.0", want the schema's "1.8.0"`},
		{`"profiles":["network_proxy","security_control"]`, `"profiles":[]`,
			"proxy_endpoint: an attribute of profile network_proxy, which metadata.profiles does not list"},
		{`"profiles":["network_proxy","security_control"]`, `"profiles":["network_proxy"]`,
			"disposition_id: an attribute of profile security_control"},
		{`"profiles":["network_proxy","security_control"]`, `"profiles":["network_proxy","security_control","no_such"]`,
			"metadata.profiles[2]: no_such is not a profile of the schema"},
		{`"severity_id":1,`, `"severity_id":4,"severity_id":1,`, "severity_id: duplicate key"},
		{`"location":{"country":"GB"}`, `"location":{"country":"GB","country":"SE"}`, "src_endpoint.location.country: duplicate key"},
		{"\n", `} trailing`, "(record): 10 bytes after the JSON object"},
	} {
		bad := strings.Replace(good, tc.from, tc.to, 1)
		if bad == good {
			t.Fatalf("case %q does not change the record:\n%s", tc.from, good)
		}
		probs := strings.Join(s.Validate([]byte(bad)), "\n")
		if !strings.Contains(probs, tc.want) {
			t.Errorf("%s -> %s: want a problem about %q, got %q", tc.from, tc.to, tc.want, probs)
		}
	}
	line := strings.TrimSuffix(good, "\n")
	if probs := s.Validate([]byte(line + line)); !strings.Contains(strings.Join(probs, "\n"), "bytes after the JSON object") {
		t.Errorf("two records on one line: %v", probs)
	}
	if probs := s.Validate([]byte(line + "\n" + line + "\n")); len(probs) == 0 {
		t.Errorf("two records: no problem")
	}
	if probs := s.Validate([]byte(line + " \r\n")); len(probs) > 0 {
		t.Errorf("trailing white space: %v", probs)
	}
}

func TestOCSFMapping(t *testing.T) {
	cases := ocsfCases()
	for name, want := range map[string]int{
		"connect": OCSFActivityOpen, "disconnect": OCSFActivityClose, "reset": OCSFActivityReset,
		"timeout": OCSFActivityClose, "clientFiltered": OCSFActivityRefuse, "tlsError": OCSFActivityFail,
		"resolveOrigin": OCSFActivityFail, "originError": OCSFActivityFail, "interim": OCSFActivityTraffic,
	} {
		e := cases[name]
		var rec map[string]any
		if err := json.Unmarshal(render1(t, OCSF, Options{}, &e), &rec); err != nil {
			t.Fatal(err)
		}
		if got := int(rec["activity_id"].(float64)); got != want {
			t.Errorf("%s: activity_id %d, want %d", name, got, want)
		}
		if got := int64(rec["time"].(float64)); got != e.Time.UnixMilli() {
			t.Errorf("%s: time %d, want %d ms", name, got, e.Time.UnixMilli())
		}
		if name == "interim" {
			if _, ok := rec["status_code"]; ok {
				t.Errorf("interim has a status_code")
			}
		} else if rec["status_code"] != strings.TrimSpace(strings.Split(string(mustJSON(e.Status)), "\n")[0]) {
			t.Errorf("%s: status_code %v, want %d", name, rec["status_code"], e.Status)
		}
		tr := rec["traffic"].(map[string]any)
		if int64(tr["bytes_out"].(float64)) != e.ClientBytesDelta || int64(tr["bytes_in"].(float64)) != e.OriginBytesDelta {
			t.Errorf("%s: traffic %v, want deltas %d/%d", name, tr, e.ClientBytesDelta, e.OriginBytesDelta)
		}
		ct := rec["cumulative_traffic"].(map[string]any)
		if int64(ct["bytes_out"].(float64)) != e.ClientBytes || int64(ct["bytes_in"].(float64)) != e.OriginBytes {
			t.Errorf("%s: cumulative_traffic %v, want totals", name, ct)
		}
		_, disp := rec["disposition_id"]
		if name == "clientFiltered" {
			if rec["disposition"] != "Blocked" || rec["action"] != "Denied" {
				t.Errorf("clientFiltered: disposition %v action %v", rec["disposition"], rec["action"])
			}
		} else if !disp || rec["disposition"] != "Allowed" {
			t.Errorf("%s (firewall on): disposition %v", name, rec["disposition"])
		}
		src := rec["src_endpoint"].(map[string]any)
		if src["ip"] != "81.2.69.142" || src["location"].(map[string]any)["country"] != "GB" ||
			src["autonomous_system"].(map[string]any)["number"] != float64(29518) {
			t.Errorf("%s: src_endpoint %v", name, src)
		}
	}
	e := cases["disconnect"]
	var rec map[string]any
	_ = json.Unmarshal(render1(t, OCSF, Options{}, &e), &rec)
	tls := rec["tls"].(map[string]any)
	if tls["version"] != "TLSv1.3" || tls["sni"] != "ssh.example.com" || tls["cipher"] != "AEAD-AES128-GCM-SHA256" {
		t.Errorf("tls %v", tls)
	}
	ptls := rec["proxy_tls"].(map[string]any)
	fp := ptls["certificate"].(map[string]any)["fingerprints"].([]any)[0].(map[string]any)
	if fp["value"] != strings.Repeat("ab", 32) || fp["algorithm"] != "SHA-256" {
		t.Errorf("proxy_tls %v", ptls)
	}
	u := cases["disconnect/udp"]
	rec = nil
	_ = json.Unmarshal(render1(t, OCSF, Options{}, &u), &rec)
	if _, ok := rec["tls"]; ok {
		t.Errorf("a UDP record without TLS has a tls object")
	}
	if ci := rec["connection_info"].(map[string]any); ci["protocol_num"] != float64(17) || ci["protocol_name"] != "udp" {
		t.Errorf("udp connection_info %v", ci)
	}
}

func mustJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return []byte(strings.Trim(string(b), `"`))
}

// TestOCSFZeroAllocs: rendering an OCSF record allocates nothing, like the
// other datasets (the data path hands every event to every job).
func TestOCSFZeroAllocs(t *testing.T) {
	e := fullEvent()
	for _, out := range []Output{NDJSON, CSV} {
		enc, _ := NewEncoder(OCSF, testNode, Options{Output: out})
		buf := make([]byte, 0, 8192)
		if n := testing.AllocsPerRun(200, func() { buf = enc.Append(buf[:0], &e) }); n != 0 {
			t.Errorf("output %d: %v allocs/record", out, n)
		}
	}
}

func BenchmarkRenderOCSF(b *testing.B) {
	e := fullEvent()
	enc, err := NewEncoder(OCSF, testNode, Options{})
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 0, 8192)
	b.ReportAllocs()
	for b.Loop() {
		buf = enc.Append(buf[:0], &e)
	}
	b.SetBytes(int64(len(buf)))
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

// TestOCSFDisconnectActivityByStatus: every Status a disconnect can carry
// (spec §2, with the close reason errstatus gives it) maps to the activity
// docs/logging.md's table says. Unreachable and refused peers are closes,
// not resets, though their reason is ReasonPeerError like an RST's.
func TestOCSFDisconnectActivityByStatus(t *testing.T) {
	s, err := ocsftest.Load()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		status int
		reason event.Reason
		want   int
	}{
		{event.StatusOK, event.ReasonPeerClose, OCSFActivityClose},
		{event.StatusOK, event.ReasonTimeout, OCSFActivityClose},
		{event.StatusOK, event.ReasonClosed, OCSFActivityClose},
		{event.StatusOK, event.ReasonChannelEOF, OCSFActivityClose},
		{event.StatusOriginReset, event.ReasonPeerError, OCSFActivityReset},
		{event.StatusOriginTimeout, event.ReasonTimeout, OCSFActivityClose},
		{event.StatusOriginUnreachable, event.ReasonPeerError, OCSFActivityClose},
		{event.StatusOriginRefused, event.ReasonPeerError, OCSFActivityClose},
		{event.StatusOriginPipe, event.ReasonPeerError, OCSFActivityReset},
		{event.StatusClientTLSError, event.ReasonPeerError, OCSFActivityReset},
		{event.StatusClientRefused, event.ReasonPeerError, OCSFActivityClose},
		{event.StatusClientUnreachable, event.ReasonPeerError, OCSFActivityClose},
		{event.StatusClientTimeout, event.ReasonTimeout, OCSFActivityClose},
		{event.StatusClientPipe, event.ReasonPeerError, OCSFActivityReset},
		{event.StatusClientReset, event.ReasonPeerError, OCSFActivityReset},
		{event.StatusInternal, event.ReasonPeerError, OCSFActivityReset},
		{event.StatusInternal, event.ReasonClosed, OCSFActivityClose},
		{event.StatusUnknown, event.ReasonPeerError, OCSFActivityReset},
	} {
		e := fullEvent()
		e.Status, e.CloseReason = tc.status, tc.reason
		out := render1(t, OCSF, Options{}, &e)
		if probs := s.Validate(out); len(probs) > 0 {
			t.Errorf("%d %v: %v", tc.status, tc.reason, probs)
		}
		var rec struct {
			ActivityID int `json:"activity_id"`
			SeverityID int `json:"severity_id"`
			StatusID   int `json:"status_id"`
		}
		if err := json.Unmarshal(out, &rec); err != nil {
			t.Fatal(err)
		}
		wantSev, wantStatus := 1, 2
		if tc.want == OCSFActivityReset {
			wantSev = 2
		}
		if tc.status == event.StatusOK {
			wantStatus = 1
		}
		if rec.ActivityID != tc.want || rec.SeverityID != wantSev || rec.StatusID != wantStatus {
			t.Errorf("disconnect %d (%v): activity %d severity %d status %d, want %d %d %d",
				tc.status, tc.reason, rec.ActivityID, rec.SeverityID, rec.StatusID, tc.want, wantSev, wantStatus)
		}
	}
}

// TestOCSFLargeASN: autonomous_system.number is integer_t (int32); a
// 32-bit AS number above 2^31-1 (the private 4200000000+ range) would break
// it, so it is left out of src_endpoint and kept in unmapped.client_asn.
func TestOCSFLargeASN(t *testing.T) {
	s, err := ocsftest.Load()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		asn      uint32
		inSrc    bool
		unmapped bool
	}{
		{29518, true, false},
		{math.MaxInt32, true, false},
		{math.MaxInt32 + 1, false, true},
		{4200000001, false, true},
		{math.MaxUint32, false, true},
	} {
		e := fullEvent()
		e.ASN = tc.asn
		out := render1(t, OCSF, Options{}, &e)
		if probs := s.Validate(out); len(probs) > 0 {
			t.Errorf("AS%d: %v", tc.asn, probs)
		}
		var rec struct {
			Src struct {
				AS *struct {
					Number int64 `json:"number"`
				} `json:"autonomous_system"`
			} `json:"src_endpoint"`
			Unmapped struct {
				ASN *int64 `json:"client_asn"`
			} `json:"unmapped"`
		}
		if err := json.Unmarshal(out, &rec); err != nil {
			t.Fatal(err)
		}
		if (rec.Src.AS != nil) != tc.inSrc || (tc.inSrc && rec.Src.AS.Number != int64(tc.asn)) {
			t.Errorf("AS%d: src_endpoint.autonomous_system %+v", tc.asn, rec.Src.AS)
		}
		if (rec.Unmapped.ASN != nil) != tc.unmapped || (tc.unmapped && *rec.Unmapped.ASN != int64(tc.asn)) {
			t.Errorf("AS%d: unmapped.client_asn %v", tc.asn, rec.Unmapped.ASN)
		}
	}
}

// TestOCSFUnknownTLSVersion: tls.version is required and is the protocol
// version; a leg whose version prism could not tell (tlsedge writes
// "unknown" for a failed client handshake, a passthrough peek and a failed
// origin handshake) gets no tls / proxy_tls object, and its SNI and
// fingerprint are kept in unmapped instead.
func TestOCSFUnknownTLSVersion(t *testing.T) {
	s, err := ocsftest.Load()
	if err != nil {
		t.Fatal(err)
	}
	fp := strings.Repeat("cd", 32)
	unknown := func(status, sni, fp string) event.TLS {
		return event.TLS{Protocol: event.TLSProtocolUnknown, Cipher: event.TLSCipherUnknown, Status: status, ServerName: sni, Fingerprint: fp}
	}
	tlsError := fullEvent()
	tlsError.Type, tlsError.Status = event.TLSError, event.StatusClientHandshake
	tlsError.OriginAddr, tlsError.OriginTLS = netip.AddrPort{}, event.NoTLS
	tlsError.ClientTLS = unknown("HANDSHAKE_FAILED", "x.example", "")
	passthrough := fullEvent()
	passthrough.TLSMode, passthrough.OriginTLS = "off", event.NoTLS
	passthrough.ClientTLS = unknown(event.TLSStatusUnknown, "ssh.example.com", "")
	originError := fullEvent()
	originError.Type, originError.Status = event.OriginError, event.StatusOriginUnknown
	originError.OriginTLS = unknown("HANDSHAKE_FAILED", "origin.example", fp)
	for name, tc := range map[string]struct {
		e                       event.Event
		tls, proxyTLS           bool
		clientSNI, originSNI, f string
	}{
		"tlsError":    {e: tlsError, clientSNI: "x.example"},
		"passthrough": {e: passthrough, clientSNI: "ssh.example.com"},
		"originError": {e: originError, tls: true, originSNI: "origin.example", f: fp},
		"known":       {e: fullEvent(), tls: true, proxyTLS: true},
	} {
		out := render1(t, OCSF, Options{}, &tc.e)
		if probs := s.Validate(out); len(probs) > 0 {
			t.Errorf("%s: %v", name, probs)
		}
		if strings.Contains(string(out), `"version":"unknown"`) {
			t.Errorf("%s: a tls version \"unknown\": %s", name, out)
		}
		var rec struct {
			TLS      map[string]any `json:"tls"`
			ProxyTLS map[string]any `json:"proxy_tls"`
			Unmapped map[string]any `json:"unmapped"`
		}
		if err := json.Unmarshal(out, &rec); err != nil {
			t.Fatal(err)
		}
		if (rec.TLS != nil) != tc.tls || (rec.ProxyTLS != nil) != tc.proxyTLS {
			t.Errorf("%s: tls %v proxy_tls %v, want present %v %v", name, rec.TLS, rec.ProxyTLS, tc.tls, tc.proxyTLS)
		}
		for k, want := range map[string]string{"client_tls_sni": tc.clientSNI, "origin_tls_sni": tc.originSNI, "origin_tls_fingerprint": tc.f} {
			got, ok := rec.Unmapped[k]
			if want == "" && ok || want != "" && got != want {
				t.Errorf("%s: unmapped.%s = %v, want %q", name, k, got, want)
			}
		}
	}
}

// TestOCSFFieldSelectionKeepsRequired: a job may select ocsf fields, but a
// record without base_event's required attributes is not OCSF, so they are
// written whatever the selection (after the selected ones), and every
// selection of one field still validates, for every case.
func TestOCSFFieldSelectionKeepsRequired(t *testing.T) {
	s, err := ocsftest.Load()
	if err != nil {
		t.Fatal(err)
	}
	names, _ := FieldNames(OCSF)
	cases := ocsfCases()
	for _, sel := range append([][]string{{"activity_id", "time", "src_endpoint"}}, func() (out [][]string) {
		for _, n := range names {
			out = append(out, []string{n})
		}
		return out
	}()...) {
		for name, e := range cases {
			out := render1(t, OCSF, Options{Fields: sel}, &e)
			if probs := s.Validate(out); len(probs) > 0 {
				t.Errorf("fields %v, %s: %v\n%s", sel, name, probs, out)
			}
		}
	}
	e := fullEvent()
	out := string(render1(t, OCSF, Options{Fields: []string{"time", "activity_name", "activity_id"}}, &e))
	if !strings.HasPrefix(out, `{"time":1795320690123,"activity_name":"Close","activity_id":2,"category_uid":4,`) ||
		strings.Count(out, `"activity_id"`) != 1 || strings.Count(out, `"time"`) != 1 || strings.Contains(out, `"unmapped"`) {
		t.Errorf("selected fields first, then the required ones not selected, once each: %s", out)
	}
	enc, err := NewEncoder(OCSF, testNode, Options{Fields: []string{"activity_name"}, Output: CSV})
	if err != nil {
		t.Fatal(err)
	}
	if h := string(enc.Header()); h != "activity_name,activity_id,category_uid,class_uid,type_uid,severity_id,time,src_endpoint,metadata\n" {
		t.Errorf("csv header %q", h)
	}
	// the vendor datasets write exactly what is selected
	if out := string(render1(t, Spectrum, Options{Fields: []string{"Status"}}, &e)); out != `{"Status":200}`+"\n" {
		t.Errorf("spectrum: %s", out)
	}
}
