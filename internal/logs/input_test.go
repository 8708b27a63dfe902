package logs

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/prismproxy/prism/internal/logs/logstest"
	"github.com/prismproxy/prism/internal/render"
)

// TestCSVBadRowContinues: a malformed CSV row (text after a closing quote,
// a quote inside an unquoted cell, also in a cell spanning lines) is one
// bad record: it is reported at its line and counted as read, and the rows
// after it are read (the first one ended the file). An unterminated quote
// at the end of the file is the last record, bad.
func TestCSVBadRowContinues(t *testing.T) {
	in, err := logstest.Render(render.Spectrum, noUnix(logstest.Sessions(30, 5)), render.Options{Output: render.CSV})
	if err != nil {
		t.Fatal(err)
	}
	rows := bytes.SplitAfter(in, []byte("\n"))
	rows = rows[:len(rows)-1] // the empty string after the last "\n"
	bad := []string{"app,1,\"x\"y,gb\n", "app,1,x\"y,gb\n", "\"two\nlines\"z,1\n"}
	var data []byte
	var wantLines []int
	line := 0
	for i, r := range rows {
		data = append(data, r...)
		line++
		if i > 0 && i%10 == 0 && len(bad) > 0 {
			data = append(data, bad[0]...)
			wantLines = append(wantLines, line+1)
			line += bytes.Count([]byte(bad[0]), []byte("\n"))
			bad = bad[1:]
		}
	}
	if len(bad) > 0 {
		t.Fatal("corpus too short")
	}
	file := writeFile(t, "bad.csv", data)
	out, diag, res, err := convert(t, ConvertOptions{Common: Common{From: render.Spectrum, Files: []string{file}}, To: render.Spectrum})
	if !errors.Is(err, ErrProblems) || !bytes.Equal(out, in) {
		t.Fatalf("%v %s\n%s", err, diag, firstDiff(in, out))
	}
	if res.Bad != 3 || res.Records != len(rows)-1+3 || res.Written != len(rows)-1 {
		t.Errorf("counts %+v, want %d read, %d written, 3 bad", res, len(rows)-1+3, len(rows)-1)
	}
	if got := reportedLines(diag, file); fmt.Sprint(got) != fmt.Sprint(wantLines) {
		t.Errorf("reported at lines %v, want %v: %s", got, wantLines, diag)
	}

	// an unterminated quoted cell at the end: the last record, bad
	trunc := append(append([]byte{}, in...), "app,\"no end\n"...)
	tf := writeFile(t, "trunc.csv", trunc)
	out, diag, res, err = convert(t, ConvertOptions{Common: Common{From: render.Spectrum, Files: []string{tf}}, To: render.Spectrum})
	if !errors.Is(err, ErrProblems) || !bytes.Equal(out, in) || res.Bad != 1 || res.Records != len(rows) ||
		fmt.Sprint(reportedLines(diag, tf)) != fmt.Sprint([]int{len(rows) + 1}) {
		t.Errorf("unterminated: %v %+v %s", err, res, diag)
	}
}

// TestCSVQuotedCRLF: a CRLF inside a quoted cell is the cell's text and is
// kept (it was read as LF), in the decoded value and in the row filter
// writes; the CRLF that ends a row is still a row ending.
func TestCSVQuotedCRLF(t *testing.T) {
	data := []byte("Application,Status\r\n\"a\r\nb\",200\r\nplain,200\r\n\"c\nd\",200\r\n")
	file := writeFile(t, "crlf.csv", data)
	nd := render.NDJSON
	out, diag, res, err := convert(t, ConvertOptions{Common: Common{From: render.Spectrum, Files: []string{file}}, To: render.Spectrum,
		Fields: []string{"Application"}, Output: &nd})
	want := "{\"Application\":\"a\\r\\nb\"}\n{\"Application\":\"plain\"}\n{\"Application\":\"c\\nd\"}\n"
	if err != nil || res.Bad != 0 || string(out) != want {
		t.Fatalf("%v %+v %s\n%q, want %q", err, res, diag, out, want)
	}
	var f bytes.Buffer
	if _, err := Filter(FilterOptions{Common: Common{From: render.Spectrum, Files: []string{file}},
		Filter: `{"where":{"key":"Status","operator":"eq","value":200}}`}, &f); err != nil {
		t.Fatal(err)
	}
	if want := "Application,Status\n\"a\r\nb\",200\nplain,200\n\"c\nd\",200\n"; f.String() != want {
		t.Errorf("filter: %q, want %q", f.String(), want)
	}
}

// TestBOM: a file that starts with a UTF-8 BOM, ndjson or CSV (its header
// quoted or not), gzip or not, reads from its first record: the BOM was
// passed on to the first ndjson line, which was then reported and lost.
func TestBOM(t *testing.T) {
	bom := []byte("\xef\xbb\xbf")
	nd := corpus(t, render.EdgeOne, render.Options{})
	csv := corpus(t, render.EdgeOne, render.Options{Output: render.CSV})
	quoted := append([]byte(`"ClientRealIP",`), bytes.TrimPrefix(csv, []byte("ClientRealIP,"))...)
	for name, in := range map[string][]byte{"ndjson": nd, "csv": csv, "quoted header": quoted} {
		for _, z := range []bool{false, true} {
			data := append(append([]byte{}, bom...), in...)
			if z {
				data = gz(data)
			}
			out, diag, res, err := convert(t, ConvertOptions{Common: Common{From: render.EdgeOne, Files: []string{writeFile(t, "bom", data)}}, To: render.EdgeOne})
			want := in
			if name == "quoted header" {
				want = csv
			}
			if err != nil || res.Bad != 0 || !bytes.Equal(out, want) {
				t.Fatalf("%s gzip %v: %v %+v %s\n%s", name, z, err, res, diag, firstDiff(want, out))
			}
		}
	}
}
