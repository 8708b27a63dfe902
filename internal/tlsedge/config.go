// Package tlsedge is the TLS side of an app: it terminates client TLS at the
// edge (modes flexible, full, strict), peeks the ClientHello for SNI when TLS
// passes through untouched (mode off), dials TLS to origins (full, strict),
// and fills every TLS field of the canonical event (protocol, cipher, status,
// SNI, origin certificate fingerprint) the way Spectrum writes them.
//
// Certificates are chosen by SNI from the names in the certificates
// themselves, with the first configured certificate as the default. The
// files are watched: a changed file is re-read and swapped in atomically; a
// bad new file keeps the previous certificate and the reason is logged, so a
// half-finished renewal never takes an app down.
package tlsedge

import (
	"crypto/tls"
	"strings"
	"time"

	"github.com/prismproxy/prism/internal/cfgerr"
	"github.com/prismproxy/prism/internal/origin"
)

// Modes, as Spectrum's OriginTlsMode spells them.
const (
	ModeOff      = "off"      // no TLS at the edge; client TLS (if any) passes through
	ModeFlexible = "flexible" // terminate at the edge, plaintext to the origin
	ModeFull     = "full"     // terminate, TLS to the origin without verification
	ModeStrict   = "strict"   // terminate, TLS to the origin verified against ca_file or system roots
)

// Defaults applied by SetDefaults.
const (
	DefaultMinVersion       = "1.2"
	DefaultHandshakeTimeout = 10 * time.Second
	DefaultReloadInterval   = 5 * time.Second
)

// Config is an app's `tls:` section.
type Config struct {
	// Mode is off (default), flexible, full or strict.
	Mode string `yaml:"mode"`
	// Certificates served to clients. The certificate for a connection is
	// picked by SNI from the DNS names in the certificates (exact name, then
	// a wildcard); the first one is the default for unknown or absent SNI.
	Certificates []CertFile `yaml:"certificates"`
	// MinVersion is the lowest client TLS version accepted: 1.0, 1.1, 1.2
	// (default) or 1.3.
	MinVersion string `yaml:"min_version"`
	// ALPN lists the protocols offered to clients, in preference order.
	// Empty: ALPN is not negotiated.
	ALPN []string `yaml:"alpn"`
	// HandshakeTimeout bounds reading the ClientHello and the whole edge
	// handshake, and the origin handshake (default 10s).
	HandshakeTimeout time.Duration `yaml:"handshake_timeout"`
	// SNIAllow, when set, admits only these server names ("a.example",
	// "*.b.example" for exactly one label under b.example). A ClientHello
	// with another name, or none, ends as tlsError 400 INVALID_SNI. It
	// applies in every mode, including off (the ClientHello is peeked).
	SNIAllow []string `yaml:"sni_allow"`
	// Origin is the TLS client side towards origins (modes full, strict).
	Origin OriginConfig `yaml:"origin"`
	// PassthroughRoutes pick an origin set by SNI in mode off. A name that
	// matches no route goes to the app's own origins.
	PassthroughRoutes []Route `yaml:"passthrough_routes"`
	// PeekSNI reads the ClientHello in mode off only to log its SNI
	// (ClientTlsClientHelloServerName), without sni_allow or routes. Like
	// them it makes a client that sends nothing wait handshake_timeout, so
	// it is off by default: an app that may carry server-first protocols
	// must not set it.
	PeekSNI bool `yaml:"peek_sni"`
	// ProxyProtocolTLVs adds PP2_TYPE_SSL (version, cipher) and
	// PP2_TYPE_AUTHORITY (SNI) to a PROXY v2 header sent to the origin.
	ProxyProtocolTLVs bool `yaml:"proxy_protocol_tlvs"`
	// ReloadInterval is how often certificate and CA files are checked for
	// changes (default 5s; a negative value turns watching off).
	ReloadInterval time.Duration `yaml:"reload_interval"`
	// MaxHandshakes bounds concurrent handshakes after the ClientHello
	// (the CPU-heavy part) when terminating; 0: no bound. Set from the
	// app's limits.max_tls_handshakes. A connection that gets no slot
	// before its handshake_timeout ends with ErrHandshakeLimit.
	MaxHandshakes int `yaml:"-"`
}

// CertFile is one certificate chain and its private key, both PEM files.
type CertFile struct {
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
}

// OriginConfig is how the proxy speaks TLS to origins.
type OriginConfig struct {
	// ServerName is the SNI sent and, in strict mode, the name verified.
	// Empty: the origin's DNS name if it came from one, else the client's
	// SNI, else the origin IP (verified against IP SANs, no SNI sent).
	ServerName string `yaml:"server_name"`
	// CAFile is a PEM bundle of roots for strict mode (default: the system
	// roots).
	CAFile string `yaml:"ca_file"`
	// Cert and Key are a client certificate for origins that require one.
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
	// MinVersion towards origins (default 1.2).
	MinVersion string `yaml:"min_version"`
}

// Route sends passthrough connections whose SNI matches to their own
// origins. The lead builds one origin pool per route.
type Route struct {
	SNI     string        `yaml:"sni"`
	Origins origin.Config `yaml:"origins"`
}

// SetDefaults fills unset values.
func (c *Config) SetDefaults() {
	if c.Mode == "" {
		c.Mode = ModeOff
	}
	if c.MinVersion == "" {
		c.MinVersion = DefaultMinVersion
	}
	if c.Origin.MinVersion == "" {
		c.Origin.MinVersion = DefaultMinVersion
	}
	if c.HandshakeTimeout == 0 {
		c.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if c.ReloadInterval == 0 {
		c.ReloadInterval = DefaultReloadInterval
	}
	for i := range c.PassthroughRoutes {
		c.PassthroughRoutes[i].Origins.SetDefaults()
	}
}

// Terminates reports whether the mode ends client TLS at the edge.
func (c *Config) Terminates() bool {
	return c.Mode == ModeFlexible || c.Mode == ModeFull || c.Mode == ModeStrict
}

// OriginTLS reports whether the mode speaks TLS to the origin.
func (c *Config) OriginTLS() bool { return c.Mode == ModeFull || c.Mode == ModeStrict }

// Validate checks the section. Keys are relative to `tls`. Files are not
// opened here: NewEdge loads them and Edge.Ready reports what failed.
func (c *Config) Validate() []*cfgerr.Error {
	var errs cfgerr.List
	switch c.Mode {
	case "", ModeOff, ModeFlexible, ModeFull, ModeStrict:
	default:
		errs.Add("mode", "unknown mode %q (use off, flexible, full or strict)", c.Mode)
	}
	if c.Terminates() && len(c.Certificates) == 0 {
		errs.Add("certificates", "mode %s terminates TLS at the edge and needs at least one certificate", c.Mode)
	}
	for i, cf := range c.Certificates {
		k := cfgerr.Index("certificates", i)
		if cf.Cert == "" {
			errs.Add(cfgerr.Join(k, "cert"), "missing: path of the PEM certificate chain")
		}
		if cf.Key == "" {
			errs.Add(cfgerr.Join(k, "key"), "missing: path of the PEM private key")
		}
	}
	if _, err := parseVersion(c.MinVersion); err != nil {
		errs.Add("min_version", "%v", err)
	}
	for i, p := range c.ALPN {
		if p == "" || len(p) > 255 {
			errs.Add(cfgerr.Index("alpn", i), "a protocol name is 1 to 255 bytes")
		}
	}
	if c.HandshakeTimeout < 0 {
		errs.Add("handshake_timeout", "must not be negative")
	}
	for i, n := range c.SNIAllow {
		if err := checkNamePattern(n); err != nil {
			errs.Add(cfgerr.Index("sni_allow", i), "%v", err)
		}
	}
	o := &c.Origin
	if _, err := parseVersion(o.MinVersion); err != nil {
		errs.Add("origin.min_version", "%v", err)
	}
	if (o.Cert == "") != (o.Key == "") {
		errs.Add("origin", "give both cert and key for an origin client certificate, or neither")
	}
	if o.CAFile != "" && c.Mode != ModeStrict {
		errs.Add("origin.ca_file", "only used in mode strict (mode is %s)", c.modeOrOff())
	}
	if o.ServerName != "" && strings.ContainsAny(o.ServerName, " /:") {
		errs.Add("origin.server_name", "%q is not a host name", o.ServerName)
	}
	if c.PeekSNI && c.Mode != ModeOff && c.Mode != "" {
		errs.Add("peek_sni", "only used in mode off (mode is %s): a terminating app always logs the SNI", c.Mode)
	}
	if len(c.PassthroughRoutes) > 0 && c.Mode != ModeOff && c.Mode != "" {
		errs.Add("passthrough_routes", "only used in mode off (mode is %s): a terminating app routes to its own origins", c.Mode)
	}
	seen := map[string]int{}
	for i, r := range c.PassthroughRoutes {
		k := cfgerr.Index("passthrough_routes", i)
		if err := checkNamePattern(r.SNI); err != nil {
			errs.Add(cfgerr.Join(k, "sni"), "%v", err)
		} else if j, dup := seen[normName(r.SNI)]; dup {
			errs.Add(cfgerr.Join(k, "sni"), "%q is already routed by passthrough_routes[%d]", r.SNI, j)
		} else {
			seen[normName(r.SNI)] = i
		}
		errs.Merge(cfgerr.Join(k, "origins"), r.Origins.Validate())
	}
	return errs
}

func (c *Config) modeOrOff() string {
	if c.Mode == "" {
		return ModeOff
	}
	return c.Mode
}

// parseVersion maps "1.0".."1.3" to the crypto/tls constant.
func parseVersion(s string) (uint16, error) {
	switch s {
	case "", "1.2":
		return tls.VersionTLS12, nil
	case "1.0":
		return tls.VersionTLS10, nil
	case "1.1":
		return tls.VersionTLS11, nil
	case "1.3":
		return tls.VersionTLS13, nil
	}
	return 0, cfgerr.New("", "unknown TLS version %q (use 1.0, 1.1, 1.2 or 1.3)", s)
}

// checkNamePattern accepts a DNS name or "*." followed by one.
func checkNamePattern(p string) error {
	name := strings.TrimPrefix(p, "*.")
	if name == "" {
		return cfgerr.New("", "empty server name")
	}
	if len(name) > 253 {
		return cfgerr.New("", "server name longer than 253 bytes")
	}
	for _, label := range strings.Split(strings.TrimSuffix(name, "."), ".") {
		if label == "" || len(label) > 63 {
			return cfgerr.New("", "%q is not a DNS name (empty or over-long label)", p)
		}
		for i := 0; i < len(label); i++ {
			b := label[i]
			if !(b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || b == '-' || b == '_') {
				return cfgerr.New("", "%q is not a DNS name (only a leading \"*.\" may be a wildcard)", p)
			}
		}
	}
	return nil
}
