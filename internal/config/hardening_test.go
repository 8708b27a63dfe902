package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const oneApp = "node: {colo: X}\napps:\n  - id: a\n    listen: [\"127.0.0.1:1\"]\n    origins: {addresses: [\"127.0.0.1:2\"]}\n"

// TestRejectsNaNAndInfinity: sample_rate: .nan once passed validation (every
// comparison with NaN is false) and kept about half the sessions.
func TestRejectsNaNAndInfinity(t *testing.T) {
	for _, v := range []string{".nan", ".NaN", ".inf", "-.inf", "+.inf"} {
		y := oneApp + "log_jobs:\n  - name: j\n    dataset: spectrum_events\n    sample_rate: " + v + "\n"
		_, err := Parse("bad.yaml", []byte(y))
		if err == nil || !strings.Contains(err.Error(), "bad.yaml:9: log_jobs[0].sample_rate: must be greater than 0") {
			t.Errorf("sample_rate %s: %v", v, err)
		}
	}
	// A NaN in a filter written as a YAML mapping.
	y := oneApp + "log_jobs:\n  - name: j\n    dataset: spectrum_events\n    filter:\n      where: {key: ClientBytes, operator: gt, value: .nan}\n"
	if _, err := Parse("bad.yaml", []byte(y)); err == nil || !strings.Contains(err.Error(), "bad.yaml:10: filter holds a value JSON cannot carry") {
		t.Errorf("filter value .nan: %v", err)
	}
}

// TestConfigSizeCap: a 50 MB config once took 1.3 GB to validate; anything
// over MaxConfigBytes is refused before it is decoded.
func TestConfigSizeCap(t *testing.T) {
	path := filepath.Join(t.TempDir(), "big.yaml")
	big := oneApp + "# " + strings.Repeat("x", MaxConfigBytes) + "\n"
	if err := os.WriteFile(path, []byte(big), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Load(path)
	if err == nil || !strings.Contains(err.Error(), path+": config is larger than") {
		t.Fatalf("Load of a %d-byte config: %v", len(big), err)
	}
	if _, err := Parse("ok.yaml", []byte(oneApp+"# "+strings.Repeat("x", 1000)+"\n")); err != nil {
		t.Fatalf("a small config: %v", err)
	}
}

// TestAppIDControlCharacters: an app id is written into every record and
// log line, so control characters (a newline forging a log line, an escape
// sequence) are refused.
func TestAppIDControlCharacters(t *testing.T) {
	for _, id := range []string{`"a\nb"`, `"a\tb"`, `"a\u001b[31mb"`, `"a\u007fb"`, `"a\u0085b"`, `"a\u200bb"`} {
		y := strings.Replace(oneApp, "id: a", "id: "+id, 1)
		_, err := Parse("bad.yaml", []byte(y))
		if err == nil || !strings.Contains(err.Error(), "bad.yaml:3: apps[0].id:") {
			t.Errorf("id %s: %v", id, err)
		}
	}
	if _, err := Parse("ok.yaml", []byte(strings.Replace(oneApp, "id: a", "id: web-eu_1.example", 1))); err != nil {
		t.Errorf("a plain id: %v", err)
	}
}

func TestLimitsSection(t *testing.T) {
	y := "max_connections: 100\n" + oneApp + "    limits: {max_connections_per_client: 5, max_connections_per_prefix: 50, new_connections_per_second: 10}\n"
	cfg, err := Parse("ok.yaml", []byte(y))
	if err != nil {
		t.Fatal(err)
	}
	if l := cfg.Apps[0].Limits; cfg.MaxConnections != 100 || l.MaxPerClient != 5 || l.Burst != 10 || l.PrefixV4 != 24 {
		t.Fatalf("limits %+v, max_connections %d", l, cfg.MaxConnections)
	}
	for _, tc := range []struct{ extra, want string }{
		{"    limits: {max_tls_handshakes: 5}\n", "bad.yaml:6: apps[0].limits.max_tls_handshakes: only applies"},
		{"    limits: {prefix_v4: 40}\n", "bad.yaml:6: apps[0].limits.prefix_v4: must be between 1 and 32"},
		{"    limits: {max_connections_per_client: -1}\n", "apps[0].limits.max_connections_per_client: must not be negative"},
	} {
		if _, err := Parse("bad.yaml", []byte(oneApp+tc.extra)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want %q", tc.extra, err, tc.want)
		}
	}
	if _, err := Parse("bad.yaml", []byte("max_connections: -1\n"+oneApp)); err == nil || !strings.Contains(err.Error(), "bad.yaml:1: max_connections: must not be negative") {
		t.Errorf("max_connections -1: %v", err)
	}
}
