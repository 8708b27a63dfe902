package logs

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"

	"github.com/prismproxy/prism/internal/logjob"
	"github.com/prismproxy/prism/internal/render"
)

// FilterOptions are the options of Filter.
type FilterOptions struct {
	Common
	// Filter is a Logpush filter (the log jobs' language, spec §6).
	Filter string
	// decodeAll reads every field of every record (tests compare it with
	// reading only what the filter names).
	decodeAll bool
}

// filterDeps are the fields a field's value is built from, besides itself
// (a port is kept with its address; the EdgeOne disconnect time and
// connect time depend on the reason).
var filterDeps = map[string][]string{
	"ClientPort":          {"ClientIP"},
	"OriginPort":          {"OriginIP"},
	"ForwardPort":         {"EdgeIP"},
	"DisconnetTimeStamp":  {"DisconnetReason", "LogTimeStamp"},
	"ConnectTimeStamp":    {"DisconnetReason"},
	"DisconnectTimestamp": {"Timestamp"},
	"ConnectTimestamp":    {"Timestamp"},
}

// CheckFilter compiles spec against dataset the way a log job does and
// returns the log job's error. Spectrum timestamps compare as the file
// writes them, so a filter is accepted when it fits one of the timestamp
// formats.
func CheckFilter(dataset, spec string) error {
	var first error
	for _, ts := range []render.TimestampFormat{render.UnixNano, render.RFC3339} {
		if ts != render.UnixNano && !render.TimestampChoice(dataset) {
			break
		}
		enc, err := render.NewEncoder(dataset, render.Node{}, render.Options{TimestampFormat: ts})
		if err != nil {
			return err
		}
		if _, err = logjob.CompileFilter(spec, enc); err == nil {
			return nil
		}
		if first == nil {
			first = err
		}
	}
	return first
}

// filterKeys returns the field names a filter's conditions name.
func filterKeys(spec string) []string {
	var v any
	if json.Unmarshal([]byte(spec), &v) != nil {
		return nil
	}
	var keys []string
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			if k, ok := x["key"].(string); ok {
				keys = append(keys, k)
			}
			for _, c := range x {
				walk(c)
			}
		case []any:
			for _, c := range x {
				walk(c)
			}
		}
	}
	walk(v)
	return keys
}

// Filter writes the records of the input that match o.Filter to w: ndjson
// lines and CSV rows exactly as they were (CSV rows under the header row of
// their files, written once; files under different headers are refused).
func Filter(o FilterOptions, w io.Writer) (Result, error) {
	var res Result
	r, err := newReader(&o.Common, &res)
	if err != nil {
		return res, err
	}
	if err := CheckFilter(o.From, o.Filter); err != nil {
		return res, err
	}
	if r.dec.dataset != render.CloudConnexa && !o.decodeAll {
		// read only the fields the filter looks at, what they are built
		// from, and what chooses the record type and the encoder; the
		// others are type-checked
		need := []string{"ColoCode", "Event", "Status", "DisconnetReason"}
		for _, k := range filterKeys(o.Filter) {
			need = append(append(need, k), filterDeps[k]...)
		}
		r.dec.needOnly(need)
	}
	es := &encoders{to: o.From, m: map[encKey]*render.Encoder{}}
	filters := map[*render.Encoder]*logjob.Filter{}
	bw := bufio.NewWriterSize(w, 256<<10)
	var buf []byte
	var raw [][]byte
	// The output is one ndjson or one CSV file: the header of the first
	// CSV file a match comes from, once. A match from a CSV file under
	// another header, or ndjson mixed with CSV, is refused rather than
	// written into a file no reader would take as one.
	csvFile := "" // the CSV file of the last match, whose header was checked
	outCSV, outNDJSON := false, false
	header, headerFrom := "", ""
	err = r.walk(false, func(rec *record, _ []problem) error {
		d := rec.dec
		k := encKey{node: d.Node, cc: d.CC}
		if d.TSKnown {
			k.ts = d.TS
		}
		enc, err := es.get(k)
		if err != nil {
			return err
		}
		f, ok := filters[enc]
		if !ok {
			if f, err = logjob.CompileFilter(o.Filter, enc); err != nil {
				return err
			}
			filters[enc] = f
		}
		enc.Bind(&d.Event)
		// string fields are matched on the file's text, not on the event
		// rendered back (which is lossy for some values)
		var has uint64
		raw, has = r.dec.rawStrings(raw)
		enc.BindRaw(raw, has)
		keep := f.Match(enc)
		enc.Unbind()
		if !keep {
			return nil
		}
		switch {
		case rec.csv && csvFile != rec.file:
			h := string(bytes.Join(rec.header, []byte(",")))
			switch {
			case outNDJSON:
				return fmt.Errorf("%s:%d: a CSV record after ndjson ones: the output would mix the two; filter the files separately", rec.file, rec.line)
			case !outCSV:
				outCSV, header, headerFrom = true, h, rec.file
				buf = append(append(buf, rec.headerRaw...), '\n')
			case h != header:
				return fmt.Errorf("%s:%d: the file's CSV header (%s) is not the header written (%s, from %s): the output has one; filter the files separately", rec.file, rec.line, h, header, headerFrom)
			}
			csvFile = rec.file
		case !rec.csv && outCSV:
			return fmt.Errorf("%s:%d: an ndjson record after CSV ones: the output would mix the two; filter the files separately", rec.file, rec.line)
		case !rec.csv:
			outNDJSON = true
		}
		res.Written++
		buf = append(buf, rec.raw...)
		buf = append(buf, '\n')
		if len(buf) >= 64<<10 {
			if _, err := bw.Write(buf); err != nil {
				return err
			}
			buf = buf[:0]
		}
		return nil
	})
	if _, werr := bw.Write(buf); werr != nil && err == nil {
		err = werr
	}
	if ferr := bw.Flush(); ferr != nil && err == nil {
		err = ferr
	}
	if err == nil && res.Bad > 0 {
		err = ErrProblems
	}
	return res, err
}
