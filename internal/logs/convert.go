package logs

import (
	"bufio"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/prismproxy/prism/internal/event"
	"github.com/prismproxy/prism/internal/render"
)

// ConvertOptions are the options of Convert.
type ConvertOptions struct {
	Common
	// To is the target dataset (any renderer, ocsf included).
	To string
	// Fields selects and orders the target fields (default all).
	Fields []string
	// Output is the target encoding; unset: the encoding of the input
	// (ndjson in, ndjson out; CSV in, CSV out).
	Output *render.Output
	// TimestampFormat of a spectrum_events target; unset: the source's
	// format when the source is spectrum_events, else unixnano.
	TimestampFormat *render.TimestampFormat
}

// maxSessions bounds the sessions convert and stats remember between
// records (open sessions whose final record has not come yet). Past it the
// oldest is forgotten, and counted.
const maxSessions = 1 << 20

// session is what convert remembers of a session between its records.
type session struct {
	// totals: for a periodic source, the sum of its deltas; else the
	// totals of the previous record (to compute deltas).
	client, origin int64
	carry          carried
	seq            uint64
}

// carried are the values a later record of a session may lack.
type carried struct {
	App                   string
	OriginAddr, LocalAddr netip.AddrPort
	Country               string
	ASN                   uint32
	StartTime             time.Time
	ConnectTime           time.Time
}

// tracker fills in, across the records of one session, what a record
// lacks and a sibling had, and byte totals and deltas.
type tracker struct {
	periodic bool // the source's byte counts are deltas
	carry    bool // fill in missing values from earlier records
	m        map[event.ID]*session
	seq      uint64
	evicted  int
}

func newTracker(from string, carry bool) *tracker {
	return &tracker{periodic: render.Periodic(from), carry: carry, m: map[event.ID]*session{}}
}

// update adjusts e and reports whether it is the first record seen of its
// session. kept says whether the target writes a record for e: the totals
// a delta is taken from move only with a record written (as a live log
// job's do), so that the bytes counted on a record the target has no form
// for (a Spectrum connect, in edgeone_l4) go into the next one written.
func (t *tracker) update(d *Decoded, kept bool) (first bool) {
	e := &d.Event
	key := d.sessionKey()
	s := t.m[key]
	if s == nil {
		if len(t.m) >= maxSessions {
			t.evictOldest()
		}
		s = &session{}
		t.m[key] = s
		first = true
	}
	t.seq++
	s.seq = t.seq
	if t.periodic {
		s.client += e.ClientBytesDelta
		s.origin += e.OriginBytesDelta
		e.ClientBytes, e.OriginBytes = s.client, s.origin
	} else {
		e.ClientBytesDelta = e.ClientBytes - s.client
		e.OriginBytesDelta = e.OriginBytes - s.origin
		if kept {
			s.client, s.origin = e.ClientBytes, e.OriginBytes
		}
	}
	if t.carry {
		c := &s.carry
		fill(&e.App, &c.App)
		fillAddr(&e.OriginAddr, &c.OriginAddr)
		fillAddr(&e.LocalAddr, &c.LocalAddr)
		fill(&e.Country, &c.Country)
		if e.ASN == 0 {
			e.ASN = c.ASN
		} else {
			c.ASN = e.ASN
		}
		if e.StartTime.IsZero() {
			e.StartTime = c.StartTime
		} else if c.StartTime.IsZero() {
			c.StartTime = e.StartTime
		}
		if e.ConnectTime.IsZero() && e.Type == event.Disconnect {
			e.ConnectTime = c.ConnectTime
		} else if c.ConnectTime.IsZero() {
			c.ConnectTime = e.ConnectTime
		}
	}
	if e.Type.Terminal() {
		delete(t.m, key)
	}
	return first
}

func fill(v, c *string) {
	if *v == "" {
		*v = *c
	} else {
		*c = *v
	}
}

func fillAddr[T interface{ IsValid() bool }](v, c *T) {
	if !(*v).IsValid() {
		*v = *c
	} else {
		*c = *v
	}
}

func (t *tracker) evictOldest() {
	var oldest event.ID
	min := ^uint64(0)
	for id, s := range t.m {
		if s.seq < min {
			min, oldest = s.seq, id
		}
	}
	delete(t.m, oldest)
	t.evicted++
}

// encoders keeps one encoder per node identity and envelope met in the
// input (records of several nodes or tenants in one file).
type encoders struct {
	to   string
	opt  render.Options
	m    map[encKey]*render.Encoder
	last *render.Encoder
	lk   encKey
}

type encKey struct {
	node render.Node
	cc   render.CloudConnexaConfig
	ts   render.TimestampFormat
	// fields is the comma-joined field selection of an identity
	// conversion ("": the options' own): each record keeps its own, since
	// the files of several exports (Logpush jobs) select different fields.
	fields string
}

func (es *encoders) get(k encKey) (*render.Encoder, error) {
	if es.last != nil && k == es.lk {
		return es.last, nil
	}
	enc, ok := es.m[k]
	if !ok {
		opt := es.opt
		opt.CloudConnexa = k.cc
		if k.fields != "" {
			opt.Fields = strings.Split(k.fields, ",")
		}
		if render.TimestampChoice(es.to) {
			opt.TimestampFormat = k.ts
		}
		var err error
		if enc, err = render.NewEncoder(es.to, k.node, opt); err != nil {
			return nil, err
		}
		if len(es.m) < 1024 {
			es.m[k] = enc
		}
	}
	es.last, es.lk = enc, k
	return enc, nil
}

func (o *ConvertOptions) renderOptions() render.Options {
	opt := render.Options{Fields: o.Fields}
	if o.Output != nil {
		opt.Output = *o.Output
	}
	return opt
}

// check returns the usage error of o, if any: what Convert refuses before
// reading anything (the CLI checks it before it creates the -o file).
func (o *ConvertOptions) check() error {
	if _, err := newDecoder(o.From); err != nil {
		return err
	}
	if _, err := render.NewEncoder(o.To, render.Node{}, o.renderOptions()); err != nil {
		return err
	}
	if o.TimestampFormat != nil && !render.TimestampChoice(o.To) {
		return fmt.Errorf("dataset %s has fixed timestamps; --timestamp-format does not apply", o.To)
	}
	return nil
}

// Convert reads records of c.From and writes them as c.To to w.
func Convert(o ConvertOptions, w io.Writer) (Result, error) {
	var res Result
	r, err := newReader(&o.Common, &res)
	if err != nil {
		return res, err
	}
	if err := o.check(); err != nil {
		return res, err
	}
	opt := o.renderOptions()
	if note := missingNote(o.From, o.To, o.Fields); note != "" {
		fmt.Fprintln(o.Diag, note)
	}
	identity := o.From == o.To
	tr := newTracker(o.From, !identity)
	es := &encoders{to: o.To, opt: opt, m: map[encKey]*render.Encoder{}}
	bw := bufio.NewWriterSize(w, 256<<10)
	var buf []byte
	headerDone := false
	// synthesize a connect for sessions of a source that writes none
	// (edgeone_l4) when the target has connect records
	synth := !identity && o.From == render.EdgeOne && render.Wants(o.To, event.Connect)
	skipped := 0
	// the identity keeps each record's own field selection and order
	// (lastOrder caches the joined names of the previous record's)
	ownFields := identity && len(o.Fields) == 0
	var lastOrder []int
	lastFields := ""
	// CSV output has one header: the field selection it names, and where
	// it came from
	headerFields, headerFrom := "", ""
	err = r.walk(false, func(rec *record, _ []problem) error {
		d := rec.dec
		e := &d.Event
		if o.Output == nil && rec.csv && len(es.m) == 0 {
			es.opt.Output = render.CSV
		}
		k := encKey{node: d.Node}
		if ownFields {
			if lastOrder == nil || !slices.Equal(r.dec.order, lastOrder) {
				lastOrder = append(lastOrder[:0:0], r.dec.order...)
				lastFields = strings.Join(r.dec.recordFields(), ",")
			}
			k.fields = lastFields
			if es.opt.Output == render.CSV {
				if !headerDone {
					headerFields, headerFrom = k.fields, fmt.Sprintf("%s:%d", rec.file, rec.line)
				} else if k.fields != headerFields {
					// a second header row would make the output two CSV
					// files in one, and writing these fields under the
					// first header would drop or invent values
					return fmt.Errorf("%s:%d: the record's fields (%s) are not those of the CSV header written (%s, from %s): CSV output has one header; convert these files separately, or choose the fields with --fields",
						rec.file, rec.line, k.fields, headerFields, headerFrom)
				}
			}
		}
		if o.To == render.CloudConnexa {
			k.cc = d.CC
		}
		switch {
		case o.TimestampFormat != nil:
			k.ts = *o.TimestampFormat
		case o.From == render.Spectrum && d.TSKnown:
			k.ts = d.TS
		}
		enc, err := es.get(k)
		if err != nil {
			return err
		}
		first := tr.update(d, enc.Wants(e.Type))
		if !headerDone {
			buf = append(buf, enc.Header()...)
			headerDone = true
		}
		if synth && first && e.Type != event.OriginError && !e.ConnectTime.IsZero() {
			c := *e
			c.Type, c.Status, c.Time = event.Connect, event.StatusConnect, e.ConnectTime
			c.DisconnectTime = time.Time{}
			c.ClientBytes, c.OriginBytes, c.ClientBytesDelta, c.OriginBytesDelta = 0, 0, 0, 0
			c.CloseSide, c.CloseReason = event.SideNone, event.ReasonNone
			buf = enc.Append(buf, &c)
			res.Written++
		}
		if !enc.Wants(e.Type) {
			skipped++
			return nil
		}
		if d.HasTrace {
			buf = enc.AppendWithTrace(buf, e, d.Trace)
		} else {
			buf = enc.Append(buf, e)
		}
		res.Written++
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
	if skipped > 0 {
		fmt.Fprintf(o.Diag, "prism logs convert: %d %s records have no %s form (%s writes no record for them)\n", skipped, o.From, o.To, o.To)
	}
	if tr.evicted > 0 {
		fmt.Fprintf(o.Diag, "prism logs convert: %d open sessions were forgotten (more than %d open at once); their later records lack carried values\n", tr.evicted, maxSessions)
	}
	if err == nil && res.Bad > 0 {
		err = ErrProblems
	}
	return res, err
}
