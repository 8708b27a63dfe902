package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCannotStart: problems only found when the parts are built (a log
// file that cannot be opened, a GeoIP file that is not an mmdb) once ended in a nil-pointer panic in the daemon's
// cleanup, exit 2, the real error hidden. prism run must say "cannot
// start: <what, where>" and exit 1; prism validate must find the same
// problem first, as file:line: key: reason.
func TestCannotStart(t *testing.T) {
	dir := t.TempDir()
	notDir := filepath.Join(dir, "plain-file")
	notMMDB := filepath.Join(dir, "country.mmdb")
	for p, s := range map[string]string{notDir: "x", notMMDB: "this is not a MaxMind database\n"} {
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	const app = `apps:
  - id: a
    listen: ["127.0.0.1:0"]
    origins: {addresses: ["127.0.0.1:9"]}
`
	for _, tc := range []struct {
		name, yaml string
		runWant    string // in the "cannot start:" line
		key        string // validate's key
	}{
		{"log file under a plain file", "node: {colo: SJC}\n" + app + `log_jobs:
  - name: j
    dataset: spectrum_events
    destination: {type: file, path: ` + filepath.Join(notDir, "x.log") + `}
`, filepath.Join(notDir, "x.log"), "log_jobs[0].destination.path"},
		{"spool directory under a plain file", "node: {colo: SJC}\n" + app + `log_jobs:
  - name: j
    dataset: spectrum_events
    destination: {type: http, url: "http://127.0.0.1:9/"}
    spool: {dir: ` + filepath.Join(notDir, "spool") + `}
`, filepath.Join(notDir, "spool"), "log_jobs[0].spool.dir"},
		{"admin certificate not PEM", "node: {colo: SJC}\nadmin: {listen: \"127.0.0.1:0\", tls: {cert: " + notMMDB + ", key: " + notMMDB + "}}\n" + app,
			"admin tls", "admin.tls"},
		{"log destination CA not PEM", "node: {colo: SJC}\n" + app + `log_jobs:
  - name: j
    dataset: spectrum_events
    destination: {type: http, url: "https://127.0.0.1:9/", tls: {ca_file: ` + notMMDB + `}}
`, "no PEM certificates", "log_jobs[0].destination.tls"},
		{"geoip file not an mmdb", "node: {colo: SJC}\ngeoip: {country_db: " + notMMDB + "}\n" + app,
			notMMDB, "geoip.country_db"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "prism.yaml")
			if err := os.WriteFile(path, []byte(tc.yaml), 0o644); err != nil {
				t.Fatal(err)
			}
			code, _, stderr := runPrism(t, "run", "-config", path)
			if code != 1 || strings.Contains(stderr, "panic") || !strings.Contains(stderr, "cannot start: ") || !strings.Contains(stderr, tc.runWant) {
				t.Errorf("run: exit %d, want 1 and \"cannot start: ...%s...\"; stderr:\n%s", code, tc.runWant, stderr)
			}
			code, stdout, stderr := runPrism(t, "validate", "-config", path)
			if code != 1 {
				t.Fatalf("validate: exit %d, want 1\nstdout %s\nstderr %s", code, stdout, stderr)
			}
			found := false
			for _, l := range strings.Split(strings.TrimSpace(stderr), "\n") {
				m := problemLine.FindStringSubmatch(l)
				if m == nil {
					t.Errorf("validate line %q is not FILE:LINE: KEY: REASON", l)
				} else if m[3] == tc.key+":" || strings.HasPrefix(m[3], tc.key) {
					found = true
				}
			}
			if !found {
				t.Errorf("validate did not name %s:\n%s", tc.key, stderr)
			}
		})
	}
}

// TestValidateWarnsOnCertificates: a certificate that does not load is a
// warning (a running prism keeps retrying it), with its key and line.
func TestValidateWarnsOnCertificates(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "prism.yaml")
	y := `node: {colo: SJC}
apps:
  - id: a
    listen: ["127.0.0.1:0"]
    origins: {addresses: ["127.0.0.1:9"]}
    tls:
      mode: flexible
      certificates: [{cert: ` + filepath.Join(dir, "missing.pem") + `, key: ` + filepath.Join(dir, "missing.key") + `}]
`
	if err := os.WriteFile(path, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := runPrism(t, "validate", "-config", path)
	if code != 0 || !strings.Contains(stderr, path+":6: apps[0].tls: warning: ") || !strings.Contains(stderr, "missing.pem") {
		t.Fatalf("validate: exit %d, want 0 and a warning on line 6\nstdout %s\nstderr %s", code, stdout, stderr)
	}
}
