package logs

import (
	"fmt"
	"strings"
)

// VerifyOptions are the options of Verify.
type VerifyOptions struct {
	Common
}

// Verify checks every record of the input against the vendor schema of
// o.From: field names, JSON types, enumerations, Event/Status pairs (and
// for cloudconnexa the keys of each log object). It prints one line per
// problem, "file:line: field: reason", and returns ErrProblems when it
// found any. A file may hold any subset of the schema's fields (a Logpush
// job's field selection), the same subset in every record; the fields it
// leaves out are named once in a note.
func Verify(o VerifyOptions) (Result, error) {
	var res Result
	r, err := newReader(&o.Common, &res)
	if err != nil {
		return res, err
	}
	all := uint64(1)<<uint(len(r.dec.names)) - 1
	var fileFields uint64
	curFile := ""
	notes := map[string]uint64{}
	var files []string
	err = r.walk(true, func(rec *record, probs []problem) error {
		if rec.file != curFile {
			curFile, fileFields = rec.file, rec.dec.fields
			if _, ok := notes[curFile]; !ok {
				files = append(files, curFile)
			}
			notes[curFile] = fileFields
		}
		bad := false
		for _, p := range probs {
			r.report(rec.file, rec.line, p.String())
			bad = true
		}
		if syntaxOnly(probs) {
			// an unreadable record says nothing about the field set
		} else if rec.dec.fields != fileFields {
			var miss, extra []string
			for i, n := range r.dec.names {
				bit := uint64(1) << uint(i)
				switch {
				case fileFields&bit != 0 && rec.dec.fields&bit == 0:
					miss = append(miss, n)
				case fileFields&bit == 0 && rec.dec.fields&bit != 0:
					extra = append(extra, n)
				}
			}
			var parts []string
			if len(miss) > 0 {
				parts = append(parts, "lacks "+strings.Join(miss, ", "))
			}
			if len(extra) > 0 {
				parts = append(parts, "has "+strings.Join(extra, ", "))
			}
			r.report(rec.file, rec.line, "the record "+strings.Join(parts, " and ")+", unlike the first record of the file")
			bad = true
		}
		if bad {
			res.Bad++
			if o.Strict {
				return ErrStrict
			}
		}
		return nil
	})
	for _, f := range files {
		if fs := notes[f]; fs != all && fs != 0 {
			var miss []string
			for i, n := range r.dec.names {
				if fs&(1<<uint(i)) == 0 {
					miss = append(miss, n)
				}
			}
			fmt.Fprintf(o.Diag, "%s: note: the records select %d of the %d %s fields; not present: %s\n",
				f, len(r.dec.names)-len(miss), len(r.dec.names), o.From, strings.Join(miss, ", "))
		}
	}
	if err == nil && res.Bad > 0 {
		err = ErrProblems
	}
	return res, err
}

func syntaxOnly(probs []problem) bool {
	for _, p := range probs {
		if p.field == "" && !p.lenient {
			return true
		}
	}
	return false
}
