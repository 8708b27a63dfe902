package tlsedge

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/prismproxy/prism/internal/filewatch"
)

// certSet is an immutable snapshot of the usable edge certificates, indexed
// by the names they cover. A reload builds a new set and swaps it in.
type certSet struct {
	all   []*edgeCert            // usable certificates in config order; all[0] is the default
	exact map[string][]*edgeCert // normalised DNS name → certificates
	wild  map[string][]*edgeCert // "b.example" → certificates for *.b.example
}

// edgeCert is a certificate with its leaf's validity period, read once
// when the set is built so that a handshake only compares two times.
type edgeCert struct {
	cert                *tls.Certificate
	notBefore, notAfter time.Time
}

// validAt reports whether the leaf is within its validity period at now.
func (c *edgeCert) validAt(now time.Time) bool {
	return !now.Before(c.notBefore) && !now.After(c.notAfter)
}

func newCertSet(slots []*tls.Certificate) *certSet {
	s := &certSet{exact: map[string][]*edgeCert{}, wild: map[string][]*edgeCert{}}
	for _, tc := range slots {
		if tc == nil {
			continue
		}
		c := &edgeCert{cert: tc, notBefore: tc.Leaf.NotBefore, notAfter: tc.Leaf.NotAfter}
		s.all = append(s.all, c)
		names := tc.Leaf.DNSNames
		if len(names) == 0 && tc.Leaf.Subject.CommonName != "" {
			names = []string{tc.Leaf.Subject.CommonName}
		}
		for _, n := range names {
			n = normName(n)
			if rest, ok := cutWildcard(n); ok {
				s.wild[rest] = append(s.wild[rest], c)
			} else {
				s.exact[n] = append(s.exact[n], c)
			}
		}
	}
	return s
}

func cutWildcard(n string) (string, bool) {
	if len(n) > 2 && n[0] == '*' && n[1] == '.' {
		return n[2:], true
	}
	return "", false
}

// pick chooses the certificate for a ClientHello among those covering its
// name, exact matches before wildcard ones (see bestFor); when the client
// can use none of them, the first exact match, else the first wildcard
// one; with no covering certificate (or no SNI), the default (see bestFor
// over all). A wildcard is tried when the exact matches are unusable
// (an RSA certificate for the name, an ECDSA client): serving one the
// client cannot use fails the handshake while a covering one would do.
func (s *certSet) pick(hello *tls.ClientHelloInfo) *tls.Certificate {
	if len(s.all) == 0 {
		return nil
	}
	if name := normName(hello.ServerName); name != "" {
		exact := s.exact[name]
		var wild []*edgeCert
		if _, parent, ok := cut(name, '.'); ok {
			wild = s.wild[parent]
		}
		switch {
		case len(exact)+len(wild) == 1: // the only candidate: nothing to weigh
			if exact != nil {
				return exact[0].cert
			}
			return wild[0].cert
		case exact != nil || wild != nil:
			if c := bestFor(hello, exact, wild); c != nil {
				return c
			}
			if exact != nil {
				return exact[0].cert
			}
			return wild[0].cert
		}
	}
	if len(s.all) == 1 {
		return s.all[0].cert
	}
	if c := bestFor(hello, s.all, nil); c != nil {
		return c
	}
	return s.all[0].cert
}

func cut(s string, sep byte) (string, string, bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == sep {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

// bestFor chooses among the candidates a, then b (each in config order):
// the first the client supports whose validity period covers now; else
// the first the client supports; else nil (pick falls back). Dates come
// first among supported ones so that an expired (or not yet valid)
// certificate listed before its renewal is not served to clients that
// verify: they would all fail. An out-of-date certificate is still served
// when it is all there is (docs/tls.md). Two lists, not one joined, so a
// handshake allocates nothing here.
func bestFor(hello *tls.ClientHelloInfo, a, b []*edgeCert) *tls.Certificate {
	now := time.Now()
	var supported *tls.Certificate
	for _, cs := range [2][]*edgeCert{a, b} {
		for _, c := range cs {
			if hello.SupportsCertificate(c.cert) != nil {
				continue
			}
			if c.validAt(now) {
				return c.cert
			}
			if supported == nil {
				supported = c.cert
			}
		}
	}
	return supported
}

// loadPair reads a certificate chain and key and checks that they belong
// together and that the leaf parses.
func loadPair(certFile, keyFile string) (*tls.Certificate, error) {
	c, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("load %s / %s: %w", certFile, keyFile, err)
	}
	if c.Leaf == nil {
		if c.Leaf, err = x509.ParseCertificate(c.Certificate[0]); err != nil {
			return nil, fmt.Errorf("parse %s: %w", certFile, err)
		}
	}
	return &c, nil
}

// loadPool reads a PEM bundle of CA certificates.
func loadPool(file string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("CA file %s holds no PEM certificate", file)
	}
	return pool, nil
}

// source is a set of files loaded together (a cert and its key, a CA
// bundle) and the function that loads and installs them.
type source struct {
	name  string
	files *filewatch.Files // what the files looked like at the last load
	load  func() error     // installs on success; on error the previous value stays
}

// errNoCertificate is returned (as 540 INVALID_CONFIG) when no certificate
// could be loaded for a terminating app.
var errNoCertificate = errors.New("no usable certificate: every configured certificate failed to load")
