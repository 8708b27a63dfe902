package logs

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/prismproxy/prism/internal/logs/logstest"
	"github.com/prismproxy/prism/internal/render"
)

func filter(t *testing.T, o FilterOptions) (string, string, Result, error) {
	t.Helper()
	var out, diag bytes.Buffer
	o.Diag = &diag
	res, err := Filter(o, &out)
	return out.String(), diag.String(), res, err
}

// TestFilterCSVHeaderOnce: filtering several CSV files writes one CSV
// file: the header once (it was written again for each file), and a file
// under another header, or ndjson after CSV, is refused rather than mixed
// in.
func TestFilterCSVHeaderOnce(t *testing.T) {
	evs := logstest.Sessions(40, 2)
	a, _ := logstest.Render(render.Spectrum, evs, render.Options{Output: render.CSV, Fields: []string{"Status", "ClientIP"}})
	b, _ := logstest.Render(render.Spectrum, evs, render.Options{Output: render.CSV, Fields: []string{"ClientIP", "Status"}})
	nd, _ := logstest.Render(render.Spectrum, evs, render.Options{Fields: []string{"Status", "ClientIP"}})
	all := `{"where":{"key":"Status","operator":"geq","value":0}}`
	fa, fa2, fb, fn := writeFile(t, "a.csv", a), writeFile(t, "a2.csv", a), writeFile(t, "b.csv", b), writeFile(t, "n", nd)
	out, diag, res, err := filter(t, FilterOptions{Common: Common{From: render.Spectrum, Files: []string{fa, fa2}}, Filter: all})
	_, rows, _ := bytes.Cut(a, []byte("\n"))
	if want := string(a) + string(rows); err != nil || out != want {
		t.Fatalf("%v %+v %s\n%s", err, res, diag, firstDiff([]byte(want), []byte(out)))
	}
	for _, files := range [][]string{{fa, fb}, {fa, fn}, {fn, fa}} {
		_, diag, _, err := filter(t, FilterOptions{Common: Common{From: render.Spectrum, Files: files}, Filter: all})
		if err == nil || !strings.Contains(err.Error(), files[1]+":") || !strings.Contains(err.Error(), "separately") {
			t.Errorf("%v: %v %s", files, err, diag)
		}
	}
}

// TestFilterMatchesFileValue: string fields are matched on the value the
// file has, not on the record read back and rendered again, which is
// lossy: an EdgeOne SessionID that is not prism's 24 lower-case hex digits
// (hashed, or lower-cased), a country code's case, an address or a time
// spelled another way. Such records never matched their own value.
func TestFilterMatchesFileValue(t *testing.T) {
	eo := `{"ClientRealIP":"::ffff:1.2.3.4","ClientRegion":"GB","ConnectTimeStamp":"2024-07-15T17:00:00+08:00","DisconnetReason":"-","DisconnetTimeStamp":"-","EdgeIP":"5.6.7.8","ForwardPort":443,"ForwardProtocol":"TCP","LogTimeStamp":"2024-07-15T17:01:00+08:00","ReceivedBytes":100,"SentBytes":200,"ServiceID":"sid-1","SessionID":"abc"}
{"ClientRealIP":"1.2.3.4","ClientRegion":"gb","ConnectTimeStamp":"2024-07-15T09:00:00Z","DisconnetReason":"-","DisconnetTimeStamp":"-","EdgeIP":"5.6.7.8","ForwardPort":443,"ForwardProtocol":"TCP","LogTimeStamp":"2024-07-15T09:01:00Z","ReceivedBytes":100,"SentBytes":200,"ServiceID":"sid-1","SessionID":"2A8F9C0D1E2F3A4B5C6D7E8F"}
`
	sp := `{"ClientCountry":"GB","ClientIP":"2001:DB8::1","Status":200}
{"ClientCountry":"gb","ClientIP":"2001:db8::1","Status":200}
`
	eoLines, spLines := strings.SplitAfter(eo, "\n"), strings.SplitAfter(sp, "\n")
	for _, tc := range []struct {
		ds, data, key, op, value, want string
	}{
		{render.EdgeOne, eo, "SessionID", "eq", "abc", eoLines[0]},
		{render.EdgeOne, eo, "SessionID", "eq", "2A8F9C0D1E2F3A4B5C6D7E8F", eoLines[1]},
		{render.EdgeOne, eo, "ClientRegion", "eq", "GB", eoLines[0]},
		{render.EdgeOne, eo, "ClientRealIP", "eq", "::ffff:1.2.3.4", eoLines[0]},
		{render.EdgeOne, eo, "LogTimeStamp", "startsWith", "2024-07-15T17", eoLines[0]},
		{render.Spectrum, sp, "ClientCountry", "eq", "GB", spLines[0]},
		{render.Spectrum, sp, "ClientCountry", "eq", "gb", spLines[1]},
		{render.Spectrum, sp, "ClientIP", "eq", "2001:DB8::1", spLines[0]},
	} {
		spec := fmt.Sprintf(`{"where":{"key":%q,"operator":%q,"value":%q}}`, tc.key, tc.op, tc.value)
		for _, all := range []bool{false, true} {
			out, diag, _, err := filter(t, FilterOptions{Common: Common{From: tc.ds, Files: []string{writeFile(t, "in", []byte(tc.data))}}, Filter: spec, decodeAll: all})
			if err != nil || out != tc.want {
				t.Errorf("%s %s (decode all %v): %v %s\n got %q\nwant %q", tc.ds, spec, all, err, diag, out, tc.want)
			}
		}
	}
	// CSV cells too
	csv := "ClientCountry,Status\nGB,200\ngb,200\n"
	out, diag, _, err := filter(t, FilterOptions{Common: Common{From: render.Spectrum, Files: []string{writeFile(t, "c.csv", []byte(csv))}},
		Filter: `{"where":{"key":"ClientCountry","operator":"eq","value":"GB"}}`})
	if err != nil || out != "ClientCountry,Status\nGB,200\n" {
		t.Errorf("csv: %v %s %q", err, diag, out)
	}
}
