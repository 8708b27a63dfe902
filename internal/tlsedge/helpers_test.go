package tlsedge

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/prismproxy/prism/internal/cfgerr"
	"github.com/prismproxy/prism/internal/event"
)

// testCA is a certificate authority made for one test.
type testCA struct {
	cert    *x509.Certificate
	key     crypto.Signer
	dir     string
	CAFile  string // PEM of the CA certificate
	serial  int64
	keyType string
}

func newKey(t testing.TB, keyType string) crypto.Signer {
	t.Helper()
	var (
		k   crypto.Signer
		err error
	)
	switch keyType {
	case "rsa":
		k, err = rsa.GenerateKey(rand.Reader, 2048)
	default:
		k, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	}
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// newCA makes a CA with an ECDSA P-256 key.
func newCA(t testing.TB, name string) *testCA {
	t.Helper()
	key := newKey(t, "ecdsa")
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	dir := t.TempDir()
	ca := &testCA{cert: cert, key: key, dir: dir, serial: 1}
	ca.CAFile = filepath.Join(dir, "ca.pem")
	writePEM(t, ca.CAFile, "CERTIFICATE", der)
	return ca
}

// leafOpts describes a certificate to issue.
type leafOpts struct {
	names     []string
	ips       []net.IP
	keyType   string // "rsa" or "ecdsa" (default)
	notBefore time.Time
	notAfter  time.Time
}

// issued is a certificate on disk.
type issued struct {
	CertFile, KeyFile string
	Leaf              *x509.Certificate
}

// issue signs a leaf and writes cert and key as PEM files named after the
// first name (plus a counter).
func (ca *testCA) issue(t testing.TB, o leafOpts) issued {
	t.Helper()
	key := newKey(t, o.keyType)
	if o.notBefore.IsZero() {
		o.notBefore = time.Now().Add(-time.Hour)
	}
	if o.notAfter.IsZero() {
		o.notAfter = time.Now().Add(24 * time.Hour)
	}
	ca.serial++
	cn := "leaf"
	if len(o.names) > 0 {
		cn = o.names[0]
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(ca.serial),
		Subject:      pkix.Name{CommonName: cn},
		DNSNames:     o.names,
		IPAddresses:  o.ips,
		NotBefore:    o.notBefore,
		NotAfter:     o.notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	base := filepath.Join(ca.dir, cn+"-"+big.NewInt(ca.serial).String())
	out := issued{CertFile: base + ".pem", KeyFile: base + ".key", Leaf: leaf}
	writePEM(t, out.CertFile, "CERTIFICATE", der)
	pk, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	writePEM(t, out.KeyFile, "PRIVATE KEY", pk)
	return out
}

func writePEM(t testing.TB, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// pool returns a cert pool holding only the CA.
func (ca *testCA) pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.cert)
	return p
}

// logBuffer captures slog output for assertions.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func testLogger(t testing.TB) (*slog.Logger, *logBuffer) {
	lb := &logBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("edge log:\n%s", lb.String())
		}
	})
	return slog.New(slog.NewTextHandler(lb, &slog.HandlerOptions{Level: slog.LevelDebug})), lb
}

// prepared is cfg defaulted and validated, as NewEdge expects it.
func prepared(t testing.TB, cfg Config) Config {
	t.Helper()
	if err := cfgerr.Prepare(&cfg); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// mustEdge builds an Edge and closes it when the test ends.
func mustEdge(t testing.TB, cfg Config) (*Edge, *logBuffer) {
	t.Helper()
	logger, lb := testLogger(t)
	e, err := NewEdge(prepared(t, cfg), logger)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e, lb
}

// termResult is what one server-side Terminate produced.
type termResult struct {
	tc     *tls.Conn
	status int
	err    error
	ev     event.Event
}

// serveTerminate accepts one connection on a fresh loopback listener and
// runs Terminate on it. After a successful handshake, handle (if set) runs
// on the TLS conn before the result is delivered.
func serveTerminate(t testing.TB, e *Edge, handle func(*tls.Conn)) (string, <-chan termResult) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan termResult, 1)
	go func() {
		defer ln.Close()
		c, err := ln.Accept()
		if err != nil {
			ch <- termResult{err: err, status: -1}
			return
		}
		ev := event.New("app", event.NewID(time.Now()))
		tc, st, err := e.Terminate(c, &ev)
		if err != nil {
			c.Close()
		} else if handle != nil {
			handle(tc)
		}
		ch <- termResult{tc: tc, status: st, err: err, ev: ev}
	}()
	t.Cleanup(func() { ln.Close() })
	return ln.Addr().String(), ch
}

func wait[T any](t testing.TB, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(15 * time.Second):
		t.Fatal("timed out waiting for the server side")
	}
	var zero T
	return zero
}
