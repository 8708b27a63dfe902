// Package logs works with existing vendor log files: Logpush exports of
// Cloudflare Spectrum spectrum_events, Tencent EdgeOne L4 proxy logs and
// OpenVPN CloudConnexa streams, and the files prism itself writes. It backs
// `prism logs convert|filter|stats|verify`.
//
// Every record is read back into the canonical event (internal/event) and,
// where a record is written, rendered with the same renderers as the live
// proxy (internal/render); filters are the log jobs' Logpush filters
// (internal/logjob). So one mapping serves the proxy and the toolkit, and
// converting a dataset to itself gives back the record field for field.
//
// Input is ndjson or CSV (told apart by the first byte), gzip or not (told
// by its magic), from files or stdin ("-"). A record that cannot be read
// (malformed JSON, a wrong type, an unknown field, a truncated gzip stream)
// is reported as "file:line: reason" and counted, never skipped silently;
// with Strict the command stops at the first one.
package logs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/prismproxy/prism/internal/render"
)

// Common are the options every command shares.
type Common struct {
	// From is the dataset of the input files.
	From string
	// Files to read; "-" or none is stdin.
	Files []string
	// Strict stops at the first bad record.
	Strict bool
	Stdin  io.Reader
	// Diag receives problems and notes (stderr).
	Diag io.Writer
}

// Result counts what a command read.
type Result struct {
	Records  int // records read
	Bad      int // records reported and not used
	Written  int // records written (convert, filter)
	Problems int // problem lines printed (verify: every problem)
}

// ErrStrict is returned when Strict stopped the run at a bad record.
var ErrStrict = errors.New("stopped at the first bad record (--strict)")

// ErrProblems is returned when records were bad; the command's exit
// status is 1.
var ErrProblems = errors.New("bad records")

// record is one record as the commands see it.
type record struct {
	file string
	line int
	raw  []byte // the ndjson line, or the CSV row's text
	csv  bool
	dec  *Decoded
	// header is the CSV header of the file (nil for ndjson), headerRaw
	// its text.
	header    [][]byte
	headerRaw []byte
}

// reader walks the input files and decodes each record.
type reader struct {
	c     *Common
	dec   *decoder
	out   Decoded
	res   *Result
	diagN int
}

// report prints one problem line.
func (r *reader) report(file string, line int, msg string) {
	if line > 0 {
		fmt.Fprintf(r.c.Diag, "%s:%d: %s\n", file, line, msg)
	} else {
		fmt.Fprintf(r.c.Diag, "%s: %s\n", file, msg)
	}
	r.res.Problems++
}

// walk calls fn for every record that decodes without a hard problem.
// Records with hard problems are reported and counted as bad. With verify
// set, fn also sees bad records (and reports problems itself).
func (r *reader) walk(verify bool, fn func(rec *record, probs []problem) error) error {
	files := r.c.Files
	if len(files) == 0 {
		files = []string{"-"}
	}
	for _, name := range files {
		if err := r.walkFile(name, verify, fn); err != nil {
			return err
		}
	}
	return nil
}

func (r *reader) bad(file string, line int, msg string) error {
	r.res.Bad++
	r.report(file, line, msg)
	if r.c.Strict {
		return ErrStrict
	}
	return nil
}

func (r *reader) walkFile(name string, verify bool, fn func(rec *record, probs []problem) error) error {
	in, err := openInput(name, r.c.Stdin)
	if err != nil {
		if err := r.bad(name, 0, fmt.Sprintf("cannot read: %v", err)); err != nil {
			return err
		}
		return nil
	}
	defer in.close()
	in.detect()
	rec := record{file: in.name, dec: &r.out}
	if in.csv {
		if err := in.readCSVHeader(); err != nil {
			if err == io.EOF {
				return nil
			}
			return r.bad(in.name, in.line, err.Error())
		}
		if err := r.dec.setCSVHeader(in.header); err != nil {
			if next, _ := in.br.Peek(1); len(next) == 1 && next[0] == '{' {
				// not a CSV file: an ndjson file whose first line is bad
				r.res.Records++
				if err := r.bad(in.name, in.line, "not a JSON object (and not a CSV header: "+err.Error()+")"); err != nil {
					return err
				}
				in.csv = false
			} else {
				return r.bad(in.name, in.line, err.Error())
			}
		} else {
			rec.csv, rec.header, rec.headerRaw = true, in.header, in.headerRaw
		}
	}
	for {
		var line []byte
		var cells [][]byte
		var rerr error
		start := 0
		if in.csv {
			cells, start, rerr = in.readCSVRow()
			if re, ok := rerr.(*rowError); ok {
				// a malformed row is a record read and bad; the next
				// row is read (a truncated last row ends the file anyway)
				r.res.Records++
				if err := r.bad(in.name, start, re.msg); err != nil || re.last {
					return err
				}
				continue
			}
			if cells == nil && rerr != nil {
				if rerr == io.EOF {
					return nil
				}
				return r.bad(in.name, in.line, rerr.Error())
			}
		} else {
			line, rerr = in.readLine()
			if line == nil && rerr != nil {
				if rerr == io.EOF {
					return nil
				}
				return r.bad(in.name, in.line+1, rerr.Error())
			}
			start = in.line
			if len(bytes.TrimSpace(line)) == 0 {
				if rerr != nil {
					return r.bad(in.name, in.line, rerr.Error())
				}
				continue
			}
		}
		r.res.Records++
		rec.line, rec.raw = start, line
		if in.csv {
			rec.raw = in.raw
			r.dec.decodeCSV(in.header, cells, &r.out)
		} else {
			r.dec.decodeJSON(line, &r.out)
		}
		if rerr != nil && rerr != io.EOF {
			// the last bytes before a broken stream: the record is not whole
			r.dec.bad("", "%v", rerr)
		}
		if verify {
			if err := fn(&rec, r.dec.probs); err != nil {
				return err
			}
		} else if r.dec.hardProblems() {
			if err := r.bad(in.name, start, joinProblems(r.dec.probs)); err != nil {
				return err
			}
		} else if err := fn(&rec, r.dec.probs); err != nil {
			return err
		}
		if rerr != nil && rerr != io.EOF {
			return nil
		}
	}
}

func joinProblems(ps []problem) string {
	var b strings.Builder
	n := 0
	for _, p := range ps {
		if p.lenient {
			continue
		}
		if n > 0 {
			b.WriteString("; ")
		}
		b.WriteString(p.String())
		n++
	}
	return b.String()
}

func newReader(c *Common, res *Result) (*reader, error) {
	if c.Diag == nil {
		c.Diag = io.Discard
	}
	dec, err := newDecoder(c.From)
	if err != nil {
		return nil, err
	}
	return &reader{c: c, dec: dec, res: res}, nil
}

// Datasets lists the datasets the toolkit reads.
var Datasets = []string{render.Spectrum, render.EdgeOne, render.CloudConnexa}
