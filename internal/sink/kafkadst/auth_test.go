package kafkadst

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/prismproxy/prism/internal/sink"
	"github.com/prismproxy/prism/internal/sink/sinktest"
)

// selfSigned returns a TLS certificate for 127.0.0.1 and its PEM file.
func selfSigned(t *testing.T) (tls.Certificate, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "kfake"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, ca
}

// TestTLSAndSASL: a cluster that speaks only TLS and SCRAM-SHA-512 takes
// the records with the right password and CA, and not without.
func TestTLSAndSASL(t *testing.T) {
	cert, ca := selfSigned(t)
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "prism"),
		kfake.TLS(&tls.Config{Certificates: []tls.Certificate{cert}}),
		kfake.EnableSASL(), kfake.Superuser("SCRAM-SHA-512", "prism", "right"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	send := func(cfg Config) error {
		cfg.Brokers, cfg.Topic, cfg.Timeout = c.ListenAddrs(), "prism", 2*time.Second
		s, err := New(prepared(t, cfg))
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return s.Send(ctx, sinktest.Batch(time.Now(), 1, 2))
	}
	good := Config{TLS: sink.TLSConfig{Enabled: true, CAFile: ca}, SASL: SASLConfig{Mechanism: "scram-sha-512", Username: "prism", Password: "right"}}
	if err := send(good); err != nil {
		t.Fatalf("TLS + SCRAM-SHA-512: %v", err)
	}
	bad := good
	bad.SASL.Password = "wrong"
	if err := send(bad); err == nil {
		t.Fatal("a wrong password was accepted")
	}
	noCA := good
	noCA.TLS.CAFile = ""
	if err := send(noCA); err == nil {
		t.Fatal("an unknown CA was accepted")
	}
}
