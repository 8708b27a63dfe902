package admin

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prismproxy/prism/internal/testpeer"
	"github.com/prismproxy/prism/internal/tlsedge"
)

// scrape is GET /metrics through s's whole handler.
func scrape(t *testing.T, s *Server) string {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, "http://127.0.0.1/metrics", nil)
	rr := httptest.NewRecorder()
	s.srv.Handler.ServeHTTP(rr, req)
	body, _ := io.ReadAll(rr.Body)
	if rr.Code != http.StatusOK {
		t.Fatalf("GET /metrics: %d\n%s", rr.Code, body)
	}
	return string(body)
}

// An RSA and an ECDSA certificate for one name (docs/tls.md allows it), and
// a second RSA one for it: the scrape succeeds (it failed whole with 500 on
// the duplicate label set), each key type has its series, and a type held
// twice reports the earlier expiry.
func TestCertificateExpiryOfTwoCertificatesForOneName(t *testing.T) {
	soon, later := time.Unix(1900000000, 0), time.Unix(1950000000, 0)
	certs := []tlsedge.Certificate{
		{Name: "web.test", KeyType: "rsa", NotAfter: later},
		{Name: "web.test", KeyType: "ecdsa", NotAfter: later},
		{Name: "web.test", KeyType: "rsa", NotAfter: soon},
	}
	s, err := New(Config{Listen: "127.0.0.1:0"}, &Parts{Tally: NewTally([]string{"tls"}),
		Apps: []App{{ID: "tls", Protocol: "tcp", Certs: func() []tlsedge.Certificate { return certs }}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	body := scrape(t, s)
	for _, want := range []string{
		`prism_tls_certificate_expiry_timestamp_seconds{app="tls",key_type="rsa",name="web.test"} 1.9e+09`,
		`prism_tls_certificate_expiry_timestamp_seconds{app="tls",key_type="ecdsa",name="web.test"} 1.95e+09`,
	} {
		if !strings.Contains(body, want+"\n") {
			t.Errorf("no %s in\n%s", want, grepLines(body, "certificate_expiry"))
		}
	}
	bin := testpeer.Need(t, "promtool")
	f := testpeer.WriteFile(t, "metrics.txt", body)
	if out, err := testpeer.Run(t, 30*time.Second, "sh", "-c", bin+" check metrics < "+f); err != nil {
		t.Fatalf("promtool check metrics: %v\n%s", err, out)
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
