package logjob

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/prismproxy/prism/internal/event"
	"github.com/prismproxy/prism/internal/render"
)

func filterEvent() event.Event {
	e := event.New("ssh-app", event.NewID(time.Unix(1795000000, 0)))
	e.Type = event.Disconnect
	e.Status = 499
	e.Time = time.Date(2026, 11, 22, 4, 10, 0, 0, time.UTC)
	e.ClientProto = event.ProtoTCP
	e.ClientAddr = netip.MustParseAddrPort("81.2.69.142:40000")
	e.Country = "GB"
	e.ClientBytes = 1000
	e.Firewall = true
	return e
}

func mustEncoder(t *testing.T, ds string, ts render.TimestampFormat) *render.Encoder {
	t.Helper()
	enc, err := render.NewEncoder(ds, render.Node{Colo: "SJC"}, render.Options{TimestampFormat: ts})
	if err != nil {
		t.Fatal(err)
	}
	return enc
}

func leaf(key, op, value string) string {
	return `{"key":"` + key + `","operator":"` + op + `","value":` + value + `}`
}

func where(c string) string { return `{"where":` + c + `}` }

func TestFilterOperators(t *testing.T) {
	e := filterEvent()
	tests := []struct {
		filter string
		want   bool
	}{
		// string field ClientCountry = "gb" (Spectrum lower-cases), ClientIP 81.2.69.142
		{leaf("ClientCountry", "eq", `"gb"`), true},
		{leaf("ClientCountry", "eq", `"GB"`), false},
		{leaf("ClientCountry", "!eq", `"ca"`), true},
		{leaf("ClientCountry", "!eq", `"gb"`), false},
		{leaf("ClientIP", "startsWith", `"81.2."`), true},
		{leaf("ClientIP", "startsWith", `"82."`), false},
		{leaf("ClientIP", "!startsWith", `"82."`), true},
		{leaf("ClientIP", "!startsWith", `"81."`), false},
		{leaf("ClientIP", "endsWith", `".142"`), true},
		{leaf("ClientIP", "endsWith", `".143"`), false},
		{leaf("ClientIP", "!endsWith", `".143"`), true},
		{leaf("ClientIP", "!endsWith", `".142"`), false},
		{leaf("Application", "contains", `"sh-a"`), true},
		{leaf("Application", "contains", `"http"`), false},
		{leaf("Application", "!contains", `"http"`), true},
		{leaf("Application", "!contains", `"ssh"`), false},
		{leaf("ClientCountry", "in", `["us","gb"]`), true},
		{leaf("ClientCountry", "in", `["us","ca"]`), false},
		{leaf("ClientCountry", "!in", `["us","ca"]`), true},
		{leaf("ClientCountry", "!in", `["gb"]`), false},
		{leaf("Event", "lt", `"e"`), true}, // "disconnect" < "e"
		{leaf("Event", "gt", `"e"`), false},
		{leaf("Event", "leq", `"disconnect"`), true},
		{leaf("Event", "geq", `"disconnect"`), true},
		// int field Status = 499
		{leaf("Status", "eq", `499`), true},
		{leaf("Status", "eq", `200`), false},
		{leaf("Status", "!eq", `200`), true},
		{leaf("Status", "lt", `499`), false},
		{leaf("Status", "lt", `500`), true},
		{leaf("Status", "leq", `499`), true},
		{leaf("Status", "leq", `498`), false},
		{leaf("Status", "gt", `498`), true},
		{leaf("Status", "gt", `499`), false},
		{leaf("Status", "geq", `499`), true},
		{leaf("Status", "geq", `500`), false},
		{leaf("Status", "in", `[444, 499]`), true},
		{leaf("Status", "in", `[200]`), false},
		{leaf("Status", "!in", `[200, 0]`), true},
		{leaf("Status", "!in", `[499]`), false},
		{leaf("ClientBytes", "geq", `1e3`), true},
		// bool field IpFirewall = true
		{leaf("IpFirewall", "eq", `true`), true},
		{leaf("IpFirewall", "!eq", `true`), false},
		{leaf("IpFirewall", "in", `[false]`), false},
		{leaf("IpFirewall", "!in", `[false]`), true},
		// timestamps in unixnano are ints
		{leaf("Timestamp", "geq", `1795320000000000000`), true},
		{leaf("ConnectTimestamp", "eq", `0`), true},
	}
	for _, tc := range tests {
		for _, spec := range []string{where(tc.filter), where(`{"and":[` + tc.filter + `]}`)} {
			enc := mustEncoder(t, render.Spectrum, render.UnixNano)
			f, err := CompileFilter(spec, enc)
			if err != nil {
				t.Fatalf("%s: %v", spec, err)
			}
			enc.Bind(&e)
			if got := f.Match(enc); got != tc.want {
				t.Errorf("%s = %v, want %v", spec, got, tc.want)
			}
		}
	}
}

func TestFilterGroups(t *testing.T) {
	e := filterEvent()
	tests := []struct {
		filter string
		want   bool
	}{
		{`{"and":[` + leaf("Status", "eq", "499") + `,` + leaf("ClientCountry", "eq", `"gb"`) + `]}`, true},
		{`{"and":[` + leaf("Status", "eq", "499") + `,` + leaf("ClientCountry", "eq", `"us"`) + `]}`, false},
		{`{"or":[` + leaf("Status", "eq", "200") + `,` + leaf("ClientCountry", "eq", `"gb"`) + `]}`, true},
		{`{"or":[` + leaf("Status", "eq", "200") + `,` + leaf("ClientCountry", "eq", `"us"`) + `]}`, false},
		{`{"and":[` + leaf("Event", "eq", `"disconnect"`) + `,{"or":[` + leaf("Status", "eq", "200") + `,{"and":[` +
			leaf("Status", "geq", "490") + `,` + leaf("Status", "leq", "499") + `]}]}]}`, true},
		{`{"and":[` + leaf("Event", "eq", `"connect"`) + `,{"or":[` + leaf("Status", "eq", "499") + `]}]}`, false},
	}
	for _, tc := range tests {
		enc := mustEncoder(t, render.Spectrum, render.UnixNano)
		f, err := CompileFilter(where(tc.filter), enc)
		if err != nil {
			t.Fatalf("%s: %v", tc.filter, err)
		}
		enc.Bind(&e)
		if got := f.Match(enc); got != tc.want {
			t.Errorf("%s = %v, want %v", tc.filter, got, tc.want)
		}
	}
}

// TestFilterTypedTimestamps: a timestamp compares as the job renders it.
func TestFilterTypedTimestamps(t *testing.T) {
	e := filterEvent()
	enc := mustEncoder(t, render.Spectrum, render.RFC3339)
	f, err := CompileFilter(where(leaf("Timestamp", "startsWith", `"2026-11-22T04"`)), enc)
	if err != nil {
		t.Fatal(err)
	}
	enc.Bind(&e)
	if !f.Match(enc) {
		t.Error("rfc3339 Timestamp startsWith did not match")
	}
	if _, err := CompileFilter(where(leaf("Timestamp", "geq", `1`)), enc); err == nil {
		t.Error("rfc3339 Timestamp accepted an int")
	}
	enc = mustEncoder(t, render.Spectrum, render.Unix)
	f, _ = CompileFilter(where(leaf("Timestamp", "eq", `1795320600`)), enc)
	enc.Bind(&e)
	if f == nil || !f.Match(enc) {
		t.Error("unix Timestamp eq did not match")
	}
}

func TestFilterEdgeOneAndCloudConnexa(t *testing.T) {
	e := filterEvent()
	e.CloseSide, e.CloseReason = event.SideOrigin, event.ReasonTimeout
	enc := mustEncoder(t, render.EdgeOne, render.UnixNano)
	f, err := CompileFilter(where(leaf("DisconnetReason", "startsWith", `"up:"`)), enc)
	if err != nil {
		t.Fatal(err)
	}
	enc.Bind(&e)
	if !f.Match(enc) {
		t.Error("edgeone DisconnetReason startsWith up: did not match")
	}
	enc = mustEncoder(t, render.CloudConnexa, render.UnixNano)
	f, err = CompileFilter(where(leaf("eventName", "eq", `"client-disconnected"`)), enc)
	if err != nil {
		t.Fatal(err)
	}
	enc.Bind(&e)
	if !f.Match(enc) {
		t.Error("cloudconnexa eventName did not match")
	}
}

func TestFilterErrors(t *testing.T) {
	tests := []struct {
		ds, filter, want string
	}{
		{render.Spectrum, `{"where":`, "malformed filter JSON"},
		{render.Spectrum, `{"where":{}} x`, "extra data"},
		{render.Spectrum, `[1]`, `a filter is an object`},
		{render.Spectrum, `{"when":{}}`, `unknown key "when"`},
		{render.Spectrum, `{}`, `no "where"`},
		{render.Spectrum, where(`[]`), "where: want an object"},
		{render.Spectrum, where(`{"and":[]}`), "where.and: want a non-empty array"},
		{render.Spectrum, where(`{"or":{}}`), "where.or: want a non-empty array"},
		{render.Spectrum, where(`{"and":[],"or":[]}`), "exactly one key"},
		{render.Spectrum, where(leaf("Nope", "eq", `1`)), `where.key: unknown field "Nope" for dataset spectrum_events`},
		{render.EdgeOne, where(leaf("DisconnectReason", "eq", `"-"`)), `unknown field "DisconnectReason" for dataset edgeone_l4`},
		{render.Spectrum, where(leaf("Status", "like", `1`)), `where.operator: unknown operator "like"`},
		{render.Spectrum, where(leaf("Status", "neq", `1`)), `unknown operator "neq"`},
		{render.Spectrum, where(leaf("Status", "eq", `"200"`)), `where.value: field Status is an int, so "eq" needs an integer value, got a string`},
		{render.Spectrum, where(leaf("Status", "eq", `200.5`)), `needs an integer value, got 200.5`},
		{render.Spectrum, where(leaf("ClientIP", "eq", `1`)), `field ClientIP is a string, so "eq" needs a string value, got a number`},
		{render.Spectrum, where(leaf("IpFirewall", "eq", `"true"`)), `field IpFirewall is a bool`},
		{render.Spectrum, where(leaf("Status", "contains", `"2"`)), `operator "contains" works on string fields; Status is int`},
		{render.Spectrum, where(leaf("IpFirewall", "lt", `true`)), `operator "lt" does not apply to bool field`},
		{render.Spectrum, where(leaf("Status", "in", `200`)), `operator "in" needs a non-empty array of int values`},
		{render.Spectrum, where(leaf("Status", "!in", `[]`)), `non-empty array`},
		{render.Spectrum, where(leaf("Status", "in", `[200,"x"]`)), `where.value[1]: field Status is an int`},
		{render.Spectrum, where(`{"key":"Status","operator":"eq"}`), "where.value: missing"},
		{render.Spectrum, where(`{"key":"Status","value":1}`), "where.operator: want one of"},
		{render.Spectrum, where(`{"key":"Status","operator":"eq","value":1,"extra":2}`), `unknown key "extra"`},
		{render.Spectrum, where(`{"and":[` + leaf("Status", "eq", "1") + `,{"or":[` + leaf("Status", "eq", `"x"`) + `]}]}`), "where.and[1].or[0].value"},
		{render.CloudConnexa, where(leaf("traceId", "eq", `"x"`)), "fresh random UUID"},
		{render.CloudConnexa, where(leaf("log", "eq", `"x"`)), "nested object"},
		{render.CloudConnexa, where(leaf("initiator", "eq", `"x"`)), "always null"},
	}
	for _, tc := range tests {
		_, err := CompileFilter(tc.filter, mustEncoder(t, tc.ds, render.UnixNano))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err %v, want it to contain %q", tc.filter, err, tc.want)
		}
	}
	if f, err := CompileFilter("  ", mustEncoder(t, render.Spectrum, render.UnixNano)); f != nil || err != nil {
		t.Errorf("empty filter: %v %v", f, err)
	}
}

func TestFilterMatchAllocs(t *testing.T) {
	e := filterEvent()
	enc := mustEncoder(t, render.Spectrum, render.UnixNano)
	f, err := CompileFilter(where(`{"and":[`+leaf("ClientIP", "startsWith", `"81."`)+`,`+leaf("Status", "in", `[499,200]`)+`]}`), enc)
	if err != nil {
		t.Fatal(err)
	}
	enc.Bind(&e)
	f.Match(enc) // grow scratch
	if n := testing.AllocsPerRun(100, func() { f.Match(enc) }); n != 0 {
		t.Errorf("Match: %v allocs", n)
	}
}
