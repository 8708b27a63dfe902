package daemon

import (
	"crypto/tls"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prismproxy/prism/internal/config"
	"github.com/prismproxy/prism/internal/event/eventtest"
	"github.com/prismproxy/prism/internal/testpeer"
	"github.com/prismproxy/prism/internal/tlstest"
)

// TestSIGHUPRereadsCertificates: with the certificate watcher off
// (reload_interval < 0), a renewed certificate written over the old files
// is served after Hangup (what SIGHUP does), not before: a renewal hook
// that runs `prism reload` gets the new certificate served at once,
// whatever the poll interval. POST /api/v1/reload does the same (it once
// only re-read the config).
func TestSIGHUPRereadsCertificates(t *testing.T) {
	for _, way := range []string{"SIGHUP", "POST /api/v1/reload"} {
		t.Run(way, func(t *testing.T) { testRereadsCertificates(t, way) })
	}
}

func testRereadsCertificates(t *testing.T, way string) {
	ca := tlstest.NewCA(t, "reload-ca")
	old := ca.Loopback(t, "svc.test")
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "svc.pem"), filepath.Join(dir, "svc.key")
	install := func(i tlstest.Issued) {
		for src, dst := range map[string]string{i.CertFile: certFile, i.KeyFile: keyFile} {
			b, err := os.ReadFile(src)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(dst+".tmp", b, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(dst+".tmp", dst); err != nil {
				t.Fatal(err)
			}
		}
	}
	install(old)
	path := filepath.Join(dir, "prism.yaml")
	if err := os.WriteFile(path, []byte(`admin: {listen: "127.0.0.1:0"}
node: {colo: TST}
shutdown: {drain_timeout: 300ms}
apps:
  - id: tls
    listen: ["127.0.0.1:0"]
    origins: {addresses: ["`+testpeer.Echo(t)+`"]}
    tls:
      mode: flexible
      certificates: [{cert: "`+certFile+`", key: "`+keyFile+`"}]
      reload_interval: -1s
`), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	d := start(t, cfg, eventtest.New())
	addr := d.Addrs("tls")[0].String()
	served := func() string {
		t.Helper()
		c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: ca.Pool(), ServerName: "svc.test"})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		echoOn(t, c, "ping")
		return c.ConnectionState().PeerCertificates[0].SerialNumber.String()
	}
	if got, want := served(), old.Leaf.SerialNumber.String(); got != want {
		t.Fatalf("served serial %s, want %s", got, want)
	}
	renewed := ca.Loopback(t, "svc.test")
	install(renewed)
	if got, want := served(), old.Leaf.SerialNumber.String(); got != want {
		t.Fatalf("before the reload: served serial %s, want the old %s (the watcher is off)", got, want)
	}
	if way == "SIGHUP" {
		if _, cerr, rerr := d.Hangup(); cerr != nil || rerr != nil {
			t.Fatalf("SIGHUP: config %v, re-reading %v", cerr, rerr)
		}
	} else {
		resp, err := http.Post("http://"+d.AdminAddr().String()+"/api/v1/reload", "", nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || strings.Contains(string(b), "reopen_error") {
			t.Fatalf("POST /api/v1/reload: %d %s", resp.StatusCode, b)
		}
	}
	if got, want := served(), renewed.Leaf.SerialNumber.String(); got != want {
		t.Fatalf("after the reload: served serial %s, want the renewed %s", got, want)
	}
}
