package testpeer

import (
	"crypto/tls"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/prismproxy/prism/internal/tlstest"
)

// TestTLSOrigins: NginxHTTPS and OpenSSLServer serve the given certificate
// (a client trusting only the CA verifies it) and answer a request.
func TestTLSOrigins(t *testing.T) {
	ca := tlstest.NewCA(t, "testpeer CA")
	leaf := ca.Loopback(t, "origin.example")
	for name, addr := range map[string]func() string{
		"nginx":   func() string { return NginxHTTPS(t, leaf.CertFile, leaf.KeyFile, "") },
		"openssl": func() string { return OpenSSLServer(t, leaf.CertFile, leaf.KeyFile) },
	} {
		t.Run(name, func(t *testing.T) {
			c, err := tls.Dial("tcp", addr(), &tls.Config{ServerName: "origin.example", RootCAs: ca.Pool()})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			if _, err := io.WriteString(c, "GET / HTTP/1.0\r\n\r\n"); err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(c)
			if !strings.HasPrefix(string(b), "HTTP/1.") || (name == "nginx" && !strings.HasSuffix(string(b), "nginx-origin")) {
				t.Fatalf("reply %q", b)
			}
		})
	}
}
