package tlstest

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"testing"
	"time"
)

// TestIssuedLeafHandshakes: a leaf issued by the CA, loaded from its
// files, serves a TLS handshake that a client trusting only CAFile
// verifies; the client also verifies the name and rejects another.
func TestIssuedLeafHandshakes(t *testing.T) {
	ca := NewCA(t, "tlstest CA")
	for _, kt := range []string{ECDSA, RSA} {
		leaf := ca.Issue(t, Leaf{Names: []string{"a.example"}, KeyType: kt})
		cert, err := tls.LoadX509KeyPair(leaf.CertFile, leaf.KeyFile)
		if err != nil {
			t.Fatal(err)
		}
		roots := x509.NewCertPool()
		pemCA, err := os.ReadFile(ca.CAFile)
		if err != nil || !roots.AppendCertsFromPEM(pemCA) {
			t.Fatalf("CAFile: %v", err)
		}
		if err := handshake(t, cert, &tls.Config{RootCAs: roots, ServerName: "a.example"}); err != nil {
			t.Fatalf("%s: %v", kt, err)
		}
		if err := handshake(t, leaf.TLS(), &tls.Config{RootCAs: ca.Pool(), ServerName: "b.example"}); err == nil {
			t.Fatalf("%s: a.example verified as b.example", kt)
		}
	}
	if ip := ca.Loopback(t); handshake(t, ip.TLS(), &tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1"}) != nil {
		t.Fatal("loopback leaf does not verify for 127.0.0.1")
	}
}

func TestValidityAndFingerprint(t *testing.T) {
	ca := NewCA(t, "tlstest CA")
	past := time.Now().Add(-48 * time.Hour)
	a := ca.Issue(t, Leaf{Names: []string{"x"}, NotBefore: past, NotAfter: past.Add(time.Hour)})
	b := ca.Issue(t, Leaf{Names: []string{"x"}})
	if !a.Leaf.NotAfter.Before(time.Now()) || a.CertFile == b.CertFile {
		t.Fatalf("expired leaf NotAfter %v; files %s %s", a.Leaf.NotAfter, a.CertFile, b.CertFile)
	}
	if len(a.Fingerprint()) != 64 || a.Fingerprint() == b.Fingerprint() {
		t.Fatalf("fingerprints %s %s", a.Fingerprint(), b.Fingerprint())
	}
}

func handshake(t *testing.T, cert tls.Certificate, client *tls.Config) error {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		_ = tls.Server(c, &tls.Config{Certificates: []tls.Certificate{cert}}).Handshake()
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	err = tls.Client(c, client).Handshake()
	c.Close()
	<-done
	return err
}

// TestClientHelloIsOneHandshakeRecord: ClientHello is one TLS handshake
// record, of the length its header says, carrying the SNI asked for.
func TestClientHelloIsOneHandshakeRecord(t *testing.T) {
	h := ClientHello(t, "hello.example")
	if len(h) < 5 || h[0] != 0x16 || h[5] != 0x01 {
		t.Fatalf("not a ClientHello handshake record: % x", h[:min(len(h), 8)])
	}
	if n := int(h[3])<<8 | int(h[4]); n != len(h)-5 {
		t.Fatalf("record says %d bytes, has %d", n, len(h)-5)
	}
	if !bytes.Contains(h, []byte("hello.example")) {
		t.Fatal("no SNI in the ClientHello")
	}
	if bytes.Contains(ClientHello(t, ""), []byte("hello.example")) {
		t.Fatal("SNI in a ClientHello offering none")
	}
}
