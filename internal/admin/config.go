package admin

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"

	"github.com/prismproxy/prism/internal/cfgerr"
)

// Config is the admin: section. An empty Listen turns the admin listener off.
type Config struct {
	// Listen is host:port. A loopback host needs no token; any other host
	// (including an empty one, every address) does.
	Listen string `yaml:"listen"`
	// Token is the bearer token every request but /healthz and /readyz must
	// carry ("Authorization: Bearer TOKEN"). TokenFile reads it from a file
	// instead (first line), so the config file need hold no secret.
	Token     string `yaml:"token"`
	TokenFile string `yaml:"token_file"`
	// Pprof serves /debug/pprof/ (behind the same token rule).
	Pprof bool `yaml:"pprof"`
	// TLS serves the admin listener over TLS; with ClientCA, a client
	// certificate signed by it authorises a request as a token does.
	TLS TLSConfig `yaml:"tls"`
}

// TLSConfig is admin.tls.
type TLSConfig struct {
	Cert     string `yaml:"cert"`      // PEM certificate chain
	Key      string `yaml:"key"`       // PEM private key
	ClientCA string `yaml:"client_ca"` // PEM CA bundle client certificates must chain to
}

// On reports whether the listener speaks TLS.
func (t TLSConfig) On() bool { return t.Cert != "" }

// minTokenLen is the shortest token accepted.
const minTokenLen = 16

// Enabled reports whether the admin listener is configured.
func (c Config) Enabled() bool { return c.Listen != "" }

// Validate checks the section. It does not read TokenFile's content beyond
// checking that it yields a token.
func (c Config) Validate() []*cfgerr.Error { return c.validate(true) }

// ValidateUnread is Validate without reading TokenFile, for the commands
// that only signal a running prism (which reads it as its own user; they
// may not be allowed to): a token_file counts as a token, whatever it
// holds.
func (c Config) ValidateUnread() []*cfgerr.Error { return c.validate(false) }

func (c Config) validate(readTokenFile bool) []*cfgerr.Error {
	var errs cfgerr.List
	if c.Listen == "" {
		if c.Token != "" || c.TokenFile != "" || c.Pprof {
			errs.Add("listen", "missing: token, token_file and pprof need an admin listen address")
		}
		return errs
	}
	host, port, err := net.SplitHostPort(c.Listen)
	if err != nil || port == "" {
		errs.Add("listen", "bad address %q: want host:port, e.g. 127.0.0.1:9901", c.Listen)
		return errs
	}
	if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 || port != strconv.Itoa(p) {
		errs.Add("listen", "bad port %q: want 1-65535 (or 0 for any free port)", port)
		return errs
	}
	if t := c.TLS; t != (TLSConfig{}) {
		if t.Cert == "" || t.Key == "" {
			errs.Add("tls", "give both cert and key")
		}
		for _, f := range []struct{ key, path string }{{"tls.cert", t.Cert}, {"tls.key", t.Key}, {"tls.client_ca", t.ClientCA}} {
			if f.path == "" {
				continue
			}
			if _, err := os.Stat(f.path); err != nil {
				errs.Add(f.key, "%v", err)
			}
		}
	}
	if c.Token != "" && c.TokenFile != "" {
		errs.Add("token_file", "give token or token_file, not both")
	}
	if c.TokenFile != "" && !readTokenFile {
		return errs // it holds a token: what it holds is not checked
	}
	tok := c.Token
	if c.TokenFile != "" {
		t, err := ReadTokenFile(c.TokenFile)
		if err != nil {
			errs.Add("token_file", "%v", err)
			return errs
		}
		tok = t
	}
	if tok != "" && len(tok) < minTokenLen {
		key := "token"
		if c.TokenFile != "" {
			key = "token_file" // the token it holds
		}
		errs.Add(key, "too short: use at least %d characters (e.g. openssl rand -hex 32)", minTokenLen)
	}
	if !IsLoopback(host) && tok == "" && c.TLS.ClientCA == "" {
		errs.Add("listen", "%q is not a loopback address: a public admin listener needs token, token_file or tls.client_ca", c.Listen)
	}
	return errs
}

// IsLoopback reports whether host names only loopback addresses
// (127.0.0.0/8, ::1, localhost). An empty host (every address) is not.
func IsLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.IsLoopback()
}

// ReadTokenFile returns the first line of path, trimmed.
func ReadTokenFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	tok := strings.TrimSpace(line)
	if tok == "" {
		return "", fmt.Errorf("token file %s: the first line is empty", path)
	}
	return tok, nil
}

// token returns the configured token ("" for none).
func (c Config) token() (string, error) {
	if c.TokenFile != "" {
		return ReadTokenFile(c.TokenFile)
	}
	return c.Token, nil
}
