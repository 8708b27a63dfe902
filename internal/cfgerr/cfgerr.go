// Package cfgerr is the small error type every configurable package returns
// from its Validate method. A component knows only the keys of its own
// section ("fields[2]", "filter"); the config package prefixes the section's
// path ("log_jobs[1].fields[2]") and adds the file and line, so an operator
// reads one line per problem: file:line: key: reason.
package cfgerr

import (
	"fmt"
	"strconv"
	"strings"
)

// Error is one bad configuration value.
type Error struct {
	Key string // dotted path with [i] indexes, relative to the section
	Msg string // plain-language reason
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
