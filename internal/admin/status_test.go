package admin

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"unicode"

	"github.com/prismproxy/prism/internal/logjob"
)

// Strings prism status prints come from clients (a ClientHello's SNI) and
// from the API's answer: an escape sequence or a newline in one reaches
// the terminal quoted, never raw.
func TestStatusEscapesControlCharacters(t *testing.T) {
	const (
		sni    = "evil.test\x1b]0;owned\x07\x1b[2J"
		app    = "app\x1b[31m"
		client = "unix:/run/a\nb.sock"
		c1     = "\u009b2J" // a C1 CSI
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/api/v1/summary":
			writeJSON(w, SummaryJSON{Version: "v1\x1b[8m", Ready: false, NotReady: "app " + app + ": no cert",
				Apps: []AppSummary{{AppJSON: AppJSON{ID: app, Protocol: "tcp", Listen: []string{"127.0.0.1:1\t"}},
					OriginState: []OriginState{{Origin: "o\x1b[1m:1", Active: 1}}}},
				Records: []RecordCount{{Event: "disconnect\r", Status: 200, Count: 1}},
				Jobs:    []logjob.Stats{{Job: "j\x1b", Dataset: c1}}})
		case "/api/v1/sessions":
			writeJSON(w, SessionsJSON{Matched: 1, Sessions: []SessionJSON{{ID: "6b0e8f855ff2fc2158f256f2", App: app,
				Client: client, Origin: "10.0.0.1:80", Country: "N\x00L", SNI: sni}}})
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	var out bytes.Buffer
	if err := NewClient(srv.URL, "").PrintStatus(context.Background(), &out); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	for _, r := range got {
		if r != '\n' && !unicode.IsPrint(r) {
			t.Fatalf("prism status printed %U raw:\n%s", r, strings.ToValidUTF8(got, "?"))
		}
	}
	for _, want := range []string{`"evil.test\x1b]0;owned\a\x1b[2J"`, `"app\x1b[31m"`, `"unix:/run/a\nb.sock"`, `"\u009b2J"`} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %s:\n%s", want, got)
		}
	}
	if !strings.Contains(got, "10.0.0.1:80") || strings.Contains(got, `"10.0.0.1:80"`) {
		t.Errorf("a plain field is not printed as is:\n%s", got)
	}
}
