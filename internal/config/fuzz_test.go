package config

import (
	"errors"
	"strings"
	"testing"
)

// FuzzParse: any config text either parses or fails with an *Error whose
// every line is "file[:line]: [key: ]reason"; nothing panics (the firewall
// country crasher was found through a mutated config).
func FuzzParse(f *testing.F) {
	f.Add([]byte(good))
	f.Add([]byte(oneApp))
	f.Add([]byte(oneApp + "    ip_firewall: {rules: [{action: block, country: ı}]}\n"))
	f.Add([]byte(oneApp + "log_jobs:\n  - name: j\n    dataset: spectrum_events\n    sample_rate: .nan\n"))
	f.Add([]byte(oneApp + "    limits: {max_connections_per_client: 2, new_connections_per_second: 5}\n"))
	f.Add([]byte("node: [\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse("fuzz.yaml", data)
		if err == nil {
			if cfg == nil || len(cfg.Apps) == 0 {
				t.Fatal("a config without apps validated")
			}
			return
		}
		var ce *Error
		if !errors.As(err, &ce) {
			t.Fatalf("error of type %T: %v", err, err)
		}
		for _, l := range strings.Split(err.Error(), "\n") {
			if !strings.HasPrefix(l, "fuzz.yaml") {
				t.Fatalf("line %q does not name the file", l)
			}
		}
	})
}
