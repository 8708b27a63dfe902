package sink

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"

	"github.com/prismproxy/prism/internal/cfgerr"
)

// TLSConfig is the client TLS of a remote destination (HTTP, Kafka).
type TLSConfig struct {
	// Enabled turns TLS on where the address does not say so already
	// (Kafka brokers); an https URL always uses TLS.
	Enabled bool `yaml:"enabled"`
	// CAFile verifies the server against these PEM certificates instead of
	// the system roots.
	CAFile string `yaml:"ca_file"`
	// CertFile and KeyFile are a client certificate (mutual TLS).
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ServerName overrides the name checked in the server's certificate.
	ServerName string `yaml:"server_name"`
	// InsecureSkipVerify accepts any server certificate (tests only).
	InsecureSkipVerify bool `yaml:"insecure_skip_verify"`
}

// Set reports whether any TLS option is given.
func (c *TLSConfig) Set() bool { return *c != TLSConfig{} }

// Validate checks the files exist and the pair is complete.
func (c *TLSConfig) Validate() []*cfgerr.Error {
	var errs cfgerr.List
	if (c.CertFile == "") != (c.KeyFile == "") {
		errs.Add("cert_file", "cert_file and key_file go together")
	}
	for key, f := range map[string]string{"ca_file": c.CAFile, "cert_file": c.CertFile, "key_file": c.KeyFile} {
		if f == "" {
			continue
		}
		if _, err := os.Stat(f); err != nil {
			errs.Add(key, "cannot read %s: %v", f, errNoPath(err))
		}
	}
	return errs
}

func errNoPath(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}

// Build returns the crypto/tls configuration.
func (c *TLSConfig) Build() (*tls.Config, error) {
	tc := &tls.Config{ServerName: c.ServerName, InsecureSkipVerify: c.InsecureSkipVerify, MinVersion: tls.VersionTLS12}
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("tls ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls ca_file %s: no PEM certificates", c.CAFile)
		}
		tc.RootCAs = pool
	}
	if c.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("tls client certificate: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}
