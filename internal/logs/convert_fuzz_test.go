package logs

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/prismproxy/prism/internal/logs/logstest"
	"github.com/prismproxy/prism/internal/render"
)

// FuzzConvert feeds arbitrary bytes (ndjson, CSV, gzip or not) to every
// reader and converts them to OCSF and back to the source dataset: it
// never panics, a run with bad records says so (ErrProblems), and every
// bad record is one reported FILE:LINE line on stderr.
func FuzzConvert(f *testing.F) {
	for i, ds := range Datasets {
		in, _ := logstest.Render(ds, logstest.Sessions(1, 2), render.Options{})
		f.Add(uint8(i), in)
		f.Add(uint8(i), in[:len(in)/2])
		f.Add(uint8(i), gz(in))
		csv, _ := logstest.Render(ds, logstest.Sessions(1, 1), render.Options{Output: render.CSV})
		f.Add(uint8(i), csv)
	}
	f.Add(uint8(0), []byte("{\"Event\":1}\nnot json\n\n{}"))
	f.Fuzz(func(t *testing.T, which uint8, data []byte) {
		ds := Datasets[int(which)%len(Datasets)]
		for _, to := range []string{render.OCSF, ds} {
			var out, diag bytes.Buffer
			res, err := Convert(ConvertOptions{Common: Common{From: ds, Stdin: bytes.NewReader(data), Diag: &diag}, To: to}, &out)
			if err != nil && !errors.Is(err, ErrProblems) {
				t.Fatalf("%s -> %s: %v", ds, to, err)
			}
			if (res.Bad > 0) != errors.Is(err, ErrProblems) {
				t.Fatalf("%s -> %s: %d bad records, err %v", ds, to, res.Bad, err)
			}
			reported := 0
			for _, l := range strings.Split(diag.String(), "\n") {
				if strings.HasPrefix(l, "(stdin):") || strings.HasPrefix(l, "-: cannot read: (stdin)") {
					reported++
				}
			}
			if reported < res.Bad {
				t.Fatalf("%s -> %s: %d bad records, %d reported:\n%s", ds, to, res.Bad, reported, diag.String())
			}
		}
	})
}

// TestUnknownFieldFirst: an unknown field before known ones (a vendor
// export with a field this version does not know) is reported, and the
// record's known fields still read (a panic before: the key cache was
// indexed past its end).
func TestUnknownFieldFirst(t *testing.T) {
	for _, ds := range Datasets {
		in, _ := logstest.Render(ds, logstest.Sessions(2, 1), render.Options{})
		lines := bytes.SplitAfter(in, []byte("\n"))
		bad := append([]byte(`{"Bogus":1,`), lines[0][1:]...)
		data := append(append(bad, lines[1]...), bad...)
		var out, diag bytes.Buffer
		res, err := Convert(ConvertOptions{Common: Common{From: ds, Stdin: bytes.NewReader(data), Diag: &diag}, To: ds}, &out)
		if !errors.Is(err, ErrProblems) || res.Bad != 2 || res.Records != 3 ||
			strings.Count(diag.String(), "Bogus: unknown field for dataset "+ds) != 2 {
			t.Errorf("%s: %+v %v\n%s", ds, res, err, diag.String())
		}
	}
}
