package render

import (
	"testing"
)

// BenchmarkRender measures one record per op; records/s is 1e9/ns-per-op.
func BenchmarkRender(b *testing.B) {
	e := fullEvent()
	for _, bc := range []struct {
		name string
		ds   string
		opt  Options
	}{
		{"spectrum/ndjson/unixnano", Spectrum, Options{}},
		{"spectrum/ndjson/rfc3339", Spectrum, Options{TimestampFormat: RFC3339}},
		{"spectrum/csv", Spectrum, Options{Output: CSV}},
		{"edgeone/ndjson", EdgeOne, Options{}},
		{"edgeone/csv", EdgeOne, Options{Output: CSV}},
		{"cloudconnexa/ndjson", CloudConnexa, Options{}},
		{"ocsf/ndjson", OCSF, Options{}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			enc, err := NewEncoder(bc.ds, testNode, bc.opt)
			if err != nil {
				b.Fatal(err)
			}
			buf := make([]byte, 0, 4096)
			b.ReportAllocs()
			for b.Loop() {
				buf = enc.Append(buf[:0], &e)
			}
			b.SetBytes(int64(len(buf)))
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
		})
	}
}
