package logs

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/prismproxy/prism/internal/event"
	"github.com/prismproxy/prism/internal/logjob"
	"github.com/prismproxy/prism/internal/logs/logstest"
	"github.com/prismproxy/prism/internal/render"
	"github.com/prismproxy/prism/internal/render/ocsftest"
)

func corpus(t *testing.T, ds string, opt render.Options) []byte {
	t.Helper()
	b, err := logstest.Render(ds, logstest.Sessions(300, 7), opt)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writeFile(t *testing.T, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func gz(data []byte) []byte {
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	_, _ = w.Write(data)
	_ = w.Close()
	return b.Bytes()
}

func convert(t *testing.T, o ConvertOptions) ([]byte, string, Result, error) {
	t.Helper()
	var out, diag bytes.Buffer
	o.Diag = &diag
	res, err := Convert(o, &out)
	return out.Bytes(), diag.String(), res, err
}

// TestIdentity: every dataset converted to itself is byte for byte the
// file prism wrote, in ndjson and CSV, gzip or not, every Spectrum
// timestamp format, all fields or a selection.
func TestIdentity(t *testing.T) {
	type tc struct {
		ds  string
		opt render.Options
	}
	var cases []tc
	for _, ds := range Datasets {
		cases = append(cases, tc{ds, render.Options{}}, tc{ds, render.Options{Output: render.CSV}})
	}
	cases = append(cases,
		tc{render.Spectrum, render.Options{TimestampFormat: render.Unix}},
		tc{render.Spectrum, render.Options{TimestampFormat: render.RFC3339, Output: render.CSV}},
		tc{render.Spectrum, render.Options{Fields: []string{"Status", "Event", "ClientIP", "Timestamp", "OriginBytes"}}},
		tc{render.EdgeOne, render.Options{Fields: []string{"SessionID", "SentBytes", "DisconnetReason"}, Output: render.CSV}},
	)
	for _, c := range cases {
		name := fmt.Sprintf("%s/%v/%v/%d", c.ds, c.opt.Output, c.opt.TimestampFormat, len(c.opt.Fields))
		t.Run(name, func(t *testing.T) {
			t.Parallel() // CPU only, each case its own corpus and files
			in := corpus(t, c.ds, c.opt)
			for _, z := range []bool{false, true} {
				data := in
				if z {
					data = gz(in)
				}
				out, diag, res, err := convert(t, ConvertOptions{Common: Common{From: c.ds, Files: []string{writeFile(t, "in", data)}}, To: c.ds})
				if err != nil || res.Bad != 0 {
					t.Fatalf("gzip %v: %v, %d bad: %s", z, err, res.Bad, diag)
				}
				if !bytes.Equal(out, in) {
					t.Fatalf("gzip %v: not identical\n%s", z, firstDiff(in, out))
				}
			}
		})
	}
}

func firstDiff(a, b []byte) string {
	al, bl := strings.Split(string(a), "\n"), strings.Split(string(b), "\n")
	for i := 0; i < len(al) && i < len(bl); i++ {
		if al[i] != bl[i] {
			return fmt.Sprintf("line %d\nwant %s\ngot  %s", i+1, al[i], bl[i])
		}
	}
	return fmt.Sprintf("lengths %d and %d lines", len(al), len(bl))
}

// noUnix drops the unix-socket sessions while the EdgeOne renderer writes
// them as "UNIX", outside its enumeration (spec §7.6 has them written as
// TCP): verify rightly reports that (TestVerifyFindsUnix). Once the
// renderers follow §7.6, the sessions stay in.
func noUnix(evs []event.Event) []event.Event {
	e := event.New("a", event.ID{})
	e.Type, e.ClientProto = event.Disconnect, event.ProtoUnix
	enc, _ := render.NewEncoder(render.EdgeOne, render.Node{}, render.Options{})
	if !bytes.Contains(enc.Append(nil, &e), []byte(`"UNIX"`)) {
		return evs
	}
	var out []event.Event
	for _, e := range evs {
		if e.ClientProto != event.ProtoUnix {
			out = append(out, e)
		}
	}
	return out
}

func validateOCSF(t *testing.T, what string, out []byte) int {
	t.Helper()
	s, err := ocsftest.Load()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for i, line := range bytes.Split(bytes.TrimSuffix(out, []byte("\n")), []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		n++
		if probs := s.Validate(line); len(probs) > 0 {
			t.Errorf("%s line %d: %s\n%s", what, i+1, strings.Join(probs, "; "), line)
		}
	}
	return n
}

func verifyClean(t *testing.T, what, ds string, data []byte) {
	t.Helper()
	var diag bytes.Buffer
	res, err := Verify(VerifyOptions{Common: Common{From: ds, Files: []string{writeFile(t, "v", data)}, Diag: &diag}})
	if err != nil || res.Problems != 0 {
		t.Errorf("%s: verify %s: %v\n%s", what, ds, err, diag.String())
	}
}

// TestConvertEveryPair converts prism's records of every dataset to every
// other one; the results verify clean against the target schema (OCSF
// against the vendored OCSF schema), and the record counts follow from
// which records each target writes.
func TestConvertEveryPair(t *testing.T) {
	evs := noUnix(logstest.Sessions(300, 11))
	sessions := map[event.ID]bool{}
	for _, e := range evs {
		sessions[e.SessionID] = true
	}
	for _, from := range Datasets {
		in, err := logstest.Render(from, evs, render.Options{})
		if err != nil {
			t.Fatal(err)
		}
		file := writeFile(t, "in", in)
		for _, to := range render.Datasets {
			if to == from {
				continue
			}
			// Each pair reads the file and checks its own output: the
			// pairs (CPU only, seconds each under -race) run in parallel.
			t.Run(from+"->"+to, func(t *testing.T) {
				t.Parallel()
				out, diag, res, err := convert(t, ConvertOptions{Common: Common{From: from, Files: []string{file}}, To: to})
				if err != nil || res.Bad != 0 {
					t.Fatalf("%s -> %s: %v\n%s", from, to, err, diag)
				}
				what := from + " -> " + to
				if to == render.OCSF {
					if n := validateOCSF(t, what, out); n != res.Written || n == 0 {
						t.Errorf("%s: %d OCSF lines, %d written", what, n, res.Written)
					}
				} else {
					verifyClean(t, what, to, out)
				}
				// every session has exactly one final record in every target
				finals := countFinals(t, to, out)
				if finals != len(sessions) {
					t.Errorf("%s: %d final records, want %d (one per session)", what, finals, len(sessions))
				}
				if !strings.Contains(diag, "cannot provide") {
					t.Errorf("%s: convert did not say which fields the source cannot provide: %q", what, diag)
				}
			})
		}
	}
}

// countFinals counts the records of out that end a session.
func countFinals(t *testing.T, ds string, out []byte) int {
	t.Helper()
	if ds == render.OCSF {
		n := 0
		for _, l := range strings.Split(string(out), "\n") {
			if l != "" && !strings.Contains(l, `"activity_id":1,`) && !strings.Contains(l, `"activity_id":6,`) {
				n++
			}
		}
		return n
	}
	n := 0
	var diag bytes.Buffer
	_, _, err := Stats(StatsOptions{Common: Common{From: ds, Files: []string{writeFile(t, "o", out)}, Diag: &diag}})
	if err != nil {
		t.Fatalf("stats: %v %s", err, diag.String())
	}
	rep, _, _ := Stats(StatsOptions{Common: Common{From: ds, Files: []string{writeFile(t, "o", out)}, Diag: &diag}})
	n = rep.Sessions
	return n
}

func seedRecord(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "render", "testdata", "seeds", name))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "{") {
			// the example is followed by the page's next text on the same line
			i := strings.LastIndex(l, "}")
			return []byte(l[:i+1] + "\n")
		}
	}
	t.Fatalf("%s has no example record", name)
	return nil
}

// TestSeeds converts the CloudConnexa seeds' example records (002, 004) to
// every dataset; the results verify clean. Verifying the seed 004 example
// itself finds the one deviation in it: the protocol number written as a
// string while its table says Integer.
func TestSeeds(t *testing.T) {
	for _, seed := range []string{"cloudconnexa_client_disconnected.txt", "cloudconnexa_flow_established.txt"} {
		rec := seedRecord(t, seed)
		file := writeFile(t, "seed", rec)
		for _, to := range render.Datasets {
			out, diag, res, err := convert(t, ConvertOptions{Common: Common{From: render.CloudConnexa, Files: []string{file}}, To: to})
			if err != nil || res.Bad != 0 || res.Records != 1 {
				t.Fatalf("%s -> %s: %v %+v\n%s", seed, to, err, res, diag)
			}
			if to == render.EdgeOne && strings.Contains(seed, "flow") {
				if len(out) != 0 {
					t.Errorf("a flow-established record has no EdgeOne form, got %s", out)
				}
				continue
			}
			if len(out) == 0 {
				t.Fatalf("%s -> %s: nothing written", seed, to)
			}
			if to == render.OCSF {
				validateOCSF(t, seed, out)
			} else {
				verifyClean(t, seed+" -> "+to, to, out)
			}
		}
		var diag bytes.Buffer
		res, err := Verify(VerifyOptions{Common: Common{From: render.CloudConnexa, Files: []string{file}, Diag: &diag}})
		if strings.Contains(seed, "flow") {
			if !errors.Is(err, ErrProblems) || res.Problems != 1 || !strings.Contains(diag.String(), `:1: log.protocol: an integer written as a string ("6")`) {
				t.Errorf("verify seed 004: %v %+v %q", err, res, diag.String())
			}
		} else if err != nil {
			t.Errorf("verify seed 002: %v %s", err, diag.String())
		}
	}
	// the seed's values come through
	out, _, _, _ := convert(t, ConvertOptions{Common: Common{From: render.CloudConnexa, Files: []string{writeFile(t, "s", seedRecord(t, "cloudconnexa_client_disconnected.txt"))}}, To: render.Spectrum})
	for _, want := range []string{`"ClientIP":"178.136.162.32"`, `"ClientBytes":30971`, `"OriginBytes":34409`, `"ColoCode":"us-dev-1"`, `"Event":"disconnect"`, `"ClientProto":"udp"`} {
		if !bytes.Contains(out, []byte(want)) {
			t.Errorf("seed 002 as Spectrum lacks %s: %s", want, out)
		}
	}
}

// TestBadInput: malformed lines, wrong types, unknown fields and a
// truncated last line are each reported with file and line, counted, and
// the good records around them still converted; --strict stops at the
// first.
func TestBadInput(t *testing.T) {
	lines := strings.Split(strings.TrimSuffix(string(corpus(t, render.Spectrum, render.Options{})), "\n"), "\n")
	lines = lines[:20]
	lines[2] = lines[2][:len(lines[2])/2]                                                   // line 3: cut in half
	lines[4] = strings.Replace(lines[4], `"ClientPort":`, `"ClientPort":"x`, 1)             // line 5: malformed
	lines[6] = strings.Replace(lines[6], `"Status":`, `"Status":"`, 1)                      // line 7: string quote opens
	lines[8] = strings.Replace(lines[8], `"IpFirewall":false`, `"IpFirewall":"no"`, 1)      // line 9: wrong type
	lines[8] = strings.Replace(lines[8], `"IpFirewall":true`, `"IpFirewall":"no"`, 1)       //
	lines[10] = strings.Replace(lines[10], `{"Application"`, `{"Bogus":1,"Application"`, 1) // line 11: unknown field
	lines[12] = "not json at all"                                                           // line 13
	lines[19] = lines[19][:len(lines[19])-5]                                                // line 20: truncated at EOF
	data := []byte(strings.Join(lines, "\n"))                                               // no final newline
	file := writeFile(t, "bad.ndjson", data)
	out, diag, res, err := convert(t, ConvertOptions{Common: Common{From: render.Spectrum, Files: []string{file}}, To: render.Spectrum})
	if !errors.Is(err, ErrProblems) {
		t.Fatalf("err %v, want ErrProblems", err)
	}
	got := reportedLines(diag, file)
	want := []int{3, 5, 7, 9, 11, 13, 20}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("reported lines %v, want %v\n%s", got, want, diag)
	}
	if res.Records != 20 || res.Bad != 7 || res.Written != 13 {
		t.Errorf("result %+v, want 20 read, 7 bad, 13 written", res)
	}
	if n := bytes.Count(out, []byte("\n")); n != 13 {
		t.Errorf("%d records written, want 13", n)
	}
	for _, frag := range []string{"bad.ndjson:9: IpFirewall: want a bool, got a string", "bad.ndjson:11: Bogus: unknown field", "bad.ndjson:13: malformed JSON at column 1"} {
		if !strings.Contains(diag, frag) {
			t.Errorf("diagnostics lack %q:\n%s", frag, diag)
		}
	}
	// --strict stops at line 3
	_, diag, res, err = convert(t, ConvertOptions{Common: Common{From: render.Spectrum, Files: []string{file}, Strict: true}, To: render.EdgeOne})
	if !errors.Is(err, ErrStrict) || res.Records != 3 || fmt.Sprint(reportedLines(diag, file)) != "[3]" {
		t.Errorf("strict: %v %+v\n%s", err, res, diag)
	}
}

var lineRE = regexp.MustCompile(`(?m)^([^:\n]+):(\d+): `)

func reportedLines(diag, file string) []int {
	var out []int
	for _, m := range lineRE.FindAllStringSubmatch(diag, -1) {
		if m[1] == file {
			var n int
			fmt.Sscan(m[2], &n)
			out = append(out, n)
		}
	}
	sort.Ints(out)
	return out
}

// TestTruncatedGzip cuts a gzip file short: every whole record before the
// cut is converted and the cut is reported at the line it happened on.
func TestTruncatedGzip(t *testing.T) {
	in := corpus(t, render.EdgeOne, render.Options{})
	z := gz(in)
	cut := z[:len(z)*2/3]
	file := writeFile(t, "cut.ndjson.gz", cut)
	out, diag, res, err := convert(t, ConvertOptions{Common: Common{From: render.EdgeOne, Files: []string{file}}, To: render.EdgeOne})
	if !errors.Is(err, ErrProblems) || res.Bad != 1 {
		t.Fatalf("err %v res %+v diag %s", err, res, diag)
	}
	// what the cut stream still holds, decompressed as far as it goes
	var part bytes.Buffer
	zr, _ := gzip.NewReader(bytes.NewReader(cut))
	_, _ = part.ReadFrom(zr)
	whole := bytes.Count(part.Bytes(), []byte("\n"))
	if !bytes.Equal(out, in[:len(out)]) || bytes.Count(out, []byte("\n")) != whole {
		t.Errorf("converted %d records, the cut stream holds %d whole ones", bytes.Count(out, []byte("\n")), whole)
	}
	lines := reportedLines(diag, file)
	if len(lines) != 1 || lines[0] != whole+1 || !strings.Contains(diag, "truncated") {
		t.Errorf("reported %v (%q), want line %d and a truncation", lines, diag, whole+1)
	}
}

// TestCorruptGzip flips bytes inside a gzip stream: the checksum or inflate
// error is reported, never a silent short file.
func TestCorruptGzip(t *testing.T) {
	z := gz(corpus(t, render.Spectrum, render.Options{}))
	for i := len(z) / 2; i < len(z)/2+8; i++ {
		z[i] ^= 0xff
	}
	_, diag, res, err := convert(t, ConvertOptions{Common: Common{From: render.Spectrum, Files: []string{writeFile(t, "c.gz", z)}}, To: render.OCSF})
	if !errors.Is(err, ErrProblems) || res.Bad == 0 || !strings.Contains(diag, "gzip") {
		t.Errorf("corrupt gzip: %v %+v %q", err, res, diag)
	}
}

// TestFilter selects with the log jobs' filter language and reports its
// errors the same way.
func TestFilter(t *testing.T) {
	evs := logstest.Sessions(300, 3)
	in, _ := logstest.Render(render.Spectrum, evs, render.Options{})
	want := 0
	for _, e := range evs {
		if render.Wants(render.Spectrum, e.Type) && e.Status >= 400 && e.App != "ssh" {
			want++
		}
	}
	spec := `{"where":{"and":[{"key":"Status","operator":"geq","value":400},{"key":"Application","operator":"!eq","value":"ssh"}]}}`
	for _, o := range []render.Output{render.NDJSON, render.CSV} {
		in, _ := logstest.Render(render.Spectrum, evs, render.Options{Output: o})
		var out, diag bytes.Buffer
		res, err := Filter(FilterOptions{Common: Common{From: render.Spectrum, Files: []string{writeFile(t, "f", in)}, Diag: &diag}, Filter: spec}, &out)
		if err != nil || res.Written != want || want == 0 {
			t.Fatalf("output %v: %v, %d written, want %d: %s", o, err, res.Written, want, diag.String())
		}
		lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
		if o == render.CSV {
			lines = lines[1:]
		}
		for _, l := range lines {
			if !bytes.Contains(in, []byte(l+"\n")) {
				t.Fatalf("filtered record is not one of the input's: %s", l)
			}
		}
	}
	_ = in
	// the same errors as a log job
	enc, _ := render.NewEncoder(render.EdgeOne, render.Node{}, render.Options{})
	for _, bad := range []string{`{"where":{"key":"Nope","operator":"eq","value":1}}`, `{"where":{"key":"SentBytes","operator":"eq","value":"x"}}`, `{`} {
		_, jobErr := logjob.CompileFilter(bad, enc)
		err := CheckFilter(render.EdgeOne, bad)
		if jobErr == nil || err == nil || err.Error() != jobErr.Error() {
			t.Errorf("filter %s: got %v, log job says %v", bad, err, jobErr)
		}
	}
	// Spectrum timestamps compare as the file writes them
	rfc, _ := logstest.Render(render.Spectrum, evs, render.Options{TimestampFormat: render.RFC3339})
	var out bytes.Buffer
	res, err := Filter(FilterOptions{Common: Common{From: render.Spectrum, Files: []string{writeFile(t, "r", rfc)}},
		Filter: `{"where":{"key":"Timestamp","operator":"geq","value":"2026-11-30T12:00:05Z"}}`}, &out)
	if err != nil || res.Written == 0 || res.Written >= res.Records {
		t.Errorf("rfc3339 timestamp filter: %v %+v", err, res)
	}
}

// TestStats: sessions and bytes per app match the events; EdgeOne's
// periodic records are merged per SessionID.
func TestStats(t *testing.T) {
	evs := logstest.Sessions(400, 5)
	type tot struct {
		sessions       int
		client, origin int64
	}
	// CloudConnexa names the app only in flow-established records: a
	// session that failed before its origin was up has none
	totals := func(ds string) map[string]*tot {
		want := map[string]*tot{}
		connected := map[event.ID]bool{}
		for _, e := range evs {
			if e.Type == event.Connect {
				connected[e.SessionID] = true
			}
			if !e.Type.Terminal() {
				continue
			}
			app := e.App
			if ds == render.CloudConnexa && !connected[e.SessionID] && e.Type != event.ClientFiltered {
				app = ""
			}
			w := want[app]
			if w == nil {
				w = &tot{}
				want[app] = w
			}
			w.sessions++
			w.client += e.ClientBytes
			w.origin += e.OriginBytes
		}
		return want
	}
	for _, ds := range Datasets {
		want := totals(ds)
		in, _ := logstest.Render(ds, evs, render.Options{})
		rep, res, err := Stats(StatsOptions{Common: Common{From: ds, Files: []string{writeFile(t, "s", in)}}})
		if err != nil || res.Bad != 0 {
			t.Fatalf("%s: %v", ds, err)
		}
		if rep.Open != 0 {
			t.Errorf("%s: %d open sessions", ds, rep.Open)
		}
		for _, a := range rep.Apps {
			w := want[a.App]
			if w == nil {
				t.Errorf("%s: unexpected app %q", ds, a.App)
				continue
			}
			if a.Sessions != w.sessions || a.ClientBytes != w.client || a.OriginBytes != w.origin {
				t.Errorf("%s app %s: %d sessions %d/%d bytes, want %d %d/%d", ds, a.App, a.Sessions, a.ClientBytes, a.OriginBytes, w.sessions, w.client, w.origin)
			}
			if a.Duration.P50 > a.Duration.P90 || a.Duration.P90 > a.Duration.P99 || a.Duration.P99 > a.Duration.Max || a.Duration.Max == 0 {
				t.Errorf("%s app %s: percentiles %+v", ds, a.App, a.Duration)
			}
		}
		if len(rep.Apps) != len(want) || len(rep.Events) == 0 || len(rep.Clients) == 0 {
			t.Errorf("%s: report %+v", ds, rep)
		}
		var text, js bytes.Buffer
		if rep.WriteText(&text) != nil || rep.WriteJSON(&js) != nil || !strings.Contains(text.String(), "p99 ms") || !strings.Contains(js.String(), `"top_asns"`) {
			t.Errorf("%s: report output\n%s\n%s", ds, text.String(), js.String())
		}
	}
}

// TestVerifyFindsProblems: each kind of schema problem is reported on its
// line.
func TestVerifyFindsProblems(t *testing.T) {
	lines := strings.Split(strings.TrimSuffix(string(corpus(t, render.Spectrum, render.Options{})), "\n"), "\n")[:12]
	sub := func(i int, from, to string) {
		if !strings.Contains(lines[i], from) {
			t.Fatalf("line %d lacks %s: %s", i+1, from, lines[i])
		}
		lines[i] = strings.Replace(lines[i], from, to, 1)
	}
	sub(1, `"ClientProto":"`, `"ClientProto":"sctp`)
	sub(3, `"ProxyProtocol":"`, `"ProxyProtocol":"v9`)
	sub(5, `"Status":`, `"Status":1`) // 1xxx: no such status
	sub(7, `"ClientAsn":`, `"ClientAsn":-`)
	lines[9] = strings.Replace(lines[9], `,"Timestamp":`, `,"Extra":"","Timestamp":`, 1)
	sub(10, `"OriginTlsMode":"`, `"OriginTlsMode":"x`)
	file := writeFile(t, "v.ndjson", []byte(strings.Join(lines, "\n")+"\n"))
	var diag bytes.Buffer
	res, err := Verify(VerifyOptions{Common: Common{From: render.Spectrum, Files: []string{file}, Diag: &diag}})
	if !errors.Is(err, ErrProblems) {
		t.Fatalf("err %v", err)
	}
	if got := fmt.Sprint(reportedLines(diag.String(), file)); !strings.HasPrefix(got, "[2 4 6") || !strings.Contains(got, " 8") || !strings.Contains(got, "10") || !strings.Contains(got, "11") {
		t.Errorf("reported lines %s\n%s", got, diag.String())
	}
	if res.Bad != 6 {
		t.Errorf("%d bad records, want 6\n%s", res.Bad, diag.String())
	}
	// an Event that does not go with its Status
	pair := strings.Replace(lines[0], `"Event":"connect"`, `"Event":"originError"`, 1)
	if pair == lines[0] {
		t.Fatalf("line 1 is not a connect: %s", lines[0])
	}
	diag.Reset()
	_, err = Verify(VerifyOptions{Common: Common{From: render.Spectrum, Files: []string{writeFile(t, "p", []byte(pair+"\n"))}, Diag: &diag}})
	if !errors.Is(err, ErrProblems) || !strings.Contains(diag.String(), "status 0 does not go with event originError") {
		t.Errorf("event/status pair: %v %q", err, diag.String())
	}
}

// TestVerifyFindsUnix: a unix-socket session written as "UNIX" in EdgeOne
// and CloudConnexa (before spec §7.6) is outside their enumerations, and
// verify says so.
func TestVerifyFindsUnix(t *testing.T) {
	var unix []event.Event
	for _, e := range logstest.Sessions(60, 2) {
		if e.ClientProto == event.ProtoUnix {
			unix = append(unix, e)
		}
	}
	if len(unix) == 0 {
		t.Fatal("no unix sessions")
	}
	for _, ds := range []string{render.EdgeOne, render.CloudConnexa} {
		in, _ := logstest.Render(ds, unix, render.Options{})
		var diag bytes.Buffer
		_, err := Verify(VerifyOptions{Common: Common{From: ds, Files: []string{writeFile(t, "u", in)}, Diag: &diag}})
		wrote := bytes.Contains(in, []byte(`"UNIX"`))
		if wrote != (err != nil) || wrote && !strings.Contains(diag.String(), `"UNIX"`) {
			t.Errorf("%s: wrote UNIX %v, verify %v %q", ds, wrote, err, diag.String())
		}
	}
}

func TestParseIPv4(t *testing.T) {
	for _, s := range []string{"1.2.3.4", "0.0.0.0", "255.255.255.255", "10.0.0.1", "1.2.3", "1.2.3.4.5", "01.2.3.4", "256.1.1.1", "1..2.3", "", "a.b.c.d", "1.2.3.4.", "::1"} {
		want, werr := netip.ParseAddr(s)
		got, ok := parseIPv4([]byte(s))
		if ok && (werr != nil || got != want) || !ok && werr == nil && want.Is4() {
			t.Errorf("%q: got %v %v, netip says %v %v", s, got, ok, want, werr)
		}
	}
}

func TestPlainASCII(t *testing.T) {
	for c := 0; c < 256; c++ {
		for pos := 0; pos < 11; pos++ {
			b := []byte("abcdefghijk")
			b[pos] = byte(c)
			want := true
			for _, x := range b {
				if !plain[x] && x != '"' {
					want = false
				}
			}
			if got := plainASCII(b); got != want {
				t.Fatalf("byte %#x at %d: %v, want %v", c, pos, got, want)
			}
		}
	}
}

// TestConvertCSVAndFields: CSV output and a field selection of the target
// verify clean too, and keep the selected fields in their order.
func TestConvertCSVAndFields(t *testing.T) {
	in, _ := logstest.Render(render.EdgeOne, noUnix(logstest.Sessions(120, 4)), render.Options{})
	file := writeFile(t, "e", in)
	csv := render.CSV
	out, diag, res, err := convert(t, ConvertOptions{Common: Common{From: render.EdgeOne, Files: []string{file}}, To: render.Spectrum, Output: &csv,
		Fields: []string{"Timestamp", "Event", "Status", "ClientIP", "Application", "ClientBytes"}})
	if err != nil || res.Bad != 0 {
		t.Fatalf("%v %s", err, diag)
	}
	if !bytes.HasPrefix(out, []byte("Timestamp,Event,Status,ClientIP,Application,ClientBytes\n")) {
		t.Fatalf("header: %q", out[:min(len(out), 80)])
	}
	verifyClean(t, "edgeone -> spectrum csv", render.Spectrum, out)
	if strings.Contains(diag, "ClientBytes (") {
		t.Errorf("convert says edgeone cannot provide ClientBytes, which it sums from the deltas: %s", diag)
	}
	for _, to := range []string{render.EdgeOne, render.CloudConnexa, render.Spectrum} {
		in, _ := logstest.Render(render.Spectrum, noUnix(logstest.Sessions(80, 6)), render.Options{TimestampFormat: render.RFC3339})
		out, diag, _, err := convert(t, ConvertOptions{Common: Common{From: render.Spectrum, Files: []string{writeFile(t, "s", in)}}, To: to, Output: &csv})
		if err != nil {
			t.Fatalf("%s: %v %s", to, err, diag)
		}
		verifyClean(t, "spectrum -> "+to+" csv", to, out)
	}
}

// FuzzScanner: the record scanner accepts exactly the JSON objects
// encoding/json accepts (as one value, surrounding space allowed).
func FuzzScanner(f *testing.F) {
	for _, s := range []string{`{}`, `{"a":1}`, `{"a":"\u00e9\n","b":[1,{"c":null}],"d":true}`, `{"a":1,}`, `{"a"}`, ` {"a":-0.5e+3} `,
		`{"a":"\ud83d\ude00"}`, `{"a":01}`, `{"a":"x` + "\x01" + `"}`, `[1]`, `{"a":1}x`, "{\"a\":\"\xff\"}"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var sc scanner
		_, err := sc.object(data, nil)
		var v map[string]any
		jerr := json.Unmarshal(data, &v)
		isObj := jerr == nil && v != nil
		if (err == nil) != isObj {
			// encoding/json replaces invalid UTF-8; the scanner rejects it
			if err != nil && jerr == nil && !utf8.Valid(data) {
				return
			}
			t.Fatalf("%q: scanner %v, encoding/json %v", data, err, jerr)
		}
	})
}

// TestFilterReadsWhatItNeeds: filter decodes only the fields its
// conditions name; for a condition on every field of the dataset it keeps
// exactly the records a full decode keeps.
func TestFilterReadsWhatItNeeds(t *testing.T) {
	for _, ds := range []string{render.Spectrum, render.EdgeOne} {
		in, _ := logstest.Render(ds, logstest.Sessions(150, 8), render.Options{})
		file := writeFile(t, "f", in)
		names, _ := render.FieldNames(ds)
		kinds, _ := render.FieldKinds(ds)
		// compare against the value the 7th record has
		var rec map[string]any
		if err := json.Unmarshal(bytes.Split(in, []byte("\n"))[6], &rec); err != nil {
			t.Fatal(err)
		}
		for i, name := range names {
			v, _ := json.Marshal(rec[name])
			op := "eq"
			if kinds[i] == render.KindInt || kinds[i] == render.KindTime {
				op = "geq"
			}
			spec := fmt.Sprintf(`{"where":{"key":%q,"operator":%q,"value":%s}}`, name, op, v)
			var a, b bytes.Buffer
			ra, err := Filter(FilterOptions{Common: Common{From: ds, Files: []string{file}}, Filter: spec}, &a)
			if err != nil {
				t.Fatalf("%s %s: %v", ds, spec, err)
			}
			rb, _ := Filter(FilterOptions{Common: Common{From: ds, Files: []string{file}}, Filter: spec, decodeAll: true}, &b)
			if ra.Written != rb.Written || a.String() != b.String() || rb.Written == 0 {
				t.Errorf("%s %s: %d records, a full decode keeps %d", ds, spec, ra.Written, rb.Written)
			}
		}
	}
}

// TestBadFirstLine: an ndjson file whose first line is not JSON is not
// taken for CSV: the line is reported and the rest read.
func TestBadFirstLine(t *testing.T) {
	in := corpus(t, render.EdgeOne, render.Options{})
	data := append([]byte("garbage, not a record\n"), in...)
	file := writeFile(t, "g", data)
	out, diag, res, err := convert(t, ConvertOptions{Common: Common{From: render.EdgeOne, Files: []string{file}}, To: render.EdgeOne})
	if !errors.Is(err, ErrProblems) || res.Bad != 1 || !bytes.Equal(out, in) || fmt.Sprint(reportedLines(diag, file)) != "[1]" {
		t.Errorf("%v %+v %q", err, res, diag)
	}
}

// TestCSVBlankLines: blank lines of a CSV file (empty, or "\r") are
// skipped like ndjson's, not reported as rows of one cell, and a quoted
// cell may still hold an empty line; under a header of one column an empty
// line is a row with an empty cell.
func TestCSVBlankLines(t *testing.T) {
	evs := noUnix(logstest.Sessions(40, 3))
	for i := range evs {
		if i%7 == 0 {
			evs[i].App = "two\n\nlines"
		}
	}
	in, err := logstest.Render(render.Spectrum, evs, render.Options{Output: render.CSV})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(in, []byte("\"two\n\nlines\"")) {
		t.Fatalf("no quoted cell spanning a blank line in %q", in[:min(len(in), 400)])
	}
	var data []byte
	rows := bytes.SplitAfter(in, []byte("\n"))
	for i, r := range rows {
		data = append(data, r...)
		if bytes.HasSuffix(r, []byte("\"two\n")) || string(r) == "\n" {
			continue // inside the quoted cell: a line added would be in it
		}
		switch i % 3 {
		case 0:
			data = append(data, '\n')
		case 1:
			data = append(data, "\r\n"...)
		}
	}
	data = append(append([]byte("\n\r\n"), data...), '\r')
	file := writeFile(t, "blank.csv", data)
	out, diag, res, err := convert(t, ConvertOptions{Common: Common{From: render.Spectrum, Files: []string{file}}, To: render.Spectrum})
	if err != nil || res.Bad != 0 || !bytes.Equal(out, in) {
		t.Fatalf("%v %+v %s\n%s", err, res, diag, firstDiff(in, out))
	}
	// a bad row after blank lines is reported at its own line
	bad := append(append([]byte{}, data...), "\n\nx,y\n"...)
	badFile := writeFile(t, "bad.csv", bad)
	_, diag, res, _ = convert(t, ConvertOptions{Common: Common{From: render.Spectrum, Files: []string{badFile}}, To: render.Spectrum})
	if n := bytes.Count(bad, []byte("\n")); res.Bad != 1 || fmt.Sprint(reportedLines(diag, badFile)) != fmt.Sprint([]int{n}) {
		t.Errorf("bad row: %+v %q, want it at line %d", res, diag, n)
	}

	one, err := logstest.Render(render.Spectrum, evs, render.Options{Output: render.CSV, Fields: []string{"ClientCountry"}})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(one, []byte("\n\n")) {
		t.Fatal("no empty ClientCountry")
	}
	out, diag, res, err = convert(t, ConvertOptions{Common: Common{From: render.Spectrum, Files: []string{writeFile(t, "one.csv", one)}}, To: render.Spectrum})
	if err != nil || res.Bad != 0 || !bytes.Equal(out, one) {
		t.Fatalf("one column: %v %+v %s\n%s", err, res, diag, firstDiff(one, out))
	}
}
