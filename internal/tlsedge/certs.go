package tlsedge

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"

	"github.com/prismproxy/prism/internal/filewatch"
)

// certSet is an immutable snapshot of the usable edge certificates, indexed
// by the names they cover. A reload builds a new set and swaps it in.
type certSet struct {
	all   []*tls.Certificate            // usable certificates in config order; all[0] is the default
	exact map[string][]*tls.Certificate // normalised DNS name → certificates
	wild  map[string][]*tls.Certificate // "b.example" → certificates for *.b.example
}

func newCertSet(slots []*tls.Certificate) *certSet {
	s := &certSet{exact: map[string][]*tls.Certificate{}, wild: map[string][]*tls.Certificate{}}
	for _, c := range slots {
		if c == nil {
			continue
		}
		s.all = append(s.all, c)
		names := c.Leaf.DNSNames
		if len(names) == 0 && c.Leaf.Subject.CommonName != "" {
			names = []string{c.Leaf.Subject.CommonName}
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

// pick chooses the certificate for a ClientHello: an exact name match, then
// a wildcard match, then the default. Among several candidates for a name
// (say RSA and ECDSA) the first the client supports wins.
func (s *certSet) pick(hello *tls.ClientHelloInfo) *tls.Certificate {
	if len(s.all) == 0 {
		return nil
	}
	name := normName(hello.ServerName)
	if name != "" {
		if cs := s.exact[name]; cs != nil {
			return bestFor(hello, cs)
		}
		if _, parent, ok := cut(name, '.'); ok {
			if cs := s.wild[parent]; cs != nil {
				return bestFor(hello, cs)
			}
		}
	}
	return bestFor(hello, s.all)
}

func cut(s string, sep byte) (string, string, bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == sep {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

func bestFor(hello *tls.ClientHelloInfo, cs []*tls.Certificate) *tls.Certificate {
	if len(cs) == 1 {
		return cs[0]
	}
	for _, c := range cs {
		if hello.SupportsCertificate(c) == nil {
			return c
		}
	}
	return cs[0]
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
