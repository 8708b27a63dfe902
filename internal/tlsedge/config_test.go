package tlsedge

import (
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/prismproxy/prism/internal/origin"
)

func TestConfigDecodeAndDefaults(t *testing.T) {
	const doc = `
mode: strict
certificates: [{cert: a.pem, key: a.key}, {cert: b.pem, key: b.key}]
alpn: [h2, http/1.1]
sni_allow: ["a.example", "*.b.example"]
origin: {server_name: origin.example, ca_file: ca.pem}
proxy_protocol_tlvs: true
`
	var c Config
	dec := yaml.NewDecoder(strings.NewReader(doc))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		t.Fatal(err)
	}
	c.SetDefaults()
	if errs := c.Validate(); len(errs) != 0 {
		t.Fatalf("valid config rejected: %v", errs)
	}
	if c.MinVersion != "1.2" || c.HandshakeTimeout != 10*time.Second || c.ReloadInterval != 5*time.Second ||
		c.Origin.MinVersion != "1.2" || len(c.Certificates) != 2 || !c.ProxyProtocolTLVs || c.Origin.CAFile != "ca.pem" {
		t.Errorf("decoded/defaulted %+v", c)
	}
	var empty Config
	empty.SetDefaults()
	if empty.Mode != ModeOff || len(empty.Validate()) != 0 {
		t.Errorf("empty section: mode %q, errors %v", empty.Mode, empty.Validate())
	}
}

func TestConfigValidate(t *testing.T) {
	cert := []CertFile{{"a.pem", "a.key"}}
	tests := []struct {
		name string
		cfg  Config
		want []string // "key: message substring"
	}{
		{"bad mode", Config{Mode: "strictest"}, []string{"mode: unknown mode"}},
		{"terminating without certificate", Config{Mode: ModeFlexible}, []string{"certificates: mode flexible terminates"}},
		{"half a pair", Config{Mode: ModeFull, Certificates: []CertFile{{Cert: "a.pem"}}}, []string{"certificates[0].key: missing"}},
		{"bad version", Config{Mode: ModeFull, Certificates: cert, MinVersion: "1.4"}, []string{"min_version: unknown TLS version"}},
		{"bad origin version", Config{Mode: ModeFull, Certificates: cert, Origin: OriginConfig{MinVersion: "TLS1"}}, []string{"origin.min_version"}},
		{"empty alpn", Config{Mode: ModeFull, Certificates: cert, ALPN: []string{"h2", ""}}, []string{"alpn[1]"}},
		{"negative timeout", Config{Mode: ModeFull, Certificates: cert, HandshakeTimeout: -time.Second}, []string{"handshake_timeout"}},
		{"bad sni pattern", Config{SNIAllow: []string{"a.example", "a.*.example", ""}}, []string{"sni_allow[1]", "sni_allow[2]"}},
		{"ca_file outside strict", Config{Mode: ModeFull, Certificates: cert, Origin: OriginConfig{CAFile: "ca.pem"}}, []string{"origin.ca_file: only used in mode strict"}},
		{"client key without cert", Config{Mode: ModeFull, Certificates: cert, Origin: OriginConfig{Key: "c.key"}}, []string{"origin: give both"}},
		{"routes when terminating", Config{Mode: ModeFlexible, Certificates: cert,
			PassthroughRoutes: []Route{{SNI: "a.example"}}}, []string{"passthrough_routes: only used in mode off", "passthrough_routes[0].origins: give origin"}},
		{"peek_sni when terminating", Config{Mode: ModeFull, Certificates: cert, PeekSNI: true}, []string{"peek_sni: only used in mode off"}},
		{"duplicate route", Config{PassthroughRoutes: []Route{
			{SNI: "a.example", Origins: oneOrigin()}, {SNI: "A.example.", Origins: oneOrigin()}}}, []string{"passthrough_routes[1].sni: \"A.example.\" is already routed"}},
		{"bad route origin", Config{PassthroughRoutes: []Route{{SNI: "a.example", Origins: oneOrigin("nonsense")}}},
			[]string{"passthrough_routes[0].origins.addresses[0]"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			errs := tc.cfg.Validate()
			if len(errs) != len(tc.want) {
				t.Fatalf("got %d errors %v, want %d %v", len(errs), errs, len(tc.want), tc.want)
			}
			for i, w := range tc.want {
				if !strings.Contains(errs[i].Error(), w) {
					t.Errorf("error %d %q does not contain %q", i, errs[i], w)
				}
			}
		})
	}
}

func oneOrigin(addrs ...string) origin.Config {
	if len(addrs) == 0 {
		addrs = []string{"127.0.0.1:443"}
	}
	return origin.Config{Addresses: addrs}
}
