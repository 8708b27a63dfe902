package firewall_test

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prismproxy/prism/internal/event"
	"github.com/prismproxy/prism/internal/firewall"
	"github.com/prismproxy/prism/internal/geo/geotest"
)

// TestNonASCIICountry: "ı" and "ſ" are two bytes whose upper case is one
// ASCII letter. They once panicked the country parser, in validate and in a
// running firewall re-reading its list. Both must be plain errors, and a
// reload must keep the old entries.
func TestNonASCIICountry(t *testing.T) {
	for _, cc := range []string{"ı", "ſ", "ıı", "ſe", "sſ"} {
		errs := (firewall.Config{Rules: []firewall.Rule{{Action: "block", Country: cc}}}).Validate()
		if len(errs) == 0 || !strings.Contains(errs[0].Msg, "country") {
			t.Errorf("rule country %q: Validate = %v, want a country error", cc, errs)
		}
	}
	dir := t.TempDir()
	list := filepath.Join(dir, "list.txt")
	writeFile(t, list, "127.4.0.0/16\n")
	f := newFW(t, firewall.Config{
		Lists:          []firewall.List{{Action: "block", Path: list}},
		ReloadInterval: time.Hour,
	}, fixtureDB(t, geotest.Options{}))
	for _, bad := range []string{"ı\n", "127.5.0.0/16\nſ\n"} {
		writeFile(t, list, bad)
		if err := f.Reload(true); err == nil || !strings.Contains(err.Error(), "list.txt:") {
			t.Fatalf("Reload of %q: %v, want a file:line error", bad, err)
		}
		check(t, f, "127.4.0.1", want{event.FirewallBlockIP, true, "", 0})
	}
}
