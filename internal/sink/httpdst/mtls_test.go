package httpdst

import (
	"crypto/tls"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prismproxy/prism/internal/sink"
	"github.com/prismproxy/prism/internal/sink/sinktest"
	"github.com/prismproxy/prism/internal/tlstest"
)

// TestClientCertificate: a receiver that requires a client certificate
// takes the batch from a sender with cert_file/key_file, not without.
func TestClientCertificate(t *testing.T) {
	ca := tlstest.NewCA(t, "prism-test CA")
	leaf := ca.Loopback(t, "prism-test")
	certFile, keyFile := leaf.CertFile, leaf.KeyFile
	pool := ca.Pool()
	var gotPeer bool
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotPeer = len(r.TLS.PeerCertificates) == 1
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{leaf.TLS()}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake is expected
	srv.StartTLS()
	defer srv.Close()
	b := sinktest.Batch(t0, 1)
	if err := send(t, Config{URL: srv.URL, TLS: sink.TLSConfig{CAFile: ca.CAFile}}, b); err == nil {
		t.Fatal("accepted without a client certificate")
	}
	if err := send(t, Config{URL: srv.URL, TLS: sink.TLSConfig{CAFile: ca.CAFile, CertFile: certFile, KeyFile: keyFile}}, b); err != nil || !gotPeer {
		t.Fatalf("with a client certificate: %v (peer seen %v)", err, gotPeer)
	}
}
