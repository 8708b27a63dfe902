package render

import "github.com/prismproxy/prism/internal/event"

// KindTime is the kind of a timestamp field whose JSON type the job's
// timestamp_format decides (Spectrum's Timestamp, ConnectTimestamp,
// DisconnectTimestamp): an integer in unixnano and unix, a string in
// rfc3339.
const KindTime = kindTime

// FieldKinds returns the kind of every field of dataset, in the order of
// FieldNames. Readers of existing logs (internal/logs) use it to check
// JSON types and to type CSV cells.
func FieldKinds(dataset string) ([]Kind, error) {
	d, err := lookup(dataset)
	if err != nil {
		return nil, err
	}
	out := make([]Kind, len(d.fields))
	for i, f := range d.fields {
		out[i] = f.kind
	}
	return out, nil
}

// AppendWithTrace renders e like Append, but with trace as the
// CloudConnexa traceId instead of a fresh random one, so that a record read
// back from a cloudconnexa log renders with the id it had.
func (enc *Encoder) AppendWithTrace(dst []byte, e *event.Event, trace [16]byte) []byte {
	enc.bind(e)
	enc.r.trace = trace
	return enc.appendBound(dst)
}
