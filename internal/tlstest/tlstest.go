// Package tlstest issues throwaway certificates for tests: a certificate
// authority made for one test, leaves signed by it, written as PEM files
// the way an operator's cert_file, key_file and ca_file are, and a real
// ClientHello to feed a listener. It is imported only by tests (tlsedge,
// relay, sinks, proxy end-to-end).
package tlstest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"encoding/hex"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"
)

// Key types for NewKey and Leaf.KeyType.
const (
	ECDSA = "ecdsa" // P-256, the default
	RSA   = "rsa"   // 2048 bits
)

// NewKey returns a fresh private key of keyType (ECDSA P-256 unless "rsa").
func NewKey(t testing.TB, keyType string) crypto.Signer {
	t.Helper()
	var (
		k   crypto.Signer
		err error
	)
	switch keyType {
	case RSA:
		k, err = rsa.GenerateKey(rand.Reader, 2048)
	default:
		k, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	}
	if err != nil {
		t.Fatalf("tlstest: generate %s key: %v", keyType, err)
	}
	return k
}

// CA is a certificate authority made for one test, with an ECDSA P-256 key.
type CA struct {
	Cert   *x509.Certificate
	Key    crypto.Signer
	CAFile string // PEM of the CA certificate, in Dir
	Dir    string // where the CA and every issued leaf are written

	mu     sync.Mutex
	serial int64
}

// NewCA makes a CA named name in a fresh temporary directory, valid from
// an hour ago for a day, and writes its certificate to CAFile.
func NewCA(t testing.TB, name string) *CA {
	t.Helper()
	key := NewKey(t, ECDSA)
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
		t.Fatalf("tlstest: create CA %q: %v", name, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("tlstest: parse CA %q: %v", name, err)
	}
	dir := t.TempDir()
	ca := &CA{Cert: cert, Key: key, Dir: dir, CAFile: filepath.Join(dir, "ca.pem"), serial: 1}
	WritePEM(t, ca.CAFile, "CERTIFICATE", der)
	return ca
}

// Pool returns a certificate pool holding only the CA.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

// Leaf describes a certificate to issue. Zero times mean valid from an
// hour ago for a day; the certificate is good for both server and client
// authentication.
type Leaf struct {
	Names     []string // DNS names; the first is also the common name
	IPs       []net.IP
	KeyType   string // RSA or ECDSA (default)
	NotBefore time.Time
	NotAfter  time.Time
}

// Issued is a certificate on disk, with its key.
type Issued struct {
	CertFile, KeyFile string // PEM; the key as PKCS #8
	Leaf              *x509.Certificate
	Key               crypto.Signer
}

// TLS returns the certificate for a tls.Config.
func (i Issued) TLS() tls.Certificate {
	return tls.Certificate{Certificate: [][]byte{i.Leaf.Raw}, PrivateKey: i.Key, Leaf: i.Leaf}
}

// Fingerprint is the hex SHA-256 of the certificate's DER.
func (i Issued) Fingerprint() string {
	sum := sha256.Sum256(i.Leaf.Raw)
	return hex.EncodeToString(sum[:])
}

// Issue signs a leaf and writes its cert and key as PEM files in Dir,
// named after the first name (or "leaf") and the serial number.
func (ca *CA) Issue(t testing.TB, o Leaf) Issued {
	t.Helper()
	key := NewKey(t, o.KeyType)
	if o.NotBefore.IsZero() {
		o.NotBefore = time.Now().Add(-time.Hour)
	}
	if o.NotAfter.IsZero() {
		o.NotAfter = time.Now().Add(24 * time.Hour)
	}
	ca.mu.Lock()
	ca.serial++
	serial := ca.serial
	ca.mu.Unlock()
	cn := "leaf"
	if len(o.Names) > 0 {
		cn = o.Names[0]
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: cn},
		DNSNames:     o.Names,
		IPAddresses:  o.IPs,
		NotBefore:    o.NotBefore,
		NotAfter:     o.NotAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.Key)
	if err != nil {
		t.Fatalf("tlstest: issue %q: %v", cn, err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("tlstest: parse %q: %v", cn, err)
	}
	base := filepath.Join(ca.Dir, cn+"-"+strconv.FormatInt(serial, 10))
	out := Issued{CertFile: base + ".pem", KeyFile: base + ".key", Leaf: leaf, Key: key}
	WritePEM(t, out.CertFile, "CERTIFICATE", der)
	pk, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatalf("tlstest: marshal key of %q: %v", cn, err)
	}
	WritePEM(t, out.KeyFile, "PRIVATE KEY", pk)
	return out
}

// Loopback issues a leaf for 127.0.0.1 and ::1 (and names, if any): the
// certificate of a test server on loopback.
func (ca *CA) Loopback(t testing.TB, names ...string) Issued {
	t.Helper()
	return ca.Issue(t, Leaf{Names: names, IPs: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}})
}

// ClientHello returns the first record crypto/tls sends as a client
// offering sni (none if ""): a real ClientHello, for tests that feed one
// to a peeking listener or hold a handshake open after it.
func ClientHello(t testing.TB, sni string) []byte {
	t.Helper()
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	go tls.Client(a, &tls.Config{ServerName: sni, InsecureSkipVerify: true}).Handshake()
	hdr := make([]byte, 5)
	if _, err := io.ReadFull(b, hdr); err != nil {
		t.Fatalf("tlstest: read ClientHello header: %v", err)
	}
	body := make([]byte, binary.BigEndian.Uint16(hdr[3:]))
	if _, err := io.ReadFull(b, body); err != nil {
		t.Fatalf("tlstest: read ClientHello: %v", err)
	}
	return append(hdr, body...)
}

// WritePEM writes der as one PEM block of type typ to path, mode 0600.
func WritePEM(t testing.TB, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatalf("tlstest: %v", err)
	}
}
