// Package cfgerr is the small error type every configurable package returns
// from its Validate method. A component knows only the keys of its own
// section ("fields[2]", "filter"); the config package prefixes the section's
// path ("log_jobs[1].fields[2]") and adds the file and line, so an operator
// reads one line per problem: file:line: key: reason.
//
// Fold is the one way a list of problems becomes an error, and Prepare the
// one way to default and validate a section built outside the config
// package (a test, a benchmark): constructors take a section the config
// package has already defaulted and validated, and do not check it again.
package cfgerr

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"unicode"
)

// Error is one bad configuration value.
type Error struct {
	Key  string // dotted path with [i] indexes, relative to the section
	Msg  string // plain-language reason
	Line int    // line in the config file, 0 when unknown (set by package config)
}

func (e *Error) Error() string {
	if e.Key == "" {
		return e.Msg
	}
	return e.Key + ": " + e.Msg
}

// New returns an error for key.
func New(key, format string, args ...any) *Error {
	return &Error{Key: key, Msg: fmt.Sprintf(format, args...)}
}

// List collects errors while a section is validated.
type List []*Error

// Add appends an error for key.
func (l *List) Add(key, format string, args ...any) {
	*l = append(*l, New(key, format, args...))
}

// Merge appends errs with prefix joined in front of each key.
func (l *List) Merge(prefix string, errs []*Error) {
	for _, e := range errs {
		*l = append(*l, &Error{Key: Join(prefix, e.Key), Msg: e.Msg})
	}
}

// Join joins two key paths: Join("apps[0]", "tls.mode") is "apps[0].tls.mode";
// Join("listen", "[2]") is "listen[2]".
func Join(prefix, key string) string {
	switch {
	case prefix == "":
		return key
	case key == "":
		return prefix
	case strings.HasPrefix(key, "["):
		return prefix + key
	}
	return prefix + "." + key
}

// Index returns key[i].
func Index(key string, i int) string { return key + "[" + strconv.Itoa(i) + "]" }

// Errors is every problem found in one config file (or in one section
// built by hand, with File empty). Its text is one line per problem:
// "file:line: key: reason", the line and key left out where unknown.
type Errors struct {
	File string
	List []*Error
}

func (e *Errors) Error() string {
	var b strings.Builder
	for i, p := range e.List {
		if i > 0 {
			b.WriteByte('\n')
		}
		if e.File != "" {
			b.WriteString(e.File)
			if p.Line > 0 {
				b.WriteByte(':')
				b.WriteString(strconv.Itoa(p.Line))
			}
			b.WriteString(": ")
		}
		if p.Key != "" {
			b.WriteString(oneLine(p.Key))
			b.WriteString(": ")
		}
		b.WriteString(oneLine(p.Msg))
	}
	return b.String()
}

// Fold turns the problems found in file into one error: nil when there
// are none, else an *Errors with the problems in the order given.
func Fold(file string, errs []*Error) error {
	if len(errs) == 0 {
		return nil
	}
	return &Errors{File: file, List: errs}
}

// SortByLine orders problems by their line in the file, keeping the order
// of problems on the same line or without one.
func SortByLine(errs []*Error) {
	sort.SliceStable(errs, func(i, j int) bool { return errs[i].Line < errs[j].Line })
}

// Section is a configuration section: what a constructor takes.
type Section interface {
	SetDefaults()
	Validate() []*Error
}

// Prepare defaults and validates s in place, as the config package does
// for every section it loads, and folds the problems with Fold. It is for
// sections built by hand: a constructor trusts that its section went
// through the config package or through Prepare.
func Prepare(s Section) error {
	s.SetDefaults()
	return Fold("", s.Validate())
}

// oneLine keeps a problem on its line: a message can quote the file's own
// text (a YAML error quotes a multi-line scalar), so line breaks and other
// control characters are written escaped.
func oneLine(s string) string {
	if strings.IndexFunc(s, unicode.IsControl) < 0 {
		return s
	}
	q := strconv.Quote(s)
	return q[1 : len(q)-1]
}
