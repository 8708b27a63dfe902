package logs

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/prismproxy/prism/internal/logs/logstest"
	"github.com/prismproxy/prism/internal/render"
)

func benchFile(b *testing.B, ds string) (string, int) {
	b.Helper()
	data, err := logstest.Render(ds, logstest.Sessions(20000, 1), render.Options{})
	if err != nil {
		b.Fatal(err)
	}
	p := filepath.Join(b.TempDir(), "in")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		b.Fatal(err)
	}
	return p, bytes.Count(data, []byte("\n"))
}

func BenchmarkFilterSpectrum(b *testing.B) {
	file, n := benchFile(b, render.Spectrum)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		_, err := Filter(FilterOptions{Common: Common{From: render.Spectrum, Files: []string{file}},
			Filter: `{"where":{"key":"Status","operator":"geq","value":400}}`}, io.Discard)
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "records/s")
}

func BenchmarkConvertSpectrumToEdgeOne(b *testing.B) {
	file, n := benchFile(b, render.Spectrum)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, err := Convert(ConvertOptions{Common: Common{From: render.Spectrum, Files: []string{file}}, To: render.EdgeOne}, io.Discard); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "records/s")
}

func BenchmarkConvertSpectrumToOCSF(b *testing.B) {
	file, n := benchFile(b, render.Spectrum)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, err := Convert(ConvertOptions{Common: Common{From: render.Spectrum, Files: []string{file}}, To: render.OCSF}, io.Discard); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "records/s")
}
