package main

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prismproxy/prism/internal/logs/logstest"
	"github.com/prismproxy/prism/internal/render"
)

// TestLogsCommands runs `prism logs` end to end: a gzip file and stdin,
// -o, the exit statuses, and the OCSF product version from the binary.
func TestLogsCommands(t *testing.T) {
	dir := t.TempDir()
	data, err := logstest.Render(render.Spectrum, logstest.Sessions(50, 9), render.Options{})
	if err != nil {
		t.Fatal(err)
	}
	n := bytes.Count(data, []byte("\n"))
	var z bytes.Buffer
	zw := gzip.NewWriter(&z)
	_, _ = zw.Write(data)
	_ = zw.Close()
	gzFile := filepath.Join(dir, "spectrum.ndjson.gz")
	if err := os.WriteFile(gzFile, z.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}

	out := filepath.Join(dir, "out.ndjson")
	code, _, stderr := runPrism(t, "logs", "convert", "--from", "spectrum_events", "--to", "ocsf", "-o", out, gzFile)
	b, _ := os.ReadFile(out)
	if code != 0 || bytes.Count(b, []byte("\n")) != n || !bytes.Contains(b, []byte(`"product":{"name":"prism","vendor_name":"prism","version":"`)) {
		t.Fatalf("convert: exit %d, %d lines (want %d), stderr %q", code, bytes.Count(b, []byte("\n")), n, stderr)
	}
	if st, err := os.Stat(out); err != nil || st.Mode().Perm()&0o007 != 0 {
		t.Errorf("convert -o made %v (%v): records must not be world-readable", st.Mode(), err)
	}
	if !strings.Contains(stderr, "cannot provide") {
		t.Errorf("convert did not say what spectrum_events cannot provide: %q", stderr)
	}

	// identity from stdin
	cmd := exec.Command(prismBin, "logs", "convert", "--from", "spectrum_events", "--to", "spectrum_events", "-")
	cmd.Stdin = bytes.NewReader(data)
	got, err := cmd.Output()
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("identity through stdin: %v, equal %v", err, bytes.Equal(got, data))
	}

	code, stdout, _ := runPrism(t, "logs", "stats", "--from", "spectrum_events", "--json", gzFile)
	var rep struct {
		Records  int `json:"records"`
		Sessions int `json:"sessions"`
	}
	if code != 0 || json.Unmarshal([]byte(stdout), &rep) != nil || rep.Records != n || rep.Sessions != 50 {
		t.Errorf("stats: exit %d, %+v from %q", code, rep, stdout)
	}

	bad := filepath.Join(dir, "bad.ndjson")
	lines := strings.SplitAfter(string(data), "\n")
	lines[1] = `{"Event":"connect",` + "\n"
	if err := os.WriteFile(bad, []byte(strings.Join(lines, "")), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, stderr = runPrism(t, "logs", "verify", "--dataset", "spectrum_events", bad)
	if code != 1 || !strings.Contains(stderr, bad+":2: malformed JSON") {
		t.Errorf("verify: exit %d, stderr %q", code, stderr)
	}
	code, _, stderr = runPrism(t, "logs", "filter", "--from", "edgeone_l4", "--filter", `{"where":{"key":"Nope","operator":"eq","value":1}}`, gzFile)
	if code != 2 || !strings.Contains(stderr, `where.key: unknown field "Nope" for dataset edgeone_l4`) {
		t.Errorf("bad filter: exit %d, stderr %q", code, stderr)
	}
}
