package logjob

import (
	"testing"

	"github.com/prismproxy/prism/internal/event"
	"github.com/prismproxy/prism/internal/render"
)

// FuzzCompileFilter: any filter text from an operator either fails with an
// error or compiles to a filter that evaluates against a record of every
// dataset without panicking.
func FuzzCompileFilter(f *testing.F) {
	for _, s := range []string{
		`{"where":{"key":"ClientCountry","operator":"eq","value":"gb"}}`,
		`{"where":{"and":[{"key":"Status","operator":"geq","value":400},{"or":[{"key":"ClientIP","operator":"startsWith","value":"10."}]}]}}`,
		`{"where":{"key":"Status","operator":"in","value":[200,499]}}`,
		`{"where":{"key":"eventName","operator":"!contains","value":"flow"}}`,
		`{"where":{"key":"Status","operator":"eq","value":1e400}}`,
		`{"where":{"and":[]}}`, `[]`, `{"where":`, `{"where":{"key":"Status","operator":"eq","value":-9223372036854775809}}`,
	} {
		f.Add(s)
	}
	e := event.New("app", event.ID{})
	e.Type, e.Status = event.Disconnect, 200
	f.Fuzz(func(t *testing.T, spec string) {
		for _, ds := range []string{render.Spectrum, render.EdgeOne, render.CloudConnexa} {
			enc, err := render.NewEncoder(ds, render.Node{Colo: "SJC"}, render.Options{})
			if err != nil {
				t.Fatal(err)
			}
			flt, err := CompileFilter(spec, enc)
			if err != nil || flt == nil {
				continue
			}
			enc.Bind(&e)
			_ = flt.Match(enc)
		}
	})
}
