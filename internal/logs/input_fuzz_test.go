package logs

import (
	"bytes"
	"io"
	"testing"

	"github.com/prismproxy/prism/internal/logs/logstest"
	"github.com/prismproxy/prism/internal/render"
)

// FuzzInput: whatever a file holds — ndjson, CSV, gzip, or neither —
// prism logs reads it without a panic and exits 0 or 1 (never a usage
// error): every command's input path (format detection, the CSV row
// reader, the record decoders of each dataset, conversion to every
// target) sees the fuzzer's bytes.
func FuzzInput(f *testing.F) {
	for i, ds := range Datasets {
		for _, out := range []render.Output{render.NDJSON, render.CSV} {
			b, err := logstest.Render(ds, logstest.Sessions(2, uint64(i+1)), render.Options{Output: out})
			if err != nil {
				f.Fatal(err)
			}
			f.Add(uint8(i), b)
		}
	}
	f.Add(uint8(0), []byte("\"a\nb\",\"\"\"\n"))
	f.Add(uint8(1), []byte{0x1f, 0x8b, 8, 0})
	f.Fuzz(func(t *testing.T, which uint8, data []byte) {
		ds := Datasets[int(which)%len(Datasets)]
		to := render.Datasets[int(which/8)%len(render.Datasets)]
		for _, args := range [][]string{
			{"stats", "--from", ds, "-"},
			{"verify", "--dataset", ds, "-"},
			{"convert", "--from", ds, "--to", to, "-"},
		} {
			if code := Main(args, bytes.NewReader(data), io.Discard, io.Discard); code != 0 && code != 1 {
				t.Fatalf("%v: exit %d on %q", args, code, data)
			}
		}
	})
}
