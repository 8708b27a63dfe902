package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prismproxy/prism/internal/testpeer"
)

// prism status against a running prism, reading the admin address and the
// token from the same config file; a wrong token is refused.
func TestStatusReadsTheAdminAPI(t *testing.T) {
	origin := testpeer.Echo(t)
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "admin.token")
	const token = "status-test-token-0123456789"
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	listen := "127.0.0.1:" + strconv.Itoa(testpeer.FreePort(t))
	adminAddr := "127.0.0.1:" + strconv.Itoa(testpeer.FreePort(t))
	cfg := fmt.Sprintf(`node: {colo: TST, id: test-1}
admin: {listen: %q, token_file: %q}
apps:
  - id: app
    listen: [%q]
    origins: {addresses: [%q]}
log_jobs:
  - name: spectrum
    dataset: spectrum_events
    destination: {type: file, path: %q}
`, adminAddr, tokenFile, listen, origin, filepath.Join(dir, "spectrum.log"))
	path := filepath.Join(dir, "prism.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	d := startDaemon(t, path, "prism started", "SIGHUP: log files reopened")
	c := echoOnce(t, listen, "hello\n")

	code, out, stderr := runPrism(t, "status", "-config", path)
	if code != 0 {
		t.Fatalf("status: exit %d\n%s", code, stderr)
	}
	for _, want := range []string{"prism ", "ready", "app ", listen, origin + " (1 open)", "spectrum_events", "live sessions: 1", c.LocalAddr().String()} {
		if !strings.Contains(out, want) {
			t.Errorf("status output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out+stderr, token) {
		t.Error("status printed the token")
	}

	// -c is short for -config and $PRISM_CONFIG names the file, as for
	// the other commands; -admin alone does not read $PRISM_CONFIG's file
	// (here one without an admin listener).
	if code, out, stderr := runPrism(t, "status", "-c", path); code != 0 || !strings.Contains(out, "live sessions: 1") {
		t.Errorf("status -c: exit %d\n%s%s", code, out, stderr)
	}
	t.Setenv("PRISM_CONFIG", path)
	if code, out, stderr := runPrism(t, "status"); code != 0 || !strings.Contains(out, "live sessions: 1") {
		t.Errorf("status with $PRISM_CONFIG: exit %d\n%s%s", code, out, stderr)
	}
	noAdmin := filepath.Join(dir, "no-admin.yaml")
	if err := os.WriteFile(noAdmin, []byte("node: {colo: TST}\napps:\n  - id: x\n    listen: [\"127.0.0.1:1\"]\n    origins: {addresses: [\"127.0.0.1:2\"]}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PRISM_CONFIG", noAdmin)
	if code, out, stderr := runPrism(t, "status", "-admin", adminAddr, "-token", token); code != 0 || !strings.Contains(out, "live sessions: 1") {
		t.Errorf("status -admin with an unrelated $PRISM_CONFIG: exit %d\n%s%s", code, out, stderr)
	}
	if code, _, stderr := runPrism(t, "status"); code != 1 || !strings.Contains(stderr, "no admin listener") {
		t.Errorf("status with $PRISM_CONFIG naming a file without an admin listener: exit %d, stderr %q", code, stderr)
	}
	t.Setenv("PRISM_CONFIG", "")

	code, _, stderr = runPrism(t, "status", "-admin", adminAddr, "-token", "not-the-token")
	if code != 1 || !strings.Contains(stderr, "401") {
		t.Fatalf("wrong token: exit %d, stderr %q", code, stderr)
	}

	// SIGHUP's reload is counted in /metrics.
	d.signal(t, syscall.SIGHUP)
	d.wait(t, "SIGHUP: log files reopened")
	req, _ := http.NewRequest(http.MethodGet, "http://"+adminAddr+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `prism_config_reload_total{result="success"} 1`) ||
		!strings.Contains(string(body), `prism_admin_unauthorized_requests_total 1`) {
		t.Errorf("metrics after one reload and one refused request:\n%s", body)
	}
}
