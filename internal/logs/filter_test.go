package logs

import (
	"bytes"
	"strings"
	"testing"

	"github.com/prismproxy/prism/internal/logs/logstest"
	"github.com/prismproxy/prism/internal/render"
)

func filter(t *testing.T, o FilterOptions) (string, string, Result, error) {
	t.Helper()
	var out, diag bytes.Buffer
	o.Diag = &diag
	res, err := Filter(o, &out)
	return out.String(), diag.String(), res, err
}

// TestFilterCSVHeaderOnce: filtering several CSV files writes one CSV
// file: the header once (it was written again for each file), and a file
// under another header, or ndjson after CSV, is refused rather than mixed
// in.
func TestFilterCSVHeaderOnce(t *testing.T) {
	evs := logstest.Sessions(40, 2)
	a, _ := logstest.Render(render.Spectrum, evs, render.Options{Output: render.CSV, Fields: []string{"Status", "ClientIP"}})
	b, _ := logstest.Render(render.Spectrum, evs, render.Options{Output: render.CSV, Fields: []string{"ClientIP", "Status"}})
	nd, _ := logstest.Render(render.Spectrum, evs, render.Options{Fields: []string{"Status", "ClientIP"}})
	all := `{"where":{"key":"Status","operator":"geq","value":0}}`
	fa, fa2, fb, fn := writeFile(t, "a.csv", a), writeFile(t, "a2.csv", a), writeFile(t, "b.csv", b), writeFile(t, "n", nd)
	out, diag, res, err := filter(t, FilterOptions{Common: Common{From: render.Spectrum, Files: []string{fa, fa2}}, Filter: all})
	_, rows, _ := bytes.Cut(a, []byte("\n"))
	if want := string(a) + string(rows); err != nil || out != want {
		t.Fatalf("%v %+v %s\n%s", err, res, diag, firstDiff([]byte(want), []byte(out)))
	}
	for _, files := range [][]string{{fa, fb}, {fa, fn}, {fn, fa}} {
		_, diag, _, err := filter(t, FilterOptions{Common: Common{From: render.Spectrum, Files: files}, Filter: all})
		if err == nil || !strings.Contains(err.Error(), files[1]+":") || !strings.Contains(err.Error(), "separately") {
			t.Errorf("%v: %v %s", files, err, diag)
		}
	}
}
