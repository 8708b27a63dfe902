package cfgerr

import (
	"errors"
	"fmt"
	"testing"
)

func TestFold(t *testing.T) {
	if err := Fold("prism.yaml", nil); err != nil {
		t.Fatalf("Fold of no problems = %v, want nil", err)
	}
	err := Fold("prism.yaml", []*Error{
		{Key: "apps[1].listen", Msg: "missing", Line: 9},
		{Msg: "config is too large"},
		{Key: "node.colo", Msg: "bad\nvalue", Line: 2},
		{Key: "apps[1].id", Msg: "duplicate", Line: 9},
	})
	want := "prism.yaml:9: apps[1].listen: missing\n" +
		"prism.yaml: config is too large\n" +
		"prism.yaml:2: node.colo: bad\\nvalue\n" +
		"prism.yaml:9: apps[1].id: duplicate"
	if err == nil || err.Error() != want {
		t.Fatalf("Fold =\n%v\nwant\n%s", err, want)
	}
	var es *Errors
	if !errors.As(err, &es) || es.File != "prism.yaml" || len(es.List) != 4 {
		t.Fatalf("Fold returned %#v, want *Errors with the file and 4 problems", err)
	}
	if got := Fold("", []*Error{{Key: "mode", Msg: "unknown"}, {Msg: "no key"}}).Error(); got != "mode: unknown\nno key" {
		t.Errorf("Fold without a file = %q", got)
	}
}

func TestSortByLine(t *testing.T) {
	errs := []*Error{{Key: "c", Line: 3}, {Key: "none"}, {Key: "a1", Line: 1}, {Key: "a2", Line: 1}}
	SortByLine(errs)
	var got []string
	for _, e := range errs {
		got = append(got, e.Key)
	}
	if fmt.Sprint(got) != "[none a1 a2 c]" {
		t.Errorf("SortByLine: %v, want [none a1 a2 c]", got)
	}
}

type section struct {
	N       int
	Default bool
}

func (s *section) SetDefaults() {
	if s.N == 0 {
		s.N = 3
		s.Default = true
	}
}

func (s section) Validate() []*Error {
	var l List
	if s.N < 0 {
		l.Add("n", "must not be negative")
	}
	return l
}

func TestPrepare(t *testing.T) {
	var s section
	if err := Prepare(&s); err != nil || s.N != 3 || !s.Default {
		t.Fatalf("Prepare(zero) = %v, section %+v; want defaults applied and no error", err, s)
	}
	bad := section{N: -1}
	if err := Prepare(&bad); err == nil || err.Error() != "n: must not be negative" {
		t.Fatalf("Prepare(bad) = %v", err)
	}
}
