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
	have := exported()
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

// exported is the names of the metrics the collector describes.
func exported() map[string]bool {
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
	return have
}

// The metrics table of docs/admin.md lists every metric prism exports,
// and only those: a new counter is documented with its labels when it is
// added.
func TestAdminDocListsTheExportedMetrics(t *testing.T) {
	b, err := os.ReadFile("../../docs/admin.md")
	if err != nil {
		t.Fatal(err)
	}
	documented := map[string]bool{}
	for _, m := range regexp.MustCompile("(?m)^\\| `(prism_[a-z_]+)` \\|").FindAllStringSubmatch(string(b), -1) {
		documented[m[1]] = true
	}
	have := exported()
	for name := range have {
		if !documented[name] {
			t.Errorf("%s is exported but not in docs/admin.md's metrics table", name)
		}
	}
	for name := range documented {
		if !have[name] {
			t.Errorf("docs/admin.md's metrics table lists %s, which prism does not export", name)
		}
	}
}
