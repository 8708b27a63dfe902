package tlsedge

import (
	"bufio"
	"crypto/tls"
	"errors"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prismproxy/prism/internal/event"
	"github.com/prismproxy/prism/internal/event/errstatus"
	"github.com/prismproxy/prism/internal/testpeer"
	"github.com/prismproxy/prism/internal/tlstest"
)

// TestTerminateOpenSSLClient drives the edge handshake with openssl
// s_client and checks the status and every client TLS field.
func TestTerminateOpenSSLClient(t *testing.T) {
	openssl := testpeer.Need(t, "openssl")
	ca := tlstest.NewCA(t, "edge test CA")
	rsaCert := ca.Issue(t, tlstest.Leaf{Names: []string{"a.example"}, KeyType: tlstest.RSA})
	ecCert := ca.Issue(t, tlstest.Leaf{Names: []string{"*.b.example"}})
	certs := []CertFile{{rsaCert.CertFile, rsaCert.KeyFile}, {ecCert.CertFile, ecCert.KeyFile}}

	tests := []struct {
		name       string
		cfg        Config
		args       []string
		wantStatus int
		want       event.TLS
		wantErr    string // substring of the server-side error
	}{
		{
			name:       "TLS 1.3 good SNI",
			cfg:        Config{Mode: ModeFlexible, Certificates: certs},
			args:       []string{"-servername", "a.example", "-tls1_3", "-ciphersuites", "TLS_CHACHA20_POLY1305_SHA256"},
			wantStatus: 0,
			want:       event.TLS{Protocol: "TLSv1.3", Cipher: "AEAD-CHACHA20-POLY1305-SHA256", Status: "OK", ServerName: "a.example"},
		},
		{
			name:       "TLS 1.2 RSA cipher named like OpenSSL",
			cfg:        Config{Mode: ModeFlexible, Certificates: certs},
			args:       []string{"-servername", "a.example", "-tls1_2", "-cipher", "ECDHE-RSA-AES128-GCM-SHA256"},
			wantStatus: 0,
			want:       event.TLS{Protocol: "TLSv1.2", Cipher: "ECDHE-RSA-AES128-GCM-SHA256", Status: "OK", ServerName: "a.example"},
		},
		{
			name:       "TLS 1.2 wildcard ECDSA certificate by SNI",
			cfg:        Config{Mode: ModeFull, Certificates: certs},
			args:       []string{"-servername", "x.b.example", "-tls1_2", "-cipher", "ECDHE-ECDSA-AES256-GCM-SHA384"},
			wantStatus: 0,
			want:       event.TLS{Protocol: "TLSv1.2", Cipher: "ECDHE-ECDSA-AES256-GCM-SHA384", Status: "OK", ServerName: "x.b.example"},
		},
		{
			name:       "SNI not allowed",
			cfg:        Config{Mode: ModeFlexible, Certificates: certs, SNIAllow: []string{"a.example", "*.b.example"}},
			args:       []string{"-servername", "evil.example"},
			wantStatus: 400,
			want:       event.TLS{Protocol: "unknown", Cipher: "UNK", Status: "INVALID_SNI", ServerName: "evil.example"},
			wantErr:    "not in sni_allow",
		},
		{
			name:       "no SNI with an allow list",
			cfg:        Config{Mode: ModeFlexible, Certificates: certs, SNIAllow: []string{"a.example"}},
			args:       []string{"-noservername"},
			wantStatus: 400,
			want:       event.TLS{Protocol: "unknown", Cipher: "UNK", Status: "INVALID_SNI"},
		},
		{
			name:       "TLS 1.0 against a 1.2 minimum",
			cfg:        Config{Mode: ModeFlexible, Certificates: certs},
			args:       []string{"-servername", "a.example", "-tls1", "-cipher", "DEFAULT@SECLEVEL=0"},
			wantStatus: 443,
			want:       event.TLS{Protocol: "unknown", Cipher: "UNK", Status: "HANDSHAKE_FAILED", ServerName: "a.example"},
			wantErr:    "client offers at most TLSv1, minimum is TLSv1.2",
		},
		{
			name:       "TLS 1.2 client against a 1.3 minimum",
			cfg:        Config{Mode: ModeFlexible, Certificates: certs, MinVersion: "1.3"},
			args:       []string{"-servername", "a.example", "-tls1_2"},
			wantStatus: 443,
			want:       event.TLS{Protocol: "unknown", Cipher: "UNK", Status: "HANDSHAKE_FAILED", ServerName: "a.example"},
			wantErr:    "client offers at most TLSv1.2",
		},
		{
			name:       "no usable certificate",
			cfg:        Config{Mode: ModeFlexible, Certificates: []CertFile{{"/nonexistent/c.pem", "/nonexistent/c.key"}}},
			args:       []string{"-servername", "a.example"},
			wantStatus: 540,
			want:       event.TLS{Protocol: "unknown", Cipher: "UNK", Status: "INVALID_CONFIG", ServerName: "a.example"},
			wantErr:    "no usable certificate",
		},
		{
			name:       "no shared cipher",
			cfg:        Config{Mode: ModeFlexible, Certificates: certs[:1]}, // RSA only
			args:       []string{"-servername", "a.example", "-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256"},
			wantStatus: 443,
			want:       event.TLS{Protocol: "unknown", Cipher: "UNK", Status: "HANDSHAKE_FAILED", ServerName: "a.example"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, _ := mustEdge(t, tc.cfg)
			addr, res := serveTerminate(t, e, nil)
			args := append([]string{"s_client", "-connect", addr}, tc.args...)
			out, _ := testpeer.Run(t, 15*time.Second, openssl, args...)
			r := wait(t, res)
			if r.tc != nil {
				r.tc.Close()
			}
			if r.status != tc.wantStatus {
				t.Fatalf("status %d, want %d (err %v)\ns_client:\n%s", r.status, tc.wantStatus, r.err, out)
			}
			if (r.err != nil) != (tc.wantStatus != 0) {
				t.Fatalf("err %v with status %d", r.err, r.status)
			}
			if tc.wantErr != "" && !strings.Contains(r.err.Error(), tc.wantErr) {
				t.Errorf("error %q does not mention %q", r.err, tc.wantErr)
			}
			if r.ev.ClientTLS != tc.want {
				t.Errorf("ClientTLS = %+v, want %+v", r.ev.ClientTLS, tc.want)
			}
			if r.ev.TLSMode != tc.cfg.Mode {
				t.Errorf("TLSMode %q, want %q", r.ev.TLSMode, tc.cfg.Mode)
			}
			if tc.wantStatus == 0 && !strings.Contains(out, "CONNECTED") {
				t.Errorf("s_client did not connect:\n%s", out)
			}
		})
	}
}

// TestTerminateNotTLS: a plaintext HTTP request (curl http:// against the
// TLS port) and random bytes are handshake failures (443).
func TestTerminateNotTLS(t *testing.T) {
	curl := testpeer.Need(t, "curl")
	ca := tlstest.NewCA(t, "CA")
	c := ca.Issue(t, tlstest.Leaf{Names: []string{"a.example"}})
	e, _ := mustEdge(t, Config{Mode: ModeFlexible, Certificates: []CertFile{{c.CertFile, c.KeyFile}}})

	addr, res := serveTerminate(t, e, nil)
	out, err := testpeer.Run(t, 15*time.Second, curl, "-sS", "--max-time", "10", "http://"+addr+"/")
	r := wait(t, res)
	if err == nil {
		t.Errorf("curl succeeded against a TLS port: %s", out)
	}
	if r.status != 443 || r.ev.ClientTLS.Status != StatusHandshakeFailed {
		t.Fatalf("plaintext HTTP: status %d, ClientTLS %+v, err %v", r.status, r.ev.ClientTLS, r.err)
	}

	addr, res = serveTerminate(t, e, nil)
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	// A handshake record header followed by a body that is not a ClientHello.
	conn.Write([]byte{0x16, 0x03, 0x01, 0x00, 0x08, 0x02, 0x00, 0x00, 0x04, 1, 2, 3, 4})
	r = wait(t, res)
	conn.Close()
	if r.status != 443 || r.ev.ClientTLS.Status != StatusHandshakeFailed {
		t.Fatalf("garbage hello: status %d, ClientTLS %+v, err %v", r.status, r.ev.ClientTLS, r.err)
	}
}

// TestTerminateTimeout: a client that connects and says nothing fails the
// handshake when handshake_timeout passes.
func TestTerminateTimeout(t *testing.T) {
	ca := tlstest.NewCA(t, "CA")
	c := ca.Issue(t, tlstest.Leaf{Names: []string{"a.example"}})
	e, _ := mustEdge(t, Config{Mode: ModeFlexible, Certificates: []CertFile{{c.CertFile, c.KeyFile}},
		HandshakeTimeout: 200 * time.Millisecond})
	addr, res := serveTerminate(t, e, nil)
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	r := wait(t, res)
	if r.status != 443 {
		t.Fatalf("status %d, want 443 (err %v)", r.status, r.err)
	}
	var ne net.Error
	if !errors.As(r.err, &ne) || !ne.Timeout() {
		t.Errorf("error %v is not a timeout", r.err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v to time out", d)
	}
}

// TestTerminateCurl: curl verifies the edge certificate against the test
// CA, negotiates ALPN, and gets a response over the terminated connection.
func TestTerminateCurl(t *testing.T) {
	curl := testpeer.Need(t, "curl")
	ca := tlstest.NewCA(t, "CA")
	c := ca.Issue(t, tlstest.Leaf{Names: []string{"a.example"}, KeyType: tlstest.RSA})
	e, _ := mustEdge(t, Config{Mode: ModeFlexible, Certificates: []CertFile{{c.CertFile, c.KeyFile}}, ALPN: []string{"http/1.1"}})
	var alpn string
	addr, res := serveTerminate(t, e, func(tc *tls.Conn) {
		alpn = tc.ConnectionState().NegotiatedProtocol
		br := bufio.NewReader(tc)
		for {
			line, err := br.ReadString('\n')
			if err != nil || line == "\r\n" {
				break
			}
		}
		io.WriteString(tc, "HTTP/1.1 200 OK\r\nContent-Length: 9\r\nConnection: close\r\n\r\nprism-tls")
		tc.Close()
	})
	_, port, _ := net.SplitHostPort(addr)
	out, err := testpeer.Run(t, 15*time.Second, curl, "-sS", "--max-time", "10", "--cacert", ca.CAFile,
		"--resolve", "a.example:"+port+":127.0.0.1", "https://a.example:"+port+"/")
	r := wait(t, res)
	if err != nil || out != "prism-tls" {
		t.Fatalf("curl: %v: %q (edge status %d, %v)", err, out, r.status, r.err)
	}
	if r.ev.ClientTLS.Status != "OK" || r.ev.ClientTLS.ServerName != "a.example" || r.ev.ClientTLS.Protocol != "TLSv1.3" {
		t.Errorf("ClientTLS %+v", r.ev.ClientTLS)
	}
	if alpn != "http/1.1" {
		t.Errorf("ALPN %q, want http/1.1", alpn)
	}
}

// TestCertificateBySNI checks the choice among several certificates: exact
// name, wildcard (one label only), default = first, and RSA vs ECDSA for the
// same name by what the client supports.
func TestCertificateBySNI(t *testing.T) {
	ca := tlstest.NewCA(t, "CA")
	first := ca.Issue(t, tlstest.Leaf{Names: []string{"default.example"}})
	a := ca.Issue(t, tlstest.Leaf{Names: []string{"a.example"}})
	wild := ca.Issue(t, tlstest.Leaf{Names: []string{"*.b.example"}})
	dualRSA := ca.Issue(t, tlstest.Leaf{Names: []string{"dual.example"}, KeyType: tlstest.RSA})
	dualEC := ca.Issue(t, tlstest.Leaf{Names: []string{"dual.example"}})
	e, _ := mustEdge(t, Config{Mode: ModeFlexible, Certificates: []CertFile{
		{first.CertFile, first.KeyFile}, {a.CertFile, a.KeyFile}, {wild.CertFile, wild.KeyFile},
		{dualRSA.CertFile, dualRSA.KeyFile}, {dualEC.CertFile, dualEC.KeyFile},
	}})
	tests := []struct {
		sni     string
		ciphers []uint16 // TLS 1.2 suites offered; nil: TLS 1.3 defaults
		want    *tlstest.Issued
	}{
		{"a.example", nil, &a},
		{"A.Example.", nil, &a},
		{"x.b.example", nil, &wild},
		{"y.x.b.example", nil, &first}, // a wildcard covers one label
		{"b.example", nil, &first},
		{"unknown.example", nil, &first},
		{"", nil, &first},
		{"dual.example", []uint16{tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256}, &dualRSA},
		{"dual.example", []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256}, &dualEC},
	}
	for _, tc := range tests {
		addr, res := serveTerminate(t, e, nil)
		cfg := &tls.Config{ServerName: tc.sni, InsecureSkipVerify: true}
		if tc.ciphers != nil {
			cfg.MaxVersion = tls.VersionTLS12
			cfg.CipherSuites = tc.ciphers
		}
		conn, err := tls.Dial("tcp", addr, cfg)
		if err != nil {
			t.Fatalf("sni %q: %v", tc.sni, err)
		}
		got := conn.ConnectionState().PeerCertificates[0]
		conn.Close()
		r := wait(t, res)
		if r.tc != nil {
			r.tc.Close()
		}
		if got.SerialNumber.Cmp(tc.want.Leaf.SerialNumber) != 0 {
			t.Errorf("sni %q ciphers %v: got certificate %v %v, want %v", tc.sni, tc.ciphers, got.DNSNames, got.PublicKeyAlgorithm, tc.want.Leaf.DNSNames)
		}
	}
}

// TestCertificatePrefersValid: of several certificates for one name, one
// whose validity period covers now is served before an expired or not yet
// valid one listed first (a renewal added after the old certificate), so
// verifying clients succeed; what the client can use still comes first.
func TestCertificatePrefersValid(t *testing.T) {
	ca := tlstest.NewCA(t, "CA")
	now := time.Now()
	expired := ca.Issue(t, tlstest.Leaf{Names: []string{"a.example"}, NotBefore: now.Add(-48 * time.Hour), NotAfter: now.Add(-time.Hour)})
	future := ca.Issue(t, tlstest.Leaf{Names: []string{"a.example"}, NotBefore: now.Add(time.Hour), NotAfter: now.Add(48 * time.Hour)})
	fresh := ca.Issue(t, tlstest.Leaf{Names: []string{"a.example"}})
	freshRSA := ca.Issue(t, tlstest.Leaf{Names: []string{"a.example"}, KeyType: tlstest.RSA})
	ecdsaOnly := []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256}
	tests := []struct {
		name    string
		certs   []tlstest.Issued
		ciphers []uint16 // TLS 1.2 suites offered; nil: TLS 1.3 defaults
		verify  bool
		want    tlstest.Issued
	}{
		{"expired first", []tlstest.Issued{expired, fresh}, nil, true, fresh},
		{"not yet valid first", []tlstest.Issued{future, fresh}, nil, true, fresh},
		{"both out of date", []tlstest.Issued{expired, future}, nil, false, expired},
		{"supported before valid", []tlstest.Issued{expired, freshRSA}, ecdsaOnly, false, expired},
	}
	for _, tc := range tests {
		var files []CertFile
		for _, c := range tc.certs {
			files = append(files, CertFile{c.CertFile, c.KeyFile})
		}
		e, _ := mustEdge(t, Config{Mode: ModeFlexible, Certificates: files})
		addr, res := serveTerminate(t, e, nil)
		cfg := &tls.Config{ServerName: "a.example", RootCAs: ca.Pool(), InsecureSkipVerify: !tc.verify}
		if tc.ciphers != nil {
			cfg.MaxVersion = tls.VersionTLS12
			cfg.CipherSuites = tc.ciphers
		}
		conn, err := tls.Dial("tcp", addr, cfg)
		r := wait(t, res)
		if r.tc != nil {
			r.tc.Close()
		}
		if err != nil {
			t.Errorf("%s: %v (edge: %d %v)", tc.name, err, r.status, r.err)
			continue
		}
		got := conn.ConnectionState().PeerCertificates[0]
		conn.Close()
		if got.SerialNumber.Cmp(tc.want.Leaf.SerialNumber) != 0 {
			t.Errorf("%s: served the certificate valid %v – %v, want %v – %v", tc.name, got.NotBefore, got.NotAfter, tc.want.Leaf.NotBefore, tc.want.Leaf.NotAfter)
		}
	}
}

// TestCertificateWildcardWhenExactUnusable: when the client can use none
// of the certificates whose name equals the SNI (an RSA one, an
// ECDSA-only client), a wildcard that covers the name and that the client
// can use is served, not the unusable exact match.
func TestCertificateWildcardWhenExactUnusable(t *testing.T) {
	ca := tlstest.NewCA(t, "CA")
	exactRSA := ca.Issue(t, tlstest.Leaf{Names: []string{"a.example"}, KeyType: tlstest.RSA})
	wildEC := ca.Issue(t, tlstest.Leaf{Names: []string{"*.example"}})
	e, _ := mustEdge(t, Config{Mode: ModeFlexible, Certificates: []CertFile{
		{exactRSA.CertFile, exactRSA.KeyFile}, {wildEC.CertFile, wildEC.KeyFile},
	}})
	tests := []struct {
		ciphers []uint16
		want    tlstest.Issued
	}{
		{[]uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256}, wildEC},
		{[]uint16{tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256}, exactRSA},
	}
	for _, tc := range tests {
		addr, res := serveTerminate(t, e, nil)
		conn, err := tls.Dial("tcp", addr, &tls.Config{ServerName: "a.example", RootCAs: ca.Pool(),
			MaxVersion: tls.VersionTLS12, CipherSuites: tc.ciphers})
		r := wait(t, res)
		if r.tc != nil {
			r.tc.Close()
		}
		if err != nil {
			t.Errorf("ciphers %v: %v (edge: %d %v)", tc.ciphers, err, r.status, r.err)
			continue
		}
		got := conn.ConnectionState().PeerCertificates[0]
		conn.Close()
		if got.SerialNumber.Cmp(tc.want.Leaf.SerialNumber) != 0 {
			t.Errorf("ciphers %v: served %v %v, want %v", tc.ciphers, got.DNSNames, got.PublicKeyAlgorithm, tc.want.Leaf.DNSNames)
		}
	}
}

// TestReloadCertificate replaces the certificate files under a live Edge:
// a good new pair is served to the next handshake; a broken file keeps the
// previous certificate and the log says why.
func TestReloadCertificate(t *testing.T) {
	ca := tlstest.NewCA(t, "CA")
	v1 := ca.Issue(t, tlstest.Leaf{Names: []string{"a.example"}})
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "edge.pem"), filepath.Join(dir, "edge.key")
	install := func(is tlstest.Issued) {
		// Replace by rename, as certbot and secret managers do.
		for _, p := range [][2]string{{is.CertFile, certFile}, {is.KeyFile, keyFile}} {
			b, err := os.ReadFile(p[0])
			if err != nil {
				t.Fatal(err)
			}
			tmp := p[1] + ".tmp"
			if err := os.WriteFile(tmp, b, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(tmp, p[1]); err != nil {
				t.Fatal(err)
			}
		}
	}
	install(v1)

	type load struct {
		src string
		err error
	}
	loads := make(chan load, 16)
	logger, logs := testLogger(t)
	e, err := newEdge(prepared(t, Config{Mode: ModeFlexible, Certificates: []CertFile{{certFile, keyFile}}, ReloadInterval: 20 * time.Millisecond}),
		logger, func(src string, err error) { loads <- load{src, err} })
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if l := wait(t, loads); l.err != nil {
		t.Fatalf("initial load: %v", l.err)
	}
	served := func() *big.Int {
		t.Helper()
		addr, res := serveTerminate(t, e, nil)
		conn, err := tls.Dial("tcp", addr, &tls.Config{ServerName: "a.example", RootCAs: ca.Pool()})
		if err != nil {
			t.Fatal(err)
		}
		sn := conn.ConnectionState().PeerCertificates[0].SerialNumber
		conn.Close()
		if r := wait(t, res); r.tc != nil {
			r.tc.Close()
		}
		return sn
	}
	if got := served(); got.Cmp(v1.Leaf.SerialNumber) != 0 {
		t.Fatalf("serving serial %v, want %v", got, v1.Leaf.SerialNumber)
	}

	v2 := ca.Issue(t, tlstest.Leaf{Names: []string{"a.example"}})
	install(v2)
	if l := wait(t, loads); l.err != nil {
		// The two renames can be seen half done: cert v2 with key v1. That
		// load fails and the next tick picks up the finished pair.
		if l = wait(t, loads); l.err != nil {
			t.Fatalf("reload of a good pair failed: %v", l.err)
		}
	}
	if got := served(); got.Cmp(v2.Leaf.SerialNumber) != 0 {
		t.Fatalf("after reload serving serial %v, want %v", got, v2.Leaf.SerialNumber)
	}

	if err := os.WriteFile(certFile, []byte("-----BEGIN CERTIFICATE-----\ngarbage\n-----END CERTIFICATE-----\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if l := wait(t, loads); l.err == nil {
		t.Fatal("a broken certificate file loaded without error")
	}
	if got := served(); got.Cmp(v2.Leaf.SerialNumber) != 0 {
		t.Fatalf("after a bad file serving serial %v, want the previous %v", got, v2.Leaf.SerialNumber)
	}
	if !strings.Contains(logs.String(), "keeping the previous version") {
		t.Errorf("log does not explain the failed reload:\n%s", logs)
	}
	if err := e.Ready(); err == nil || !strings.Contains(err.Error(), "certificates[0]") {
		t.Errorf("Ready() = %v, want the failed source named", err)
	}

	install(v1)
	if l := wait(t, loads); l.err != nil {
		if l = wait(t, loads); l.err != nil {
			t.Fatalf("recovering reload failed: %v", l.err)
		}
	}
	if err := e.Ready(); err != nil {
		t.Errorf("Ready() after recovery = %v", err)
	}
}

// TestIsTLSError: errstatus.IsTLS on real edge errors. A corrupted record
// on an established connection is a TLS error (disconnect 490); a clean
// close and a plain socket error are not.
func TestIsTLSError(t *testing.T) {
	ca := tlstest.NewCA(t, "CA")
	c := ca.Issue(t, tlstest.Leaf{Names: []string{"a.example"}})
	e, _ := mustEdge(t, Config{Mode: ModeFlexible, Certificates: []CertFile{{c.CertFile, c.KeyFile}}})

	readErr := func(after func(raw net.Conn, tc *tls.Conn)) error {
		addr, res := serveTerminate(t, e, nil)
		raw, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer raw.Close()
		tc := tls.Client(raw, &tls.Config{ServerName: "a.example", RootCAs: ca.Pool()})
		if err := tc.Handshake(); err != nil {
			t.Fatal(err)
		}
		r := wait(t, res)
		if r.err != nil {
			t.Fatal(r.err)
		}
		defer r.tc.Close()
		after(raw, tc)
		r.tc.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err = r.tc.Read(make([]byte, 64))
		return err
	}
	bad := readErr(func(raw net.Conn, _ *tls.Conn) {
		raw.Write([]byte{0x17, 0x03, 0x03, 0x00, 0x20})
		raw.Write(make([]byte, 0x20)) // an application-data record that fails authentication
	})
	if !errstatus.IsTLS(bad) {
		t.Errorf("errstatus.IsTLS(%v) = false for a forged record", bad)
	}
	clean := readErr(func(_ net.Conn, tc *tls.Conn) { tc.Close() })
	if clean != io.EOF || errstatus.IsTLS(clean) {
		t.Errorf("close_notify: err %v, IsTLS %v", clean, errstatus.IsTLS(clean))
	}
	if errstatus.IsTLS(&net.OpError{Op: "read", Err: os.ErrDeadlineExceeded}) || errstatus.IsTLS(nil) {
		t.Error("socket errors reported as TLS errors")
	}
}

// TestReloadOnlyWhatChanged: with the watcher off, Reload(false) loads no
// source whose files are as they were, and a source whose files were
// replaced; Reload(true) loads every source whether or not it changed.
func TestReloadOnlyWhatChanged(t *testing.T) {
	ca := tlstest.NewCA(t, "CA")
	a := ca.Issue(t, tlstest.Leaf{Names: []string{"a.example"}})
	b := ca.Issue(t, tlstest.Leaf{Names: []string{"b.example"}})
	loads := make(chan string, 16)
	logger, _ := testLogger(t)
	e, err := newEdge(Config{Mode: ModeFlexible, ReloadInterval: -1, Certificates: []CertFile{
		{a.CertFile, a.KeyFile}, {b.CertFile, b.KeyFile}}},
		logger, func(src string, err error) {
			if err != nil {
				t.Errorf("load %s: %v", src, err)
			}
			loads <- src
		})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	drain := func() []string {
		var got []string
		for {
			select {
			case s := <-loads:
				got = append(got, s)
			default:
				return got
			}
		}
	}
	if got := drain(); len(got) != 2 {
		t.Fatalf("initial loads %v, want both sources", got)
	}
	if err := e.Reload(false); err != nil || len(drain()) != 0 {
		t.Fatalf("Reload(false) with nothing changed: %v, loads %v", err, drain())
	}
	b2 := ca.Issue(t, tlstest.Leaf{Names: []string{"b.example"}})
	for _, p := range [][2]string{{b2.CertFile, b.CertFile}, {b2.KeyFile, b.KeyFile}} {
		if err := os.Rename(p[0], p[1]); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.Reload(false); err != nil {
		t.Fatal(err)
	}
	if got := drain(); len(got) != 1 || got[0] != "certificates[1]" {
		t.Fatalf("Reload(false) after replacing b loaded %v, want [certificates[1]]", got)
	}
	if err := e.Reload(true); err != nil {
		t.Fatal(err)
	}
	if got := drain(); len(got) != 2 {
		t.Fatalf("Reload(true) loaded %v, want both sources", got)
	}
}
