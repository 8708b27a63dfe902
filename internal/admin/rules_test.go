package admin

import (
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/prismproxy/prism/internal/testpeer"
)

// The example Prometheus config and alert rules (docs/admin.md) are valid
// for promtool and name only metrics prism exports.
func TestExamplePrometheusRules(t *testing.T) {
	const rules, conf = "../../examples/prometheus/prism-alerts.yml", "../../examples/prometheus/prometheus.yml"
	b, err := os.ReadFile(rules)
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan *prometheus.Desc, 100)
	(&collector{}).Describe(ch)
	close(ch)
	have := map[string]bool{}
	fq := regexp.MustCompile(`fqName: "([^"]+)"`)
	for d := range ch {
		if m := fq.FindStringSubmatch(d.String()); m != nil {
			have[m[1]] = true
		}
	}
	for _, name := range regexp.MustCompile(`prism_[a-z_]+`).FindAllString(string(b), -1) {
		base := strings.TrimSuffix(name, "_bucket")
		if !have[name] && !have[base] {
			t.Errorf("%s names %s, which prism does not export", rules, name)
		}
	}
	bin := testpeer.Need(t, "promtool")
	for _, args := range [][]string{{"check", "rules", rules}, {"check", "config", conf}} {
		if out, err := testpeer.Run(t, 30*time.Second, bin, args...); err != nil {
			t.Errorf("promtool %v: %v\n%s", args, err, out)
		}
	}
}
