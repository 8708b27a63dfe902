// Package render turns canonical connection events (internal/event) into
// the record shapes of the vendor log schemas prism reproduces: Cloudflare
// Spectrum spectrum_events, Tencent EdgeOne L4 proxy logs and OpenVPN
// CloudConnexa log streaming. A renderer knows no sockets and no
// destinations: it reads an *event.Event plus the node's identity and the
// job's output options, and appends bytes to a caller-owned buffer.
//
// Encoding is hand-written (no encoding/json on the hot path): records are
// appended into a reused []byte, so rendering a Spectrum or EdgeOne record
// allocates nothing. String escaping matches encoding/json with HTML
// escaping turned off (see AppendJSONString): logs are not HTML, and
// operators grep for "<" and "&" as they are.
package render

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/prismproxy/prism/internal/event"
)

// Node is the identity of the prism node that writes the records (spec §3,
// §5): Colo is the IATA-style location code (Spectrum ColoCode, CloudConnexa
// gatewayRegion), ID names this node (gatewayId), RegionName is the human
// name of the location (gatewayRegionName).
type Node struct {
	Colo       string
	ID         string
	RegionName string
}

// Dataset names.
const (
	Spectrum     = "spectrum_events"
	EdgeOne      = "edgeone_l4"
	CloudConnexa = "cloudconnexa"
	OCSF         = "ocsf"
)

// Datasets lists the dataset names in a stable order.
var Datasets = []string{Spectrum, EdgeOne, CloudConnexa, OCSF}

// Kind is the JSON type of a field's value as the job renders it.
type Kind uint8

const (
	KindString Kind = iota + 1
	KindInt
	KindBool
	// KindObject is a nested JSON object (CloudConnexa's "log"). It can be
	// selected but not filtered on.
	KindObject
	// kindTime is a timestamp whose kind the job's TimestampFormat decides.
	kindTime
)

func (k Kind) String() string {
	switch k {
	case KindString:
		return "string"
	case KindInt:
		return "int"
	case KindBool:
		return "bool"
	case KindObject:
		return "object"
	}
	return "time"
}

// TimestampFormat is how Spectrum timestamps are written (spec §3).
type TimestampFormat uint8

const (
	// UnixNano: integer nanoseconds since the epoch (the Logpush API default).
	UnixNano TimestampFormat = iota
	// Unix: integer seconds since the epoch.
	Unix
	// RFC3339: a string with seconds precision in UTC.
	RFC3339
)

// ParseTimestampFormat parses "unixnano" (also ""), "unix" or "rfc3339".
func ParseTimestampFormat(s string) (TimestampFormat, error) {
	switch s {
	case "", "unixnano":
		return UnixNano, nil
	case "unix":
		return Unix, nil
	case "rfc3339":
		return RFC3339, nil
	}
	return 0, fmt.Errorf("unknown timestamp format %q (want unixnano, unix or rfc3339)", s)
}

// Output is the record encoding.
type Output uint8

const (
	NDJSON Output = iota // one JSON object per line
	CSV                  // a header row, then one RFC 4180 row per record
)

// ParseOutput parses "ndjson" (also "") or "csv".
func ParseOutput(s string) (Output, error) {
	switch s {
	case "", "ndjson":
		return NDJSON, nil
	case "csv":
		return CSV, nil
	}
	return 0, fmt.Errorf("unknown output type %q (want ndjson or csv)", s)
}

// Options are the per-job rendering choices.
type Options struct {
	// Fields to write, in this order; empty means every field in the
	// dataset's documented order. The fields a dataset requires (ocsf's
	// required attributes) are written even when not listed, after the
	// listed ones.
	Fields          []string
	TimestampFormat TimestampFormat
	Output          Output
	// CloudConnexa holds the envelope values of the cloudconnexa dataset.
	CloudConnexa CloudConnexaConfig
	// Logpush's record prefix/suffix, field delimiter, record template and
	// CVE-2021-44228 (see output.go).
	OutputOptions
}

// rec is the record being rendered. It lives inside the Encoder so that the
// field accessors (called through func values) do not make anything escape
// per record.
type rec struct {
	e    *event.Event
	node *Node
	ts   TimestampFormat
	cc   *CloudConnexaConfig
	// trace is the CloudConnexa traceId of the record (UUIDv4, fresh per
	// record).
	trace [16]byte
}

// field describes one field of a dataset. Exactly one accessor is set,
// matching kind.
type field struct {
	name string
	kind Kind
	// str returns a string value; it is JSON-escaped on output.
	str func(r *rec) string
	// text appends a generated value (address, hex id, formatted time) that
	// is known to need no JSON escaping.
	text func(r *rec, b []byte) []byte
	num  func(r *rec) int64
	bl   func(r *rec) bool
	tm   func(r *rec) time.Time
	// obj appends a whole JSON object.
	obj func(r *rec, b []byte) []byte
	// null reports that the value is JSON null for this record.
	null func(r *rec) bool
	// key, when set, gives the JSON key for this record (CloudConnexa names
	// the client address differently per event).
	key func(r *rec) string
	// nofilter explains why the field cannot be filtered on.
	nofilter string
	// omit reports that the key is left out of this ndjson record (an
	// empty cell in CSV): OCSF leaves out attributes that do not apply.
	omit func(r *rec) bool
}

// dataset is a renderer: its fields in documented order and which event
// types produce a record.
type dataset struct {
	name     string
	fields   []field
	wants    func(t event.Type) bool
	timeFmt  bool // the job may choose the timestamp format
	periodic bool // the dataset has interim (periodic) records
	// required names the fields a record of the dataset is not valid
	// without (ocsf: the attributes OCSF requires), in dataset order: a
	// job's field selection cannot leave them out, NewEncoder adds them.
	required []string
	index    map[string]int
}

var datasets = map[string]*dataset{}

func register(d *dataset) {
	d.index = make(map[string]int, len(d.fields))
	for i, f := range d.fields {
		d.index[f.name] = i
	}
	for _, name := range d.required {
		if _, ok := d.index[name]; !ok {
			panic("render: dataset " + d.name + " requires unknown field " + name)
		}
	}
	datasets[d.name] = d
}

func lookup(name string) (*dataset, error) {
	d, ok := datasets[name]
	if !ok {
		return nil, fmt.Errorf("unknown dataset %q (want one of %s)", name, strings.Join(Datasets, ", "))
	}
	return d, nil
}

// FieldNames returns the fields of dataset in documented order.
func FieldNames(dataset string) ([]string, error) {
	d, err := lookup(dataset)
	if err != nil {
		return nil, err
	}
	out := make([]string, len(d.fields))
	for i, f := range d.fields {
		out[i] = f.name
	}
	return out, nil
}

// Wants reports whether dataset writes a record for events of type t.
// Unknown datasets want nothing.
func Wants(dataset string, t event.Type) bool {
	d, ok := datasets[dataset]
	return ok && d.wants(t)
}

// Periodic reports whether dataset has periodic (interim) records.
func Periodic(dataset string) bool {
	d, ok := datasets[dataset]
	return ok && d.periodic
}

// TimestampChoice reports whether dataset lets the job choose the timestamp
// format.
func TimestampChoice(dataset string) bool {
	d, ok := datasets[dataset]
	return ok && d.timeFmt
}

// Encoder renders records of one dataset for one job. It is not safe for
// concurrent use: each job owns one and uses it from its own goroutine.
type Encoder struct {
	ds     *dataset
	sel    []int // indexes into ds.fields, in output order
	out    Output
	r      rec
	node   Node
	cc     CloudConnexaConfig
	rng    *rand.ChaCha8
	header []byte
	keys   [][]byte // pre-encoded `"Name":` per selected field (ndjson)
	ccSel  bool
	// plan is set for an ndjson record whose keys are fixed and never
	// left out (spectrum_events, edgeone_l4): each selected field with
	// everything written before its value (delimiter, key, colon) in one
	// piece: one append a field instead of three, and no per-field checks
	// for keys that are renamed or left out. With AppendJSONString's one-
	// piece path it took BenchmarkRender's spectrum record from 1,276 to
	// 1,044 ns (medians of 10 alternating runs, 2026-12-01).
	plan []planField
	// Record framing (output.go): Logpush's defaults unless the job sets them.
	recPrefix, recSuffix, fieldDelim []byte
	tmpl                             []tmplPart
	jndi                             bool
	// csvDelim is a CSV job's field delimiter when it is not the comma:
	// a cell that holds it is quoted too (nil: RFC 4180's rules alone).
	csvDelim []byte
	// raw[i] is the text AppendText returns for field i when bit i of
	// rawHas is set (BindRaw); live records never set it.
	raw    [][]byte
	rawHas uint64
}

// planField is one field of Encoder.plan.
type planField struct {
	pre []byte
	f   *field
}

// NewEncoder returns an encoder for dataset with the job's options.
func NewEncoder(datasetName string, node Node, opt Options) (*Encoder, error) {
	d, err := lookup(datasetName)
	if err != nil {
		return nil, err
	}
	if !d.timeFmt && opt.TimestampFormat != UnixNano {
		return nil, fmt.Errorf("dataset %s has fixed timestamps; timestamp_format cannot be set", d.name)
	}
	enc := &Encoder{ds: d, out: opt.Output, node: node, cc: opt.CloudConnexa}
	enc.cc.setDefaults()
	enc.r = rec{node: &enc.node, ts: opt.TimestampFormat, cc: &enc.cc}
	var seed [32]byte
	seedRandom(seed[:])
	enc.rng = rand.NewChaCha8(seed)
	if len(opt.Fields) == 0 {
		enc.sel = make([]int, len(d.fields))
		for i := range d.fields {
			enc.sel[i] = i
		}
	} else {
		seen := make(map[string]bool, len(opt.Fields))
		for _, name := range opt.Fields {
			i, ok := d.index[name]
			if !ok {
				return nil, fmt.Errorf("unknown field %q for dataset %s", name, d.name)
			}
			if seen[name] {
				return nil, fmt.Errorf("field %q is listed twice", name)
			}
			seen[name] = true
			enc.sel = append(enc.sel, i)
		}
		// A selection that leaves out a required field would make records
		// the dataset's consumers reject (an ocsf record without class_uid
		// or metadata is not OCSF): those are written anyway, after the
		// selected fields.
		for _, name := range d.required {
			if !seen[name] {
				enc.sel = append(enc.sel, d.index[name])
			}
		}
	}
	for _, i := range enc.sel {
		f := &d.fields[i]
		enc.keys = append(enc.keys, AppendJSONString(nil, f.name))
		if f.key != nil {
			enc.ccSel = true
		}
	}
	if enc.out == CSV {
		for n, i := range enc.sel {
			if n > 0 {
				enc.header = append(enc.header, ',')
			}
			enc.header = AppendCSVField(enc.header, d.fields[i].name)
		}
		enc.header = append(enc.header, '\n')
	}
	if err := enc.setOutput(opt.OutputOptions); err != nil {
		return nil, err
	}
	enc.makePlan()
	return enc, nil
}

// makePlan sets enc.plan when every selected field of an ndjson record
// has a fixed key and is always written.
func (enc *Encoder) makePlan() {
	if enc.out != NDJSON || enc.tmpl != nil {
		return
	}
	plan := make([]planField, len(enc.sel))
	for n, i := range enc.sel {
		f := &enc.ds.fields[i]
		if f.key != nil || f.omit != nil {
			return
		}
		var pre []byte
		if n > 0 {
			pre = append(pre, enc.fieldDelim...)
		}
		pre = append(pre, enc.keys[n]...)
		plan[n] = planField{pre: append(pre, ':'), f: f}
	}
	enc.plan = plan
}

// Dataset returns the dataset name.
func (enc *Encoder) Dataset() string { return enc.ds.name }

// Header returns the CSV header row (with its newline), or nil for ndjson.
// A destination writes it once at the top of every file it starts.
func (enc *Encoder) Header() []byte { return enc.header }

// Wants reports whether the encoder's dataset writes a record for t.
func (enc *Encoder) Wants(t event.Type) bool { return enc.ds.wants(t) }

// Append renders e as one record (with its trailing newline) onto dst.
func (enc *Encoder) Append(dst []byte, e *event.Event) []byte {
	enc.bind(e)
	return enc.appendBound(dst)
}

// appendBound renders the bound event and unbinds it.
func (enc *Encoder) appendBound(dst []byte) []byte {
	start := len(dst)
	switch {
	case enc.tmpl != nil:
		dst = append(dst, enc.recPrefix...)
		dst = enc.appendTemplate(dst)
		dst = append(dst, enc.recSuffix...)
	case enc.out == CSV:
		dst = enc.appendCSV(dst)
	default:
		dst = enc.appendJSON(dst)
	}
	if enc.jndi {
		EscapeJNDI(dst[start:])
	}
	enc.r.e = nil
	return dst
}

func (enc *Encoder) bind(e *event.Event) {
	enc.r.e = e
	if enc.ds.name == CloudConnexa {
		newUUIDv4(enc.rng, &enc.r.trace)
	}
}

func (enc *Encoder) appendJSON(b []byte) []byte {
	b = append(b, enc.recPrefix...)
	if enc.plan != nil {
		for i := range enc.plan {
			p := &enc.plan[i]
			b = append(b, p.pre...)
			b = enc.appendValueJSON(b, p.f)
		}
		return append(b, enc.recSuffix...)
	}
	r := &enc.r
	first := true
	for n, i := range enc.sel {
		f := &enc.ds.fields[i]
		if f.omit != nil && f.omit(r) {
			continue
		}
		if !first {
			b = append(b, enc.fieldDelim...)
		}
		first = false
		if f.key != nil {
			b = AppendJSONString(b, f.key(r))
			b = append(b, ':')
		} else {
			b = append(b, enc.keys[n]...)
			b = append(b, ':')
		}
		b = enc.appendValueJSON(b, f)
	}
	return append(b, enc.recSuffix...)
}

func (enc *Encoder) appendValueJSON(b []byte, f *field) []byte {
	r := &enc.r
	if f.null != nil && f.null(r) {
		return append(b, "null"...)
	}
	switch {
	case f.str != nil:
		return AppendJSONString(b, f.str(r))
	case f.text != nil:
		b = append(b, '"')
		b = f.text(r, b)
		return append(b, '"')
	case f.num != nil:
		return strconv.AppendInt(b, f.num(r), 10)
	case f.bl != nil:
		return strconv.AppendBool(b, f.bl(r))
	case f.tm != nil:
		if r.ts == RFC3339 {
			b = append(b, '"')
			b = appendTime(b, f.tm(r), r.ts)
			return append(b, '"')
		}
		return appendTime(b, f.tm(r), r.ts)
	case f.obj != nil:
		return f.obj(r, b)
	}
	return append(b, "null"...)
}

func (enc *Encoder) appendCSV(b []byte) []byte {
	b = append(b, enc.recPrefix...)
	for n, i := range enc.sel {
		if n > 0 {
			b = append(b, enc.fieldDelim...)
		}
		b = enc.appendValueCSV(b, &enc.ds.fields[i])
	}
	return append(b, enc.recSuffix...)
}

func (enc *Encoder) appendValueCSV(b []byte, f *field) []byte {
	r := &enc.r
	if f.null != nil && f.null(r) || f.omit != nil && f.omit(r) {
		return b // null or left out is an empty cell
	}
	start := len(b)
	switch {
	case f.str != nil:
		return quoteCSVInPlace(append(b, f.str(r)...), start, enc.csvDelim)
	case f.obj != nil:
		return quoteCSVInPlace(f.obj(r, b), start, enc.csvDelim)
	case f.text != nil:
		b = f.text(r, b)
	case f.num != nil:
		b = strconv.AppendInt(b, f.num(r), 10)
	case f.bl != nil:
		b = strconv.AppendBool(b, f.bl(r))
	case f.tm != nil:
		b = appendTime(b, f.tm(r), r.ts)
	}
	// Generated values (addresses, numbers, times) hold no comma, quote or
	// line break; with a delimiter of the job's own they may hold that
	// (the colons of an address with ":").
	if enc.csvDelim != nil {
		b = quoteCSVInPlace(b, start, enc.csvDelim)
	}
	return b
}

// appendTime writes t in format ts. The zero time is the epoch (spec §3:
// "a time that has not happened yet is the epoch, never a missing key").
func appendTime(b []byte, t time.Time, ts TimestampFormat) []byte {
	switch ts {
	case Unix:
		if t.IsZero() {
			return append(b, '0')
		}
		return strconv.AppendInt(b, t.Unix(), 10)
	case RFC3339:
		if t.IsZero() {
			t = time.Unix(0, 0)
		}
		return t.UTC().AppendFormat(b, "2006-01-02T15:04:05Z07:00")
	}
	if t.IsZero() {
		return append(b, '0')
	}
	return strconv.AppendInt(b, t.UnixNano(), 10)
}

// FieldRef names one field of the encoder's dataset for filtering.
type FieldRef struct {
	idx  int
	Kind Kind // resolved: timestamps are KindInt or KindString per the job's format
}

// Lookup resolves a field name of the encoder's dataset (selected or not)
// for filtering. It reports an error that names the problem when the field
// does not exist or cannot be filtered on.
func (enc *Encoder) Lookup(name string) (FieldRef, error) {
	i, ok := enc.ds.index[name]
	if !ok {
		return FieldRef{}, fmt.Errorf("unknown field %q for dataset %s", name, enc.ds.name)
	}
	f := &enc.ds.fields[i]
	if f.nofilter != "" {
		return FieldRef{}, fmt.Errorf("field %q cannot be filtered on: %s", name, f.nofilter)
	}
	k := f.kind
	if k == kindTime {
		k = KindInt
		if enc.r.ts == RFC3339 {
			k = KindString
		}
	}
	return FieldRef{idx: i, Kind: k}, nil
}

// Bind makes e the event that Int, Bool and AppendText read, until Unbind
// or the next Append. It lets a filter read several fields of one record.
func (enc *Encoder) Bind(e *event.Event) { enc.bind(e) }

// BindRaw makes AppendText return raw[i], for each field i whose bit is
// set in has, instead of the bound event's rendered value, until Unbind.
// prism logs filter matches a record read from a file on the text the file
// has: reading a record into an event and rendering it back is lossy for
// some values (another vendor's session id is hashed, a country code's
// case, the spelling of an address or of a time), and a filter must test
// what the file says, as the records are written as they were.
func (enc *Encoder) BindRaw(raw [][]byte, has uint64) { enc.raw, enc.rawHas = raw, has }

// Unbind forgets the bound event (and BindRaw's values).
func (enc *Encoder) Unbind() { enc.r.e, enc.raw, enc.rawHas = nil, nil, 0 }

// Null reports whether the bound record's value of f is JSON null.
func (enc *Encoder) Null(f FieldRef) bool {
	fd := &enc.ds.fields[f.idx]
	return fd.null != nil && fd.null(&enc.r)
}

// Int returns the bound record's value of an int field (timestamps in the
// job's unit).
func (enc *Encoder) Int(f FieldRef) int64 {
	fd := &enc.ds.fields[f.idx]
	switch {
	case fd.num != nil:
		return fd.num(&enc.r)
	case fd.tm != nil:
		t := fd.tm(&enc.r)
		if t.IsZero() {
			return 0
		}
		if enc.r.ts == Unix {
			return t.Unix()
		}
		return t.UnixNano()
	}
	return 0
}

// Bool returns the bound record's value of a bool field.
func (enc *Encoder) Bool(f FieldRef) bool {
	fd := &enc.ds.fields[f.idx]
	if fd.bl != nil {
		return fd.bl(&enc.r)
	}
	return false
}

// AppendText appends the bound record's value of a string field, unescaped.
func (enc *Encoder) AppendText(dst []byte, f FieldRef) []byte {
	if enc.rawHas&(1<<uint(f.idx)) != 0 {
		return append(dst, enc.raw[f.idx]...)
	}
	fd := &enc.ds.fields[f.idx]
	switch {
	case fd.str != nil:
		return append(dst, fd.str(&enc.r)...)
	case fd.text != nil:
		return fd.text(&enc.r, dst)
	case fd.tm != nil:
		return appendTime(dst, fd.tm(&enc.r), enc.r.ts)
	}
	return dst
}

// Shared accessors.

// appendAddr writes the address without port, IPv4-mapped addresses as
// IPv4, or alt when the address is not set.
func appendAddr(b []byte, a netip.Addr, alt string) []byte {
	if !a.IsValid() {
		return append(b, alt...)
	}
	return a.Unmap().AppendTo(b)
}

func orString(s, alt string) string {
	if s == "" {
		return alt
	}
	return s
}
